// Issue 4, one node: sessions, refresh-token rotation (chains, concurrency,
// the grace window, reuse), revocation, logout, password change, the
// session list, expiry with the movable clock, and housekeeping. Everything
// over HTTP, on PGlite and (when DATABASE_URL is set) the PostgreSQL server.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import {
  backends,
  login,
  openTestDatabase,
  registerAndLogin,
  startApp,
  type LoggedIn,
  type Res,
  type TestApp,
} from './helpers.js';

const SECOND = 1000;
const DAY = 24 * 3600 * SECOND;
const REFRESH_RE = /^ghr_[A-Za-z0-9_-]{43}$/;

/** The claims of a JWT, unverified (the app verified it; tests only read). */
function claims(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

function refresh(app: TestApp, token: string, extra: Record<string, string> = {}, headers?: Record<string, string>) {
  return app.http.token({ grant_type: 'refresh_token', refresh_token: token, ...extra }, headers);
}

function assertInvalidGrant(r: Res): void {
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error, 'invalid_grant', r.text);
  assert.equal(typeof r.body.error_description, 'string');
}

function assertInvalidToken(r: Res): void {
  assert.equal(r.status, 401, r.text);
  assert.match(r.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
  assert.match(r.headers.get('content-type') ?? '', /application\/problem\+json/);
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url');

/** Log lines the app wrote (pino JSON), kept for the reuse-warning checks. */
class LogCapture extends Writable {
  readonly lines: Array<Record<string, unknown>> = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim()) this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    cb();
  }
  reuseWarnings(sessionId: string) {
    return this.lines.filter((l) => l.event === 'refresh_token_reuse' && l.sessionId === sessionId);
  }
}

