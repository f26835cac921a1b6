// Email verification and email change (issue 12), end to end over HTTP with
// a real SMTP server: registration mails a link to /verify-email; a new one
// on request (rate-limited); REQUIRE_EMAIL_VERIFICATION refuses a right
// password for an unverified address (and only a right one); a change of
// address needs the password, unverifies the account, mails a link to the
// new address and a notice to the old one.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { backends, login, registerAndLogin, registerUser, startApp, STRONG_PASSWORD, type TestApp } from './helpers.js';
import { CHANGED, MailCatcher, RESET, tokenOf, VERIFY } from './mail-catcher.js';

const PUBLIC_URL = 'https://auth.example.test/base';
const env = (smtp: MailCatcher, more: Record<string, string> = {}) => ({ SMTP_URL: smtp.url, PUBLIC_URL, RATE_LIMIT_PASSWORD_RESET_PER_HOUR: '100000', ...more });

async function auditTypes(app: TestApp, userId: string): Promise<string[]> {
  await app.core.audit.flush();
  return (await app.core.db.query<{ type: string }>('SELECT type FROM audit_events WHERE user_id = $1 ORDER BY at', [userId])).rows.map((r) => r.type);
}

for (const backend of backends()) {
  describe(`email verification and change (${backend})`, () => {
    let app: TestApp;
    const smtp = new MailCatcher();
    before(async () => {
      await smtp.start();
      app = await startApp({ backend, env: env(smtp) });
    });
    after(async () => {
      await app.close();
      await smtp.stop();
    });

    test('registration mails a link to /verify-email; following it verifies the address (once)', async () => {
      const u = await registerAndLogin(app.http);
      assert.equal((await app.http.get('/users/me', u.access)).body.email_verified, false);
      const mail = await smtp.waitFor(u.email, VERIFY);
      const token = tokenOf(mail);
      assert.ok(mail.text.includes(`${PUBLIC_URL}/verify-email#token=${token}`));
      assert.ok(mail.html.includes(`${PUBLIC_URL}/verify-email#token=${token}`));
      assert.ok(!mail.subject.includes(token));
      assert.match(mail.text, /48 hours/);

      const r = await app.http.post('/auth/verify-email', { token });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.id, u.id);
      assert.equal(r.body.email_verified, true);
      assert.equal(r.headers.get('cache-control'), 'no-store');
      assert.equal((await app.http.get('/users/me', u.access)).body.email_verified, true, 'every cached profile learns it');

      const again = await app.http.post('/auth/verify-email', { token });
      assert.equal(again.status, 400);
      assert.equal(again.body.code, 'verify_token_invalid');
      for (const bad of ['nope', 'B'.repeat(43)]) assert.equal((await app.http.post('/auth/verify-email', { token: bad })).status, 400);
      assert.ok((await auditTypes(app, u.id)).includes('email_verified'));
    });

    test('a verification link expires after EMAIL_VERIFY_EXPIRE_HOURS', async () => {
      const u = await registerUser(app.http);
      const token = tokenOf(await smtp.waitFor(u.email, VERIFY));
      app.clock.advance(49 * 3600_000);
      assert.equal((await app.http.post('/auth/verify-email', { token })).status, 400);
    });

    test('POST /users/me/verify-email: 202 and a new link; at most 3 an hour per address (429)', async () => {
      const u = await registerAndLogin(app.http);
      await smtp.waitFor(u.email, VERIFY, 1); // registration's
      for (const n of [2, 3]) {
        const r = await app.http.post('/users/me/verify-email', undefined, u.access);
        assert.equal(r.status, 202, r.text);
        assert.deepEqual(r.body, {});
        await smtp.waitFor(u.email, VERIFY, n);
      }
      const over = await app.http.post('/users/me/verify-email', undefined, u.access);
      assert.equal(over.status, 429);
      assert.ok(Number(over.headers.get('retry-after')) > 0);
      assert.equal((await app.http.post('/users/me/verify-email')).status, 401);
      // Any of the links works.
      const third = tokenOf(smtp.to(u.email, VERIFY)[2]!);
      assert.equal((await app.http.post('/auth/verify-email', { token: third })).status, 200);
    });

    test('an email change needs the current password, unverifies, mails a link to the new address and a notice to the old', async () => {
      const u = await registerAndLogin(app.http);
      const oldToken = tokenOf(await smtp.waitFor(u.email, VERIFY));
      assert.equal((await app.http.post('/auth/password-reset', { email: u.email })).status, 202);
      const oldReset = tokenOf(await smtp.waitFor(u.email, RESET));
      const newEmail = `o'neil&${u.username}@example.com`;

      const missing = await app.http.patch('/users/me', { email: newEmail }, u.access);
      assert.equal(missing.status, 422);
      assert.equal(missing.body.errors[0].path, '/current_password');
      const wrong = await app.http.patch('/users/me', { email: newEmail, current_password: 'wrong-Password-1' }, u.access);
      assert.equal(wrong.status, 400);
      assert.equal(wrong.body.code, 'current_password_incorrect');
      assert.equal(smtp.to(newEmail).length, 0);

      const r = await app.http.patch('/users/me', { email: newEmail, current_password: STRONG_PASSWORD }, u.access);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.email, newEmail);
      assert.equal(r.body.email_verified, false);

      const link = await smtp.waitFor(newEmail, VERIFY);
      const notice = await smtp.waitFor(u.email, CHANGED);
      assert.ok(notice.text.includes(newEmail), 'the old address learns where the account went');
      assert.ok(notice.html.includes(`o&#39;neil&amp;${u.username}`), 'values are HTML-escaped');
      assert.ok(!notice.html.includes(`o'neil&${u.username}`), 'never raw');

      // Tokens mailed to the old address are dead: they cannot verify the new one, nor reset.
      assert.equal((await app.http.post('/auth/verify-email', { token: oldToken })).status, 400);
      assert.equal((await app.http.post('/auth/password-reset/confirm', { token: oldReset, new_password: 'Quartz-lantern-93-ember' })).status, 400);
      const ok = await app.http.post('/auth/verify-email', { token: tokenOf(link) });
      assert.equal(ok.status, 200);
      assert.equal(ok.body.email_verified, true);
      // The same address in another spelling is no change: still verified, no mail.
      const same = await app.http.patch('/users/me', { email: newEmail.toUpperCase() }, u.access);
      assert.equal(same.status, 200);
      assert.equal(same.body.email_verified, true);

      const types = await auditTypes(app, u.id);
      assert.ok(types.includes('email_changed') && types.includes('email_verified'), types.join());
    });
  });
}

