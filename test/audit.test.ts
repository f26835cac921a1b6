// Issue 9, the audit log (docs/API.md "Audit log"): every security event is
// a row of audit_events with the right fields; a failed login records what
// was typed as the username and never a password; no password or token
// text in any row or log line; keyset pages and filters; your own events
// only on /users/me/audit; 403 for non-admins; events buffered at shutdown
// are written by app.close(); retention pruning (MovableClock); the bound
// while PostgreSQL refuses writes; audit: false. Over HTTP, on PGlite and
// (with DATABASE_URL) the PostgreSQL server.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { AuditEventView as Event } from '../src/auth/audit.js';
import {
  backends,
  eventually,
  login,
  makeAdmin,
  openTestDatabase,
  registerAndLogin,
  registerUser,
  startApp,
  STRONG_PASSWORD,
  uniqueName,
  type LoggedIn,
  type Res,
  type TestApp,
} from './helpers.js';

const SECOND = 1000;
const DAY = 24 * 3600 * SECOND;
const UA = 'audit-tests/1.0';
const WRONG_PASSWORD = 'Wrong-Typed-Secret-8812';
const NEW_PASSWORD = 'brisk-Harbor-93-lantern';

/** Every log line the app wrote, as text. */
class LogText extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString('utf8');
    cb();
  }
  lines(event: string): Array<Record<string, unknown>> {
    return this.text
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.event === event);
  }
}

const sid = (jwt: string) => (JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as { sid: string }).sid;
const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url');
const headers = { 'user-agent': UA };

