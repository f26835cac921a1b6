// Legacy tokens (API.md "Moving over from a FastAPI app"): during the
// window, an HS256 token made by the old app with LEGACY_SECRET_KEY
// (sub = username, exp, nothing else) is accepted as that user with the
// scopes of role user, never admin; disabled and deleted users, expired
// tokens, other keys and algorithms are refused, and so is everything
// after the window. Every use is counted in the logs.
import { SignJWT, UnsecuredJWT } from 'jose';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { loggerOptions } from '../src/app.js';
import { backends, login, makeAdmin, registerAndLogin, startApp, TEST_SECRET, testConfig, type LoggedIn, type Res, type TestApp } from './helpers.js';

const LEGACY_KEY = 'Testing123';
const WINDOW_END = Date.parse('2030-01-01T00:00:00Z');
const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

class Capture extends Writable {
  lines: Array<Record<string, unknown>> = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void) {
    for (const line of chunk.toString().split('\n')) if (line.trim()) this.lines.push(JSON.parse(line) as Record<string, unknown>);
    done();
  }
}

/** What the tutorial's create_access_token makes: {"sub": …, "exp": …}, HS256, typ JWT. */
function tutorialToken(sub: string, expSeconds: number, key = LEGACY_KEY, header: Record<string, unknown> = { alg: 'HS256', typ: 'JWT' }): string {
  const input = `${b64url(header)}.${b64url({ sub, exp: expSeconds })}`;
  const alg = header.alg === 'HS512' ? 'sha512' : 'sha256';
  return `${input}.${createHmac(alg, key).update(input).digest('base64url')}`;
}

function assertInvalidToken(r: Res, why: string) {
  assert.equal(r.status, 401, `${why}: ${r.status} ${r.text}`);
  assert.match(r.headers.get('www-authenticate') ?? '', /error="invalid_token"/, why);
}