for (const backend of backends()) {
  describe(`sessions and refresh tokens (${backend})`, () => {
    let app: TestApp;
    const log = new LogCapture();

    before(async () => {
      app = await startApp({ backend, logger: { level: 'warn', stream: log } });
      // Test-only audit of writes to the sessions table: proves "the session row advances once".
      await app.core.db.exec(`
        CREATE TABLE test_session_updates (session_id uuid NOT NULL);
        CREATE FUNCTION test_note_session_update() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN INSERT INTO test_session_updates VALUES (NEW.id); RETURN NEW; END $$;
        CREATE TRIGGER test_session_updates AFTER UPDATE ON sessions
          FOR EACH ROW EXECUTE FUNCTION test_note_session_update();`);
    });
    after(async () => app?.close());

    const rows = async <R>(sql: string, params: unknown[] = []) => (await app.core.db.query<R>(sql, params)).rows;
    const count = async (sql: string, params: unknown[] = []) =>
      Number((await rows<{ n: number }>(sql, params))[0]!.n);

    test('a password grant opens a session; the access token carries its id; only a hash is stored', async () => {
      const u = await registerAndLogin(app.http);
      assert.match(u.refresh, REFRESH_RE);
      const sid = claims(u.access).sid as string;
      const list = await app.http.request('GET', '/users/me/sessions', { token: u.access, headers: { 'user-agent': 'tests/1' } });
      assert.equal(list.status, 200);
      assert.equal(list.body.length, 1);
      assert.equal(list.body[0].id, sid);
      assert.equal(list.body[0].current, true);
      assert.equal(list.body[0].ip, '127.0.0.1');
      for (const k of ['created_at', 'last_used_at']) assert.ok(!Number.isNaN(Date.parse(list.body[0][k])));

      const stored = await rows<{ token_hash: string }>('SELECT token_hash FROM refresh_tokens WHERE session_id = $1', [sid]);
      assert.deepEqual(stored.map((r) => r.token_hash), [sha256(u.refresh)]);
      const session = (await rows<{ user_id: string; revoked_at: Date | null; expires_at: Date; created_at: Date }>(
        'SELECT user_id, revoked_at, expires_at, created_at FROM sessions WHERE id = $1',
        [sid],
      ))[0]!;
      assert.equal(session.user_id, u.id);
      assert.equal(session.revoked_at, null);
      assert.equal(session.expires_at.getTime() - session.created_at.getTime(), 90 * DAY);
    });

    test('GET /users/me/sessions lists every live session, current: true on the caller’s only', async () => {
      const u = await registerAndLogin(app.http);
      const second = await app.http.request('POST', '/auth/token', {
        form: { grant_type: 'password', username: u.username, password: u.password },
        headers: { 'user-agent': 'phone/2.0' },
      });
      assert.equal(second.status, 200);
      // A refresh from a new place: the list shows the latest use.
      const r = await refresh(app, second.body.refresh_token, {}, { 'user-agent': 'phone/2.1' });
      assert.equal(r.status, 200);
      const list = await app.http.get('/users/me/sessions', u.access);
      assert.equal(list.status, 200);
      assert.equal(list.body.length, 2);
      const mine = list.body.filter((s: { current: boolean }) => s.current);
      assert.equal(mine.length, 1);
      assert.equal(mine[0].id, claims(u.access).sid);
      const phone = list.body.find((s: { id: string }) => s.id === claims(second.body.access_token).sid);
      assert.equal(phone.user_agent, 'phone/2.1');
      assert.equal(phone.current, false);
    });

    test('a chain of 50 refreshes: each gives a new token, the session id stays, old ones are dead', async () => {
      const u = await registerAndLogin(app.http);
      const sid = claims(u.access).sid;
      const seen = new Set([u.refresh]);
      let token = u.refresh;
      for (let i = 0; i < 50; i++) {
        // Past the grace window each time, so an old token would count as reuse.
        app.clock.advance(11 * SECOND);
        const r = await refresh(app, token);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers.get('cache-control'), 'no-store');
        assert.equal(r.headers.get('pragma'), 'no-cache');
        assert.equal(r.body.token_type, 'bearer');
        assert.equal(r.body.scope, u.scope);
        assert.match(r.body.refresh_token, REFRESH_RE);
        assert.ok(!seen.has(r.body.refresh_token), 'every refresh token is new');
        seen.add(r.body.refresh_token);
        assert.equal(claims(r.body.access_token).sid, sid);
        token = r.body.refresh_token;
      }
      const me = await app.http.get('/users/me', (await refresh(app, token)).body.access_token);
      assert.equal(me.status, 200);
      assert.equal(await count('SELECT count(*) AS n FROM refresh_tokens WHERE session_id = $1', [sid]), 52);
      assert.equal(await count('SELECT count(*) AS n FROM refresh_tokens WHERE session_id = $1 AND used_at IS NULL', [sid]), 1);
    });

    test('50 concurrent refreshes of one token: one rotation, every answer carries the same successor', async () => {
      const u = await registerAndLogin(app.http);
      const sid = claims(u.access).sid as string;
      const before = await count('SELECT count(*) AS n FROM test_session_updates WHERE session_id = $1', [sid]);
      const answers = await Promise.all(Array.from({ length: 50 }, () => refresh(app, u.refresh)));
      for (const r of answers) assert.equal(r.status, 200, r.text);
      const successors = new Set(answers.map((r) => r.body.refresh_token));
      assert.equal(successors.size, 1, 'one successor');
      const accessTokens = new Set(answers.map((r) => r.body.access_token));
      assert.equal(accessTokens.size, 50, 'a fresh access token each');
      assert.equal(await count('SELECT count(*) AS n FROM refresh_tokens WHERE session_id = $1', [sid]), 2);
      const [successor] = [...successors] as [string];
      assert.equal(await count('SELECT count(*) AS n FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NULL', [sha256(successor)]), 1);
      assert.equal(await count('SELECT count(*) AS n FROM test_session_updates WHERE session_id = $1', [sid]), before + 1);
      // The session is healthy: the successor rotates normally.
      const next = await refresh(app, successor);
      assert.equal(next.status, 200, next.text);
    });

    test('a retry inside the grace window gets the same successor and a fresh access token', async () => {
      const u = await registerAndLogin(app.http);
      const first = await refresh(app, u.refresh);
      assert.equal(first.status, 200);
      app.clock.advance(9 * SECOND);
      const retry = await refresh(app, u.refresh);
      assert.equal(retry.status, 200, retry.text);
      assert.equal(retry.body.refresh_token, first.body.refresh_token);
      assert.notEqual(retry.body.access_token, first.body.access_token);
      assert.equal((await app.http.get('/users/me', retry.body.access_token)).status, 200);
      assert.equal((await app.http.get('/users/me', first.body.access_token)).status, 200);
      assert.equal(log.reuseWarnings(claims(u.access).sid as string).length, 0);
    });

    test('inside the grace window, a retry after the successor was used is reuse: the session ends', async () => {
      const u = await registerAndLogin(app.http);
      const sid = claims(u.access).sid as string;
      const first = await refresh(app, u.refresh);
      const second = await refresh(app, first.body.refresh_token);
      assert.equal(second.status, 200);
      app.clock.advance(2 * SECOND);
      assertInvalidGrant(await refresh(app, u.refresh));
      assertInvalidGrant(await refresh(app, second.body.refresh_token));
      assertInvalidToken(await app.http.get('/users/me', second.body.access_token));
      assertInvalidToken(await app.http.get('/users/me', u.access));
      assert.equal(log.reuseWarnings(sid).length, 1);
    });

    test('reuse after the grace window: invalid_grant, the session and its access tokens end, a warning is logged', async () => {
      const u = await registerAndLogin(app.http);
      const sid = claims(u.access).sid as string;
      const first = await refresh(app, u.refresh);
      assert.equal(first.status, 200);
      app.clock.advance(11 * SECOND);
      const reuse = await refresh(app, u.refresh, {}, { 'user-agent': 'attacker' });
      assertInvalidGrant(reuse);
      // The legitimate holder's successor is dead too, and every access token of the session.
      assertInvalidGrant(await refresh(app, first.body.refresh_token));
      assertInvalidToken(await app.http.get('/users/me', first.body.access_token));
      assertInvalidToken(await app.http.get('/users/me', u.access));
      const revoked = await rows<{ revoked_at: Date | null }>('SELECT revoked_at FROM sessions WHERE id = $1', [sid]);
      assert.ok(revoked[0]!.revoked_at);
      const warnings = log.reuseWarnings(sid);
      assert.equal(warnings.length, 1);
      assert.equal(warnings[0]!.level, 40); // pino "warn"
      assert.equal(warnings[0]!.userId, u.id);
      assert.equal(warnings[0]!.ip, '127.0.0.1');
      // The log line names no token.
      const line = JSON.stringify(warnings[0]);
      assert.ok(!line.includes(u.refresh) && !line.includes(first.body.refresh_token));
      // Presenting it again: still refused, no second event for the same session.
      assertInvalidGrant(await refresh(app, u.refresh));
      assert.equal(log.reuseWarnings(sid).length, 1);
    });

    test('a failing refresh (wider or unknown scope) does not use up the token; a narrower scope applies to that access token only', async () => {
      const u = await registerAndLogin(app.http, undefined, 'me posts:write');
      const wider = await refresh(app, u.refresh, { scope: 'me posts:write admin' });
      assert.equal(wider.status, 400);
      assert.equal(wider.body.error, 'invalid_scope');
      const unknown = await refresh(app, u.refresh, { scope: 'me superpowers' });
      assert.equal(unknown.body.error, 'invalid_scope');
      assert.equal(
        await count('SELECT count(*) AS n FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NULL', [sha256(u.refresh)]),
        1,
        'still unused',
      );
      // Long after the failures, the token still rotates (no grace-window retry, a real rotation).
      app.clock.advance(60 * SECOND);
      const narrow = await refresh(app, u.refresh, { scope: 'posts:write' });
      assert.equal(narrow.status, 200, narrow.text);
      assert.equal(narrow.body.scope, 'posts:write');
      assert.equal(claims(narrow.body.access_token).scope, 'posts:write');
      const me = await app.http.get('/users/me', narrow.body.access_token);
      assert.equal(me.status, 403, 'the narrowed access token lacks "me"');
      assert.match(me.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);
      const full = await refresh(app, narrow.body.refresh_token);
      assert.equal(full.status, 200);
      assert.equal(full.body.scope, 'me posts:write', 'no scope: the session’s first grant');
    });

    test('unknown, malformed and foreign refresh tokens get invalid_grant', async () => {
      assertInvalidGrant(await refresh(app, `ghr_${randomBytes(32).toString('base64url')}`));
      assertInvalidGrant(await refresh(app, 'not-a-token'));
      assertInvalidGrant(await refresh(app, `ghr_${'A'.repeat(44)}`));
      // A genuine token of another deployment (own database and secret).
      const other = await startApp({ backend: 'pglite', env: { SECRET_KEY: 'another-deployment-secret-0123456789abcdef' } });
      try {
        const foreign = await registerAndLogin(other.http);
        assertInvalidGrant(await refresh(app, foreign.refresh));
        assertInvalidToken(await app.http.get('/users/me', foreign.access));
      } finally {
        await other.close();
      }
      const missing = await app.http.token({ grant_type: 'refresh_token' });
      assert.equal(missing.status, 400);
      assert.equal(missing.body.error, 'invalid_request');
    });

    test('a refresh token expires after REFRESH_TOKEN_EXPIRE_DAYS (clock)', async () => {
      const u = await registerAndLogin(app.http);
      app.clock.advance(13 * DAY);
      const ok = await refresh(app, u.refresh);
      assert.equal(ok.status, 200, 'still valid after 13 days');
      app.clock.advance(14 * DAY + SECOND);
      assertInvalidGrant(await refresh(app, ok.body.refresh_token));
    });

    test('a session ends SESSION_MAX_DAYS after it began, however often it is refreshed (clock)', async () => {
      const u = await registerAndLogin(app.http);
      let token = u.refresh;
      for (let day = 13; day < 90; day += 13) {
        app.clock.advance(13 * DAY);
        const r = await refresh(app, token);
        assert.equal(r.status, 200, `day ${day}: ${r.text}`);
        token = r.body.refresh_token;
      }
      // Day 78 now; the latest token is valid until day 90 (not day 92).
      app.clock.advance(11 * DAY);
      const r = await refresh(app, token);
      assert.equal(r.status, 200, 'day 89');
      app.clock.advance(DAY + SECOND);
      assertInvalidGrant(await refresh(app, r.body.refresh_token));
    });

    test('the refresh token of a disabled user gets invalid_grant, and is usable again once re-enabled', async () => {
      const u = await registerAndLogin(app.http);
      await app.core.db.query('UPDATE users SET disabled = true WHERE id = $1', [u.id]);
      await app.core.userStates.changed(u.id);
      assertInvalidGrant(await refresh(app, u.refresh));
      assertInvalidToken(await app.http.get('/users/me', u.access));
      await app.core.db.query('UPDATE users SET disabled = false WHERE id = $1', [u.id]);
      await app.core.userStates.changed(u.id);
      assert.equal((await refresh(app, u.refresh)).status, 200, 'the refused attempt did not use the token up');
    });

    describe('revocation (RFC 7009)', () => {
      const revoke = (token: string, hint?: string) =>
        app.http.request('POST', '/auth/revoke', { form: hint ? { token, token_type_hint: hint } : { token } });

      for (const hint of [undefined, 'refresh_token', 'access_token', 'something_else']) {
        test(`revoking a refresh token (hint ${hint ?? 'none'}) ends its session`, async () => {
          const u = await registerAndLogin(app.http);
          const other = await login(app.http, u.username);
          const r = await revoke(u.refresh, hint);
          assert.equal(r.status, 200);
          assert.deepEqual(r.body, {}, 'RFC 7009 with the v2 contract: {} as JSON');
          assertInvalidGrant(await refresh(app, u.refresh));
          assertInvalidToken(await app.http.get('/users/me', u.access));
          // Another session of the same user is untouched.
          assert.equal((await app.http.get('/users/me', other.access)).status, 200);
          assert.equal((await refresh(app, other.refresh)).status, 200);
        });
      }

      for (const hint of [undefined, 'access_token', 'refresh_token']) {
        test(`revoking an access token (hint ${hint ?? 'none'}) ends that token only`, async () => {
          const u = await registerAndLogin(app.http);
          const r = await revoke(u.access, hint);
          assert.equal(r.status, 200);
          assert.deepEqual(r.body, {});
          assertInvalidToken(await app.http.get('/users/me', u.access));
          const next = await refresh(app, u.refresh);
          assert.equal(next.status, 200, 'the session lives on');
          assert.equal((await app.http.get('/users/me', next.body.access_token)).status, 200);
        });
      }

      test('any well-formed request is 200; a request without a token is invalid_request', async () => {
        for (const token of ['garbage', `ghr_${randomBytes(32).toString('base64url')}`, 'a.b.c']) {
          const r = await revoke(token);
          assert.equal(r.status, 200, token);
          assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
          assert.deepEqual(r.body, {});
        }
        const u = await registerAndLogin(app.http);
        assert.equal((await revoke(u.refresh)).status, 200);
        assert.equal((await revoke(u.refresh)).status, 200, 'twice is fine');
        const missing = await app.http.request('POST', '/auth/revoke', { form: {} });
        assert.equal(missing.status, 400);
        assert.equal(missing.body.error, 'invalid_request');
      });
    });

    describe('logout', () => {
      async function threeSessions(): Promise<[LoggedIn, LoggedIn, LoggedIn]> {
        const a = await registerAndLogin(app.http);
        const b = { ...a, ...(await login(app.http, a.username)) };
        const c = { ...a, ...(await login(app.http, a.username)) };
        return [a, b, c];
      }
      const logout = (token: string, scope?: string) =>
        app.http.request('POST', `/auth/logout${scope ? `?scope=${scope}` : ''}`, { token });

      test('local (the default) ends this session only', async () => {
        const [a, b] = await threeSessions();
        const r = await logout(a.access);
        assert.equal(r.status, 204);
        assert.equal(r.text, '');
        assertInvalidToken(await app.http.get('/users/me', a.access));
        assertInvalidGrant(await refresh(app, a.refresh));
        assert.equal((await app.http.get('/users/me', b.access)).status, 200);
        assert.equal((await refresh(app, b.refresh)).status, 200);
        assertInvalidToken(await logout(a.access, 'local'));
      });

      test('others ends every other session; this one, its access token and its refresh token keep working', async () => {
        const [a, b, c] = await threeSessions();
        assert.equal((await logout(a.access, 'others')).status, 204);
        for (const s of [b, c]) {
          assertInvalidToken(await app.http.get('/users/me', s.access));
          assertInvalidGrant(await refresh(app, s.refresh));
        }
        // v2: the calling session goes on, access token included.
        assert.equal((await app.http.get('/users/me', a.access)).status, 200);
        const next = await refresh(app, a.refresh);
        assert.equal(next.status, 200);
        const list = await app.http.get('/users/me/sessions', next.body.access_token);
        assert.deepEqual(list.body.map((s: { id: string }) => s.id), [claims(a.access).sid]);
      });

      test('global ends every session of the user, and no other user’s', async () => {
        const [a, b, c] = await threeSessions();
        const stranger = await registerAndLogin(app.http);
        assert.equal((await logout(b.access, 'global')).status, 204);
        for (const s of [a, b, c]) {
          assertInvalidToken(await app.http.get('/users/me', s.access));
          assertInvalidGrant(await refresh(app, s.refresh));
        }
        assert.equal((await app.http.get('/users/me', stranger.access)).status, 200);
      });

      test('a bad scope is 422; no token is 401', async () => {
        const a = await registerAndLogin(app.http);
        assert.equal((await logout(a.access, 'everything')).status, 422);
        const anon = await app.http.request('POST', '/auth/logout');
        assert.equal(anon.status, 401);
        assert.equal((await app.http.get('/users/me', a.access)).status, 200);
      });
    });

    test('DELETE /users/me/sessions/{id} ends that session; another user’s is 404', async () => {
      const a = await registerAndLogin(app.http);
      const a2 = await login(app.http, a.username);
      const stranger = await registerAndLogin(app.http);
      const strangerSid = claims(stranger.access).sid as string;
      assert.equal((await app.http.delete(`/users/me/sessions/${strangerSid}`, a.access)).status, 404);
      assert.equal((await app.http.get('/users/me', stranger.access)).status, 200);
      assert.equal((await app.http.delete('/users/me/sessions/not-a-uuid', a.access)).status, 404);
      const sid2 = claims(a2.access).sid as string;
      assert.equal((await app.http.delete(`/users/me/sessions/${sid2}`, a.access)).status, 204);
      assertInvalidToken(await app.http.get('/users/me', a2.access));
      assertInvalidGrant(await refresh(app, a2.refresh));
      assert.equal((await app.http.delete(`/users/me/sessions/${sid2}`, a.access)).status, 404, 'already ended');
      assert.equal((await app.http.get('/users/me', a.access)).status, 200);
    });

    test('PUT /users/me/password ends every other session and keeps this one', async () => {
      const a = await registerAndLogin(app.http);
      const b = await login(app.http, a.username);
      const newPassword = 'quartz-Lantern-93-meadow';
      const r = await app.http.put('/users/me/password', { current_password: a.password, new_password: newPassword }, a.access);
      assert.equal(r.status, 204, r.text);
      assertInvalidToken(await app.http.get('/users/me', b.access));
      assertInvalidGrant(await refresh(app, b.refresh));
      assert.equal((await app.http.get('/users/me', a.access)).status, 200);
      assert.equal((await refresh(app, a.refresh)).status, 200);
      await login(app.http, a.username, newPassword);
    });

    test('housekeeping deletes sessions and tokens that ended long ago, and keeps live ones', async () => {
      const old = await registerAndLogin(app.http);
      const oldSid = claims(old.access).sid as string;
      const oldRefreshed = await refresh(app, old.refresh);
      assert.equal(oldRefreshed.status, 200);
      await app.http.request('POST', '/auth/logout', { token: old.access });
      const idle = await registerAndLogin(app.http); // never refreshed: its token expires
      const idleSid = claims(idle.access).sid as string;
      const steady = await registerAndLogin(app.http); // refreshed every week: stays live
      let steadyToken = steady.refresh;
      // 7 days of retention after the revocation, and a bit (and past the idle one's expiry).
      for (let week = 0; week < 4; week++) {
        app.clock.advance(7 * DAY);
        const r = await refresh(app, steadyToken);
        assert.equal(r.status, 200);
        steadyToken = r.body.refresh_token;
      }
      const fresh = await registerAndLogin(app.http);
      const deleted = await app.core.sessions.housekeep();
      assert.ok(deleted >= 2, `deleted ${deleted}`);
      for (const sid of [oldSid, idleSid]) {
        assert.equal(await count('SELECT count(*) AS n FROM sessions WHERE id = $1', [sid]), 0, sid);
        assert.equal(await count('SELECT count(*) AS n FROM refresh_tokens WHERE session_id = $1', [sid]), 0);
      }
      for (const u of [steady, fresh]) {
        assert.equal(await count('SELECT count(*) AS n FROM sessions WHERE id = $1', [claims(u.access).sid]), 1);
      }
      assert.equal((await refresh(app, steadyToken)).status, 200);
      assert.equal((await refresh(app, fresh.refresh)).status, 200);
    });
  });
}