for (const backend of backends()) {
  describe(`audit log (${backend})`, () => {
    let app: TestApp;
    let admin: LoggedIn;
    const log = new LogText();

    before(async () => {
      app = await startApp({ backend, logger: { level: 'info', stream: log } });
      admin = await makeAdmin(app, await registerAndLogin(app.http, uniqueName('root')));
    });
    after(async () => app?.close());

    /** The admin's view of one user's events (flushed first: the test does not wait for the timer). */
    async function eventsOf(userId: string, query = ''): Promise<Event[]> {
      await app.core.audit.flush();
      const r = await app.http.get(`/admin/audit?user_id=${userId}&limit=100${query}`, admin.access);
      assert.equal(r.status, 200, r.text);
      return r.body.items as Event[];
    }
    const tokenAs = (form: Record<string, string>) => app.http.token(form, headers);
    const one = (events: Event[], type: string) => {
      const found = events.filter((e) => e.type === type);
      assert.equal(found.length, 1, `one ${type} event: ${JSON.stringify(events)}`);
      return found[0]!;
    };

    test('register, login, login_failed, refresh, refresh_reuse, logout, revoke, session_deleted, password_changed: each with its fields', async () => {
      const name = uniqueName('alice');
      const reg = await app.http.request('POST', '/auth/register', {
        json: { username: name, email: `${name}@example.com`, password: STRONG_PASSWORD },
        headers,
      });
      assert.equal(reg.status, 201);
      const id = reg.body.id as string;

      const first = await tokenAs({ grant_type: 'password', username: name, password: STRONG_PASSWORD });
      assert.equal(first.status, 200);
      const wrong = await tokenAs({ grant_type: 'password', username: name.toUpperCase(), password: WRONG_PASSWORD });
      assert.equal(wrong.status, 400);
      const refreshed = await tokenAs({ grant_type: 'refresh_token', refresh_token: first.body.refresh_token });
      assert.equal(refreshed.status, 200);
      app.clock.advance(11 * SECOND); // past the grace window: presenting the first token again is reuse
      const reused = await tokenAs({ grant_type: 'refresh_token', refresh_token: first.body.refresh_token });
      assert.equal(reused.status, 400);

      const a = await tokenAs({ grant_type: 'password', username: name, password: STRONG_PASSWORD });
      const b = await tokenAs({ grant_type: 'password', username: name, password: STRONG_PASSWORD });
      const c = await tokenAs({ grant_type: 'password', username: name, password: STRONG_PASSWORD });
      const d = await tokenAs({ grant_type: 'password', username: name, password: STRONG_PASSWORD });
      assert.equal((await app.http.request('POST', '/auth/revoke', { form: { token: b.body.refresh_token }, headers })).status, 200);
      assert.equal((await app.http.request('POST', '/auth/revoke', { form: { token: c.body.access_token }, headers })).status, 200);
      const del = await app.http.request('DELETE', `/users/me/sessions/${sid(c.body.access_token)}`, { token: a.body.access_token, headers });
      assert.equal(del.status, 204);
      const pw = await app.http.request('PUT', '/users/me/password', {
        json: { current_password: STRONG_PASSWORD, new_password: NEW_PASSWORD },
        token: a.body.access_token,
        headers,
      });
      assert.equal(pw.status, 204, pw.text);
      const out = await app.http.request('POST', '/auth/logout?scope=others', { token: a.body.access_token, headers });
      assert.equal(out.status, 204);
      void d;

      const events = await eventsOf(id);
      for (const e of events) {
        assert.equal(e.user_id, id);
        assert.equal(e.ip, '127.0.0.1');
        assert.equal(e.user_agent, UA);
        assert.ok(Date.parse(e.at) > 0);
      }
      assert.deepEqual(one(events, 'register'), { ...one(events, 'register'), username: name, session_id: null, detail: {} });
      const logins = events.filter((e) => e.type === 'login');
      assert.deepEqual(
        logins.map((e) => e.session_id).sort(),
        [first, a, b, c, d].map((t) => sid(t.body.access_token)).sort(),
        'one login event per session, each naming its session',
      );
      assert.deepEqual(logins[0]!.detail, { scope: 'me posts:write' });
      const failed = one(events, 'login_failed');
      assert.equal(failed.username, name.toUpperCase(), 'what was typed');
      assert.deepEqual(failed.detail, { reason: 'wrong_password' });
      assert.equal(failed.session_id, null);
      assert.equal(one(events, 'refresh').session_id, sid(first.body.access_token));
      assert.equal(one(events, 'refresh_reuse').session_id, sid(first.body.access_token));
      const revokes = events.filter((e) => e.type === 'revoke');
      assert.deepEqual(
        revokes.map((e) => [e.session_id, e.detail.token_type]).sort(),
        [
          [sid(b.body.access_token), 'refresh_token'],
          [sid(c.body.access_token), 'access_token'],
        ].sort(),
      );
      const deleted = one(events, 'session_deleted');
      assert.equal(deleted.session_id, sid(a.body.access_token), 'the session the request came with');
      assert.deepEqual(deleted.detail, { session_id: sid(c.body.access_token) });
      assert.equal(one(events, 'password_changed').session_id, sid(a.body.access_token));
      const logout = one(events, 'logout');
      assert.deepEqual([logout.session_id, logout.detail], [sid(a.body.access_token), { scope: 'others' }]);
      // Newest first.
      const times = events.map((e) => Date.parse(e.at));
      assert.deepEqual(times, [...times].sort((x, y) => y - x));
    });

    test('a failed login records what was typed (≤ 320 characters), no account for an unknown name, and never the password', async () => {
      const typed = `ghost-${uniqueName()}`;
      assert.equal((await tokenAs({ username: typed, password: WRONG_PASSWORD })).status, 400);
      const long = 'x'.repeat(2000);
      assert.equal((await tokenAs({ username: long, password: WRONG_PASSWORD })).status, 400);
      await app.core.audit.flush();
      const rows = (await app.core.db.query<Event>(`SELECT * FROM audit_events WHERE type = 'login_failed' AND user_id IS NULL`)).rows;
      const ghost = rows.find((r) => r.username === typed);
      assert.ok(ghost, 'the typed name is recorded');
      assert.deepEqual(ghost.detail, { reason: 'unknown_user' });
      // Past 320 characters the name is refused by the schema, before anything records it.
      assert.ok(!rows.some((r) => (r.username ?? '').length > 320), 'nothing longer than 320 characters is kept');
      const longest = 'y'.repeat(320);
      assert.equal((await tokenAs({ username: longest, password: WRONG_PASSWORD })).status, 400);
      await app.core.audit.flush();
      const atBound = (await app.core.db.query<Event>(`SELECT * FROM audit_events WHERE type = 'login_failed' AND username = $1`, [longest])).rows;
      assert.equal(atBound.length, 1, 'a name at the bound is recorded whole');
    });

    test('user_updated by an admin: the target, by whom, which fields', async () => {
      const bob = await registerAndLogin(app.http, uniqueName('bob'));
      const r = await app.http.request('PATCH', `/admin/users/${bob.id}`, { json: { disabled: true }, token: admin.access, headers });
      assert.equal(r.status, 200);
      const e = one(await eventsOf(bob.id), 'user_updated');
      assert.equal(e.username, bob.username);
      assert.equal(e.session_id, sid(admin.access));
      assert.equal(e.user_agent, UA);
      assert.deepEqual(e.detail, { by: admin.id, by_username: admin.username, fields: ['disabled'], role: 'user', disabled: true });
    });

    test('no row and no log line holds a password or a token (the whole table searched as text)', async () => {
      const u = await registerAndLogin(app.http, uniqueName('carol'));
      await tokenAs({ username: u.username, password: WRONG_PASSWORD });
      const r = await app.http.token({ grant_type: 'refresh_token', refresh_token: u.refresh });
      await app.http.request('POST', '/auth/revoke', { form: { token: r.body.refresh_token } });
      await app.http.put('/users/me/password', { current_password: STRONG_PASSWORD, new_password: NEW_PASSWORD }, r.body.access_token);
      await app.core.audit.flush();
      const table = (await app.core.db.query<{ t: string }>(`SELECT coalesce(string_agg(e::text, E'\\n'), '') AS t FROM audit_events e`)).rows[0]!.t;
      assert.ok(table.includes(u.username) && table.includes('login_failed'), 'the search sees the events');
      const secrets = [STRONG_PASSWORD, WRONG_PASSWORD, NEW_PASSWORD, u.access, u.refresh, r.body.access_token, r.body.refresh_token, sha256(u.refresh)];
      for (const s of secrets) {
        assert.equal(table.includes(s), false, `no row holds ${s.slice(0, 12)}…`);
        assert.equal(log.text.includes(s), false, `no log line holds ${s.slice(0, 12)}…`);
      }
    });

    test('GET /admin/audit: keyset pages newest first, stable while events arrive; filters by user and type; 422 for bad ones', async () => {
      const u = await registerUser(app.http, uniqueName('dave'));
      for (let i = 0; i < 23; i++) {
        app.clock.advance(1); // distinct instants, so the order is by time alone
        assert.equal((await tokenAs({ username: u.username, password: `${WRONG_PASSWORD}${i}` })).status, 400);
      }
      await app.core.audit.flush();
      const seen: Event[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const r: Res = await app.http.get(
          `/admin/audit?user_id=${u.id}&type=login_failed&limit=10${cursor ? `&cursor=${cursor}` : ''}`,
          admin.access,
        );
        assert.equal(r.status, 200, r.text);
        seen.push(...r.body.items);
        cursor = r.body.next_cursor;
        pages++;
        // Events arriving meanwhile are newer: they never shift the pages not read yet.
        if (pages === 1) await tokenAs({ username: u.username, password: WRONG_PASSWORD });
        await app.core.audit.flush();
      } while (cursor);
      assert.equal(pages, 3);
      assert.equal(seen.length, 23);
      assert.equal(new Set(seen.map((e) => e.id)).size, 23, 'no repeats');
      assert.ok(seen.every((e) => e.type === 'login_failed' && e.user_id === u.id));
      const times = seen.map((e) => Date.parse(e.at));
      assert.deepEqual(times, [...times].sort((x, y) => y - x), 'newest first');

      const registers = await app.http.get(`/admin/audit?user_id=${u.id}&type=register`, admin.access);
      assert.deepEqual(registers.body.items.map((e: Event) => e.type), ['register']);
      const all = await app.http.get('/admin/audit?type=register&limit=100', admin.access);
      assert.ok(all.body.items.length >= 2 && all.body.items.every((e: Event) => e.type === 'register'));
      for (const q of ['user_id=not-a-uuid', 'type=nope', 'limit=0', 'limit=101', 'cursor=zzz']) {
        const r = await app.http.get(`/admin/audit?${q}`, admin.access);
        assert.equal(r.status, 422, `${q}: ${r.text}`);
      }
    });

    test('GET /users/me/audit: only your own events; an admin’s change shows without the admin’s client', async () => {
      const erin = await registerAndLogin(app.http, uniqueName('erin'));
      const frank = await registerAndLogin(app.http, uniqueName('frank'));
      await tokenAs({ username: frank.username, password: WRONG_PASSWORD });
      await app.http.patch(`/admin/users/${erin.id}`, { role: 'user' }, admin.access); // no change: no event
      await app.http.patch(`/admin/users/${erin.id}`, { role: 'admin' }, admin.access);
      await app.core.audit.flush();
      const r = await app.http.get('/users/me/audit?limit=100', erin.access);
      assert.equal(r.status, 200, r.text);
      const items = r.body.items as Event[];
      assert.deepEqual(items.map((e) => e.type), ['user_updated', 'login', 'register']);
      assert.ok(items.every((e) => e.user_id === erin.id));
      const change = items[0]!;
      assert.deepEqual([change.ip, change.user_agent, change.session_id], [null, null, null]);
      assert.deepEqual(change.detail.fields, ['role']);
      assert.equal(items[1]!.session_id, sid(erin.access));
      // Pages work there too.
      const p1 = await app.http.get('/users/me/audit?limit=2', erin.access);
      const p2 = await app.http.get(`/users/me/audit?limit=2&cursor=${p1.body.next_cursor}`, erin.access);
      assert.deepEqual([...p1.body.items, ...p2.body.items].map((e: Event) => e.id), items.map((e) => e.id));
      assert.equal(p2.body.next_cursor, null);
    });

    test('non-admins get 403 on /admin/audit; no token 401; /users/me/audit needs the me scope', async () => {
      const u = await registerAndLogin(app.http, uniqueName('gina'));
      const r = await app.http.get('/admin/audit', u.access);
      assert.equal(r.status, 403);
      assert.match(r.headers.get('www-authenticate') ?? '', /insufficient_scope/);
      assert.equal((await app.http.get('/admin/audit')).status, 401);
      assert.equal((await app.http.get('/users/me/audit')).status, 401);
      const narrow = await login(app.http, u.username, STRONG_PASSWORD, 'posts:write');
      assert.equal((await app.http.get('/users/me/audit', narrow.access)).status, 403);
      // An admin token without the admin scope is no admin here.
      const meOnly = await login(app.http, admin.username, STRONG_PASSWORD, 'me');
      assert.equal((await app.http.get('/admin/audit', meOnly.access)).status, 403);
    });

    test('an event is listed within 2 s without anyone flushing (the timer writes every 250 ms)', async () => {
      const u = await registerUser(app.http, uniqueName('hank'));
      // 2 s is the contract's bound; the writer runs every 250 ms: 8 periods of margin.
      const listed = await eventually(async () => {
        const r = await app.http.get(`/admin/audit?user_id=${u.id}`, admin.access);
        return r.body.items.length === 1;
      }, 2000);
      assert.ok(listed);
    });

    test('one event PostgreSQL could not store as typed (NUL, a lone surrogate) does not sink its batch', async () => {
      const u = await registerUser(app.http, uniqueName('ivy'));
      app.core.audit.record({ type: 'login_failed', username: 'nul\u0000here', detail: { reason: 'x\ud800' } });
      app.core.audit.record({ type: 'login_failed', userId: u.id, username: u.username });
      await app.core.audit.flush();
      const rows = (await app.core.db.query<Event>(`SELECT * FROM audit_events WHERE type = 'login_failed' AND username IN ($1, $2)`, ['nul\uFFFDhere', u.username])).rows;
      assert.equal(rows.length, 2, 'both written');
      assert.deepEqual(rows.find((r) => r.username !== u.username)?.detail, { reason: 'x\uFFFD' });
    });

    test('/openapi.json documents both routes with their tags and every error status', async () => {
      const doc = (await app.http.get('/openapi.json')).body;
      for (const [path, tag] of [
        ['/admin/audit', 'admin'],
        ['/users/me/audit', 'users'],
      ] as const) {
        const op = doc.paths[path].get;
        assert.deepEqual(op.tags, [tag]);
        assert.deepEqual(Object.keys(op.responses).sort(), ['200', '401', '403', '422', '503']);
      }
      const params = doc.paths['/admin/audit'].get.parameters.map((p: { name: string }) => p.name).sort();
      assert.deepEqual(params, ['cursor', 'limit', 'type', 'user_id']);
    });
  });

  describe(`audit log: shutdown, retention, outages, limits (${backend})`, () => {
    test('events buffered at shutdown are in the table after app.close()', async () => {
      const tdb = await openTestDatabase(backend);
      try {
        // A writer that would not run for a minute: whatever is written was written by close().
        const app = await startApp({ db: tdb, options: { auditBuffer: { flushMs: 60_000, batchSize: 5000 } } });
        const u = await registerAndLogin(app.http, uniqueName('jo'));
        await app.http.token({ username: u.username, password: WRONG_PASSWORD });
        assert.equal(app.core.audit.pending, 3, 'register, login, login_failed wait in memory');
        const before = await tdb.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events');
        assert.equal(before.rows[0]!.n, 0);
        await app.close();
        const types = (await tdb.db.query<{ type: string }>('SELECT type FROM audit_events WHERE user_id = $1 ORDER BY at, type', [u.id])).rows;
        assert.deepEqual(types.map((r) => r.type).sort(), ['login', 'login_failed', 'register']);
      } finally {
        await tdb.close();
      }
    });

    test('AUDIT_RETENTION_DAYS: housekeeping prunes older events and keeps the rest (clock moved)', async () => {
      const app = await startApp({ backend, env: { AUDIT_RETENTION_DAYS: '30' } });
      try {
        const old = await registerUser(app.http, uniqueName('kim'));
        app.clock.advance(29 * DAY);
        const recent = await registerUser(app.http, uniqueName('lee'));
        await app.core.audit.flush();
        app.clock.advance(2 * DAY); // old: 31 days ago; recent: 2 days ago
        assert.equal(await app.core.audit.prune(2), 1);
        const left = (await app.core.db.query<{ user_id: string }>('SELECT user_id FROM audit_events')).rows.map((r) => r.user_id);
        assert.deepEqual(left, [recent.id]);
        assert.equal(left.includes(old.id), false);
      } finally {
        await app.close();
      }
    });

    test('while PostgreSQL refuses the writes: kept up to the bound, the oldest dropped and counted, said once; then written', async () => {
      const log = new LogText();
      const app = await startApp({ backend, logger: { level: 'warn', stream: log }, options: { auditBuffer: { flushMs: 60_000, maxBuffered: 5 } } });
      try {
        await app.core.db.exec('ALTER TABLE audit_events RENAME TO audit_events_away');
        const names = Array.from({ length: 8 }, (_, i) => `nobody${i}-${uniqueName()}`);
        for (const [i, name] of names.entries()) {
          assert.equal((await app.http.token({ username: name, password: WRONG_PASSWORD })).status, 400, 'logins go on');
          if (i === 1) await app.core.audit.flush(); // refused: the table is gone
        }
        await app.core.audit.flush();
        assert.equal(app.core.audit.pending, 5);
        assert.equal(app.core.audit.dropped, 3);
        assert.equal(log.lines('audit_log_unavailable').length, 1, 'the outage is said once');
        assert.equal(log.lines('audit_events_dropped').length, 1, 'dropping is said once');

        await app.core.db.exec('ALTER TABLE audit_events_away RENAME TO audit_events');
        await app.core.audit.flush();
        assert.equal(app.core.audit.pending, 0);
        const rows = (await app.core.db.query<{ username: string }>('SELECT username FROM audit_events WHERE user_id IS NULL')).rows;
        assert.deepEqual(rows.map((r) => r.username).sort(), names.slice(3).sort(), 'the newest five');
        assert.deepEqual(log.lines('audit_log_recovered').map((l) => l.dropped), [3]);
      } finally {
        await app.close();
      }
    });

    test('rate_limited: the typed name, the route and the client', async () => {
      const app = await startApp({ backend, env: { RATE_LIMIT_TOKEN_PER_MINUTE: '2' } });
      try {
        const name = uniqueName('mo');
        const answers = [];
        for (let i = 0; i < 3; i++) answers.push((await app.http.token({ username: name, password: WRONG_PASSWORD }, headers)).status);
        assert.deepEqual(answers, [400, 400, 429]);
        await app.core.audit.flush();
        const e = (await app.core.db.query<Event>(`SELECT * FROM audit_events WHERE type = 'rate_limited'`)).rows;
        assert.equal(e.length, 1);
        assert.deepEqual(
          [e[0]!.username, e[0]!.user_id, e[0]!.ip, e[0]!.user_agent, e[0]!.detail],
          [name, null, '127.0.0.1', UA, { route: 'POST /auth/token' }],
        );
      } finally {
        await app.close();
      }
    });

    test('audit: false records nothing; the routes answer empty pages', async () => {
      const app = await startApp({ backend, options: { audit: false } });
      try {
        const u = await makeAdmin(app, await registerAndLogin(app.http, uniqueName('nell')));
        await app.core.audit.flush();
        const n = (await app.core.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events')).rows[0]!.n;
        assert.equal(n, 0);
        assert.deepEqual((await app.http.get('/admin/audit', u.access)).body, { items: [], next_cursor: null });
      } finally {
        await app.close();
      }
    });
  });
}