for (const backend of backends()) {
  describe(`legacy tokens (${backend})`, () => {
    let app: TestApp;
    let sink: Capture;
    let u: LoggedIn;
    const now = () => Math.floor(app.clock.now() / 1000);

    before(async () => {
      sink = new Capture();
      const env = { LEGACY_SECRET_KEY: LEGACY_KEY, LEGACY_TOKENS_UNTIL: new Date(WINDOW_END).toISOString() };
      app = await startApp({ backend, env, logger: { ...(loggerOptions(testConfig()) as object), level: 'info', stream: sink } });
      u = await registerAndLogin(app.http);
    });
    after(async () => app.close());

    test("the old app's token works as that user, with scopes me posts:write", async () => {
      const t = tutorialToken(u.username, now() + 1800);
      const me = await app.http.get('/users/me', t);
      assert.equal(me.status, 200, me.text);
      assert.equal(me.body.id, u.id);
      const post = await app.http.post('/posts', { title: 'from the old app', body: 'b' }, t);
      assert.equal(post.status, 201, post.text);
      // The name as the old app spelt it (case), and the email as sub (some tutorials use it): the same user.
      assert.equal((await app.http.get('/users/me', tutorialToken(u.username.toUpperCase(), now() + 60))).body.id, u.id);
      assert.equal((await app.http.get('/users/me', tutorialToken(u.email, now() + 60))).body.id, u.id);
      // PyJWT leaves typ out when asked; python-jose writes it: both are the old app's.
      assert.equal((await app.http.get('/users/me', tutorialToken(u.username, now() + 60, LEGACY_KEY, { alg: 'HS256' }))).status, 200);
    });

    test('never admin: an admin user with a legacy token gets 403 on admin routes', async () => {
      const admin = await makeAdmin(app, await registerAndLogin(app.http));
      assert.equal((await app.http.get('/admin/users', admin.access)).status, 200, 'control: the admin’s own token');
      const t = tutorialToken(admin.username, now() + 600);
      assert.equal((await app.http.get('/users/me', t)).status, 200);
      const r = await app.http.get('/admin/users', t);
      assert.equal(r.status, 403, r.text);
      assert.match(r.headers.get('www-authenticate') ?? '', /insufficient_scope/);
    });

    test('disabled users refused at once; deleted users and unknown names refused', async () => {
      const v = await registerAndLogin(app.http);
      const t = tutorialToken(v.username, now() + 600);
      assert.equal((await app.http.get('/users/me', t)).status, 200);
      const admin = await makeAdmin(app, await registerAndLogin(app.http));
      assert.equal((await app.http.patch(`/admin/users/${v.id}`, { disabled: true }, admin.access)).status, 200);
      assertInvalidToken(await app.http.get('/users/me', t), 'disabled');
      assertInvalidToken(await app.http.get('/users/me', tutorialToken('nobody_by_that_name', now() + 600)), 'unknown');
      const w = await registerAndLogin(app.http);
      const tw = tutorialToken(w.username, now() + 600);
      assert.equal((await app.http.get('/users/me', tw)).status, 200);
      await app.core.db.query('DELETE FROM users WHERE id = $1', [w.id]);
      await app.core.userStates.changed(w.id);
      assertInvalidToken(await app.http.get('/users/me', tw), 'deleted');
      // A legacy token names its user by name, as the old app read it: the deleted account's cached id is
      // not used; the name now belongs to a new account (no route deletes users; the database can).
      const x = await registerAndLogin(app.http, w.username);
      assert.equal((await app.http.get('/users/me', tw)).body.id, x.id);
    });

    test('expired, other key, other algorithm, none, extra header members, our typ: refused', async () => {
      assertInvalidToken(await app.http.get('/users/me', tutorialToken(u.username, now() - 120)), 'expired');
      assertInvalidToken(await app.http.get('/users/me', tutorialToken(u.username, now() + 600, 'another-key')), 'other key');
      // Gatehouse's own key does not make a legacy token (LEGACY_SECRET_KEY differs from SECRET_KEY here).
      assertInvalidToken(await app.http.get('/users/me', tutorialToken(u.username, now() + 600, TEST_SECRET)), 'SECRET_KEY');
      assertInvalidToken(await app.http.get('/users/me', tutorialToken(u.username, now() + 600, LEGACY_KEY, { alg: 'HS512', typ: 'JWT' })), 'HS512');
      const none = new UnsecuredJWT({ sub: u.username, exp: now() + 600 }).encode();
      assertInvalidToken(await app.http.get('/users/me', none), 'alg none');
      const noneSigned = tutorialToken(u.username, now() + 600, LEGACY_KEY, { alg: 'none' });
      assertInvalidToken(await app.http.get('/users/me', noneSigned), 'alg none with a signature');
      assertInvalidToken(await app.http.get('/users/me', tutorialToken(u.username, now() + 600, LEGACY_KEY, { alg: 'HS256', jku: 'http://x/' })), 'jku');
      // A token claiming to be ours is never read as a legacy one.
      assertInvalidToken(await app.http.get('/users/me', tutorialToken(u.username, now() + 600, LEGACY_KEY, { alg: 'HS256', typ: 'at+jwt' })), 'typ at+jwt');
      const noExp = await new SignJWT({ sub: u.username }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(LEGACY_KEY));
      assertInvalidToken(await app.http.get('/users/me', noExp), 'no exp');
      const noSub = await new SignJWT({ exp: now() + 600 }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(LEGACY_KEY));
      assertInvalidToken(await app.http.get('/users/me', noSub), 'no sub');
    });

    test('logout with a legacy token revokes that token (it has no session); ending all sessions ends every legacy token', async () => {
      const v = await registerAndLogin(app.http);
      const [t1, t2, t3] = [600, 601, 602].map((s) => tutorialToken(v.username, now() + s)) as [string, string, string];
      assert.equal((await app.http.request('POST', '/auth/logout', { token: t1 })).status, 204);
      assertInvalidToken(await app.http.get('/users/me', t1), 'logged out');
      assert.equal((await app.http.get('/users/me', t2)).status, 200, 'another legacy token is not that one');
      assert.equal((await app.http.get('/users/me', v.access)).status, 200, 'local: the Gatehouse session lives');
      // others, from a legacy token: the caller keeps working, the Gatehouse sessions end.
      assert.equal((await app.http.request('POST', '/auth/logout?scope=others', { token: t2 })).status, 204);
      assert.equal((await app.http.get('/users/me', t2)).status, 200, 'others: the caller lives');
      assertInvalidToken(await app.http.get('/users/me', v.access), 'others: the Gatehouse session');
      assert.equal((await app.http.request('POST', '/auth/logout?scope=global', { token: t2 })).status, 204);
      assertInvalidToken(await app.http.get('/users/me', t2), 'global: the legacy token used');
      assertInvalidToken(await app.http.get('/users/me', t3), 'global: every other legacy token of the user');
      // Another user's legacy tokens are untouched.
      assert.equal((await app.http.get('/users/me', tutorialToken(u.username, now() + 600))).status, 200);
    });

    test('POST /auth/revoke (RFC 7009) ends a legacy token too, and only that one; a refused one is nothing to revoke', async () => {
      const v = await registerAndLogin(app.http);
      const [t1, t2] = [700, 701].map((s) => tutorialToken(v.username, now() + s)) as [string, string];
      assert.equal((await app.http.get('/users/me', t1)).status, 200);
      const r = await app.http.request('POST', '/auth/revoke', { form: { token: t1 } });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body, {});
      assertInvalidToken(await app.http.get('/users/me', t1), 'revoked');
      assert.equal((await app.http.get('/users/me', t2)).status, 200, 'another legacy token of the user lives');
      assert.equal((await app.http.get('/users/me', v.access)).status, 200, 'and the Gatehouse session');
      await app.core.audit.flush();
      const events = await app.http.get('/users/me/audit?limit=100', v.access);
      assert.ok(
        (events.body.items as Array<{ type: string; detail: Record<string, unknown> }>).some((e) => e.type === 'revoke' && e.detail.token_type === 'legacy_access_token'),
        events.text,
      );
      // Expired, signed with another key, already revoked: 200 {} and nothing changes.
      for (const t of [tutorialToken(v.username, now() - 3600), tutorialToken(v.username, now() + 600, 'another-key'), t1]) {
        const again = await app.http.request('POST', '/auth/revoke', { form: { token: t } });
        assert.equal(again.status, 200, again.text);
      }
      assert.equal((await app.http.get('/users/me', t2)).status, 200);
    });

    test('a password change (from a Gatehouse token) ends the user’s legacy tokens; logout others too', async () => {
      const v = await registerAndLogin(app.http);
      const t = tutorialToken(v.username, now() + 600);
      assert.equal((await app.http.get('/users/me', t)).status, 200);
      const r = await app.http.put('/users/me/password', { current_password: v.password, new_password: 'quartz-Meadow-93-lantern' }, v.access);
      assert.equal(r.status, 204, r.text);
      assertInvalidToken(await app.http.get('/users/me', t), 'after the password change');
      const w = await registerAndLogin(app.http);
      const tw = tutorialToken(w.username, now() + 600);
      assert.equal((await app.http.request('POST', '/auth/logout?scope=others', { token: w.access })).status, 204);
      assertInvalidToken(await app.http.get('/users/me', tw), 'others from a Gatehouse token');
      assert.equal((await app.http.get('/users/me', w.access)).status, 200);
    });

    test('every use is counted in the logs: first use per user, then a count line', async () => {
      const v = await registerAndLogin(app.http);
      for (let i = 0; i < 3; i++) assert.equal((await app.http.get('/users/me', tutorialToken(v.username, now() + 600 + i))).status, 200);
      const first = sink.lines.filter((l) => l.event === 'legacy_token_first_use' && l.userId === v.id);
      assert.equal(first.length, 1);
      app.core.legacyTokens!.report();
      const counts = sink.lines.filter((l) => l.event === 'legacy_tokens');
      assert.ok(counts.length >= 1);
      assert.ok((counts.at(-1)!.accepted as number) >= 3);
      assert.ok(!JSON.stringify(sink.lines).includes(LEGACY_KEY), 'the legacy key never logged');
    });

    test('after LEGACY_TOKENS_UNTIL: 401 for every legacy token; our own tokens unaffected', async () => {
      const t = tutorialToken(u.username, Math.floor(WINDOW_END / 1000) + 3600);
      assert.equal((await app.http.get('/users/me', t)).status, 200);
      const jump = WINDOW_END - app.clock.now();
      app.clock.advance(jump);
      try {
        const r = await app.http.get('/users/me', t);
        assertInvalidToken(r, 'after the window');
        assert.match(r.headers.get('www-authenticate') ?? '', /no longer accepted/);
        const fresh = await login(app.http, u.username);
        assert.equal((await app.http.get('/users/me', fresh.access)).status, 200);
        app.core.legacyTokens!.report();
        assert.ok(sink.lines.some((l) => l.event === 'legacy_tokens' && (l.refusedAfterWindow as number) >= 1));
      } finally {
        app.clock.advance(-jump);
      }
    });
  });
}

describe('legacy token configuration', () => {
  test('both variables or neither; an instant with a time zone', async () => {
    assert.throws(() => testConfig({ LEGACY_SECRET_KEY: 'x' }), /LEGACY_TOKENS_UNTIL: is required/);
    assert.throws(() => testConfig({ LEGACY_TOKENS_UNTIL: '2030-01-01T00:00:00Z' }), /LEGACY_SECRET_KEY: is required/);
    assert.throws(() => testConfig({ LEGACY_SECRET_KEY: 'x', LEGACY_TOKENS_UNTIL: '2030-01-01T00:00:00' }), /LEGACY_TOKENS_UNTIL: must be an ISO 8601/);
    assert.throws(() => testConfig({ LEGACY_SECRET_KEY: 'x', LEGACY_TOKENS_UNTIL: 'next week' }), /LEGACY_TOKENS_UNTIL/);
    assert.equal(testConfig({ LEGACY_SECRET_KEY: 'x', LEGACY_TOKENS_UNTIL: '2030-01-01' }).legacyTokensUntil, '2030-01-01');
    assert.throws(() => testConfig({ TOKEN_PROFILE: 'jwt' }), /TOKEN_PROFILE: must be one of rfc9068, fastapi/);
  });
});