describe('REQUIRE_EMAIL_VERIFICATION=true', () => {
  let app: TestApp;
  const smtp = new MailCatcher();
  before(async () => {
    await smtp.start();
    app = await startApp({ env: env(smtp, { REQUIRE_EMAIL_VERIFICATION: 'true' }) });
  });
  after(async () => {
    await app.close();
    await smtp.stop();
  });

  test('a wrong password: the usual invalid_credentials; the right one: invalid_grant "not verified" and a fresh link', async () => {
    const u = await registerUser(app.http);
    await smtp.waitFor(u.email, VERIFY, 1);
    const wrong = await app.http.token({ grant_type: 'password', username: u.username, password: 'wrong-Password-1' });
    assert.equal(wrong.status, 400);
    assert.deepEqual(wrong.body, { error: 'invalid_grant', error_description: 'Incorrect username or password' });
    assert.equal(smtp.to(u.email, VERIFY).length, 1, 'no mail for a wrong password');

    const right = await app.http.token({ grant_type: 'password', username: u.username, password: u.password });
    assert.equal(right.status, 400);
    assert.equal(right.body.error, 'invalid_grant');
    assert.match(right.body.error_description, /not verified/);
    const fresh = await smtp.waitFor(u.email, VERIFY, 2);
    assert.equal((await app.http.post('/auth/verify-email', { token: tokenOf(fresh) })).status, 200);
    await login(app.http, u.username);
  });

  test('the fresh links are rate-limited: at most 3 an hour, the refusal stays the same', async () => {
    const u = await registerUser(app.http);
    for (let i = 0; i < 4; i++) {
      const r = await app.http.token({ grant_type: 'password', username: u.email, password: u.password });
      assert.equal(r.status, 400);
      assert.match(r.body.error_description, /not verified/);
    }
    await smtp.waitFor(u.email, VERIFY, 3);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(smtp.to(u.email, VERIFY).length, 3);
  });
});
