// Password reset by mail (issue 12), end to end over HTTP with a real SMTP
// server: the request answers 202 {} for any address and mails a
// single-use, 30-minute link only to a known one; the confirmation sets
// the password under the policy, ends every session, kills every other
// reset token and mails a notice.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { backends, login, registerAndLogin, startApp, STRONG_PASSWORD, uniqueName, type TestApp } from './helpers.js';
import { MailCatcher, outboxDrained, RESET, RESET_DONE, tokenOf } from './mail-catcher.js';

const PUBLIC_URL = 'https://auth.example.test';
const NEW_PASSWORD = 'Quartz-lantern-93-ember';

for (const backend of backends()) {
  describe(`password reset (${backend})`, () => {
    let app: TestApp;
    const smtp = new MailCatcher();

    before(async () => {
      await smtp.start();
      app = await startApp({ backend, env: { SMTP_URL: smtp.url, PUBLIC_URL, RATE_LIMIT_PASSWORD_RESET_PER_HOUR: '100000' } });
    });
    after(async () => {
      await app.close();
      await smtp.stop();
    });

    const ask = (email: string) => app.http.post('/auth/password-reset', { email });

    test('a known address gets a mail with a single-use link on /reset-password; the token never in the subject', async () => {
      const u = await registerAndLogin(app.http);
      const r = await ask(u.email.toUpperCase()); // addresses match case-insensitively
      assert.equal(r.status, 202);
      assert.deepEqual(r.body, {});
      assert.equal(r.headers.get('cache-control'), 'no-store');
      const mail = await smtp.waitFor(u.email, RESET);
      const token = tokenOf(mail);
      assert.match(token, /^[A-Za-z0-9_-]{43}$/, '256 random bits, base64url');
      assert.ok(!mail.subject.includes(token), 'no token in the subject');
      assert.ok(mail.text.includes(`${PUBLIC_URL}/reset-password#token=${token}`), 'PUBLIC_URL + page + fragment');
      assert.ok(mail.html.includes(`${PUBLIC_URL}/reset-password#token=${token}`), 'the HTML part has the link');
      assert.ok(mail.text.includes(`code on the reset page: ${token}`), 'the mail shows the token too');
      assert.match(mail.text, /30 minutes/);
      assert.ok(mail.parsed.from?.text.includes('no-reply@localhost'));
      // Stored only as its SHA-256.
      const rows = (await app.core.db.query<{ token_hash: Buffer }>(`SELECT token_hash FROM account_tokens WHERE purpose = 'password_reset'`)).rows;
      assert.ok(rows.every((x) => Buffer.from(x.token_hash).length === 32));
      const dump = JSON.stringify((await app.core.db.query('SELECT * FROM account_tokens')).rows) + JSON.stringify((await app.core.db.query('SELECT * FROM mail_outbox')).rows);
      assert.ok(!dump.includes(token), 'the token is nowhere in the database');
    });

    test('an unknown address: 202 {} and no mail', async () => {
      const before = smtp.mails.length;
      const r = await ask(`${uniqueName('nobody')}@example.com`);
      assert.equal(r.status, 202);
      assert.deepEqual(r.body, {});
      await outboxDrained(app.core.db);
      assert.equal(smtp.mails.length, before);
    });

    test('confirm: policy (422 naming new_password, token kept), then 204; sessions end, other tokens die, a notice is mailed', async () => {
      const u = await registerAndLogin(app.http);
      const other = await login(app.http, u.username);
      // Form-encoded works too.
      assert.equal((await app.http.request('POST', '/auth/password-reset', { form: { email: u.email } })).status, 202);
      const first = tokenOf(await smtp.waitFor(u.email, RESET, 1));
      assert.equal((await ask(u.email)).status, 202);
      const second = tokenOf(await smtp.waitFor(u.email, RESET, 2));
      assert.notEqual(first, second);

      const weak = await app.http.post('/auth/password-reset/confirm', { token: first, new_password: 'password' });
      assert.equal(weak.status, 422, weak.text);
      assert.ok(weak.body.errors.every((e: { path: string }) => e.path === '/new_password'), weak.text);
      const named = await app.http.post('/auth/password-reset/confirm', { token: first, new_password: `${u.username}-Zebra-81` });
      assert.equal(named.status, 422, 'the policy knows the user (no username in the password)');

      const ok = await app.http.post('/auth/password-reset/confirm', { token: first, new_password: NEW_PASSWORD });
      assert.equal(ok.status, 204, ok.text);
      assert.equal(ok.headers.get('cache-control'), 'no-store');

      // Every session ended: access tokens refused, refresh tokens dead.
      assert.equal((await app.http.get('/users/me', u.access)).status, 401);
      assert.equal((await app.http.get('/users/me', other.access)).status, 401);
      assert.equal((await app.http.token({ grant_type: 'refresh_token', refresh_token: other.refresh })).status, 400);
      // The token is spent, and the other one died with it.
      for (const token of [first, second]) {
        const again = await app.http.post('/auth/password-reset/confirm', { token, new_password: NEW_PASSWORD });
        assert.equal(again.status, 400, again.text);
        assert.equal(again.headers.get('content-type'), 'application/problem+json; charset=utf-8');
        assert.equal(again.body.code, 'reset_token_invalid');
      }
      const notice = await smtp.waitFor(u.email, RESET_DONE);
      assert.ok(!/#token=/.test(notice.text));
      // The new password works, the old one does not; following the link proved the address.
      const fresh = await login(app.http, u.username, NEW_PASSWORD);
      assert.equal((await app.http.token({ grant_type: 'password', username: u.username, password: STRONG_PASSWORD })).status, 400);
      const me = await app.http.get('/users/me', fresh.access);
      assert.equal(me.body.email_verified, true);

      await app.core.audit.flush();
      const types = (await app.core.db.query<{ type: string; detail: { outcome?: string } }>('SELECT type, detail FROM audit_events WHERE user_id = $1', [u.id])).rows;
      assert.equal(types.filter((e) => e.type === 'password_reset_requested' && e.detail.outcome === 'mailed').length, 2);
      assert.equal(types.filter((e) => e.type === 'password_reset').length, 1);
    });

    test('unknown, malformed and expired tokens: 400 problem; the link lives 30 minutes', async () => {
      for (const token of ['x', 'A'.repeat(43), '']) {
        const r = await app.http.post('/auth/password-reset/confirm', { token, new_password: NEW_PASSWORD });
        assert.equal(r.status, 400, r.text);
        assert.equal(r.body.code, 'reset_token_invalid');
      }
      const u = await registerAndLogin(app.http);
      await ask(u.email);
      const token = tokenOf(await smtp.waitFor(u.email, RESET));
      app.clock.advance(31 * 60_000);
      const r = await app.http.post('/auth/password-reset/confirm', { token, new_password: NEW_PASSWORD });
      assert.equal(r.status, 400);
      assert.equal(r.body.code, 'reset_token_invalid');
      await login(app.http, u.username); // unchanged
      // Housekeeping keeps an expired token while it still counts towards the hourly limit, then deletes it.
      const count = async () => (await app.core.db.query<{ n: number }>('SELECT count(*)::int AS n FROM account_tokens WHERE user_id = $1 AND purpose = $2', [u.id, 'password_reset'])).rows[0]!.n;
      await app.core.accountEmail!.prune();
      assert.equal(await count(), 1);
      app.clock.advance(30 * 60_000);
      await app.core.accountEmail!.prune();
      assert.equal(await count(), 0);
    });

    test('per address at most 3 mails an hour: beyond, still 202 and no mail', async () => {
      const u = await registerAndLogin(app.http);
      for (let i = 0; i < 5; i++) assert.equal((await ask(u.email)).status, 202);
      await outboxDrained(app.core.db);
      await smtp.waitFor(u.email, RESET, 3);
      assert.equal(smtp.to(u.email, RESET).length, 3);
      app.clock.advance(61 * 60_000);
      assert.equal((await ask(u.email)).status, 202);
      await smtp.waitFor(u.email, RESET, 4);
    });

    test('bad bodies: 422 or 415, never a 5xx', async () => {
      assert.equal((await app.http.post('/auth/password-reset', { email: 'not-an-address' })).status, 422);
      assert.equal((await app.http.post('/auth/password-reset', {})).status, 422);
      assert.equal((await app.http.post('/auth/password-reset', { email: 'a@example.com', extra: 1 })).status, 422);
      assert.equal((await app.http.post('/auth/password-reset/confirm', { token: 'x' })).status, 422);
      assert.equal((await app.http.request('POST', '/auth/password-reset', { body: 'x', headers: { 'content-type': 'text/plain' } })).status, 415);
    });
  });
}

describe('password reset: the per-IP limit', () => {
  let app: TestApp;
  const smtp = new MailCatcher();
  before(async () => {
    await smtp.start();
    app = await startApp({ env: { SMTP_URL: smtp.url, RATE_LIMIT_PASSWORD_RESET_PER_HOUR: '2' } });
  });
  after(async () => {
    await app.close();
    await smtp.stop();
  });

  test('past the limit: 429 with Retry-After, whatever the address', async () => {
    for (let i = 0; i < 2; i++) assert.equal((await app.http.post('/auth/password-reset', { email: `x${i}@example.com` })).status, 202);
    const r = await app.http.post('/auth/password-reset', { email: 'y@example.com' });
    assert.equal(r.status, 429);
    assert.equal(r.body.code, 'rate_limited');
    assert.ok(Number(r.headers.get('retry-after')) > 0);
  });
});