for (const backend of backends()) {
  test(`housekeeping never forgets a revocation while the session's access tokens live (${backend}, SESSION_RETENTION_DAYS=0)`, async () => {
    const tdb = await openTestDatabase(backend);
    const env = { SESSION_RETENTION_DAYS: '0' };
    let node: TestApp | undefined;
    try {
      node = await startApp({ db: tdb, env });
      const u = await registerAndLogin(node.http);
      const other = await registerAndLogin(node.http);
      assert.equal((await node.http.request('POST', '/auth/logout', { token: other.access })).status, 204);
      node.clock.advance(60 * SECOND);
      const ended = await registerAndLogin(node.http);
      assert.equal((await node.http.request('POST', '/auth/revoke', { form: { token: ended.refresh } })).status, 200);
      await node.core.sessions.housekeep();
      await node.close();
      // A node starting now (a restart, a deploy) knows only what PostgreSQL tells it.
      node = await startApp({ db: tdb, env, clock: node.clock });
      assertInvalidToken(await node.http.get('/users/me', ended.access));
      assertInvalidToken(await node.http.get('/users/me', other.access));
      assert.equal((await node.http.get('/users/me', u.access)).status, 200);
      // Once no access token of theirs can be presented, they go.
      node.clock.advance(16 * 60 * SECOND + 60 * SECOND + 30 * SECOND);
      await node.core.sessions.housekeep();
      const left = await node.core.db.query('SELECT id FROM sessions WHERE revoked_at IS NOT NULL');
      assert.equal(left.rowCount, 0);
    } finally {
      await node?.close();
      await tdb.close();
    }
  });
}
