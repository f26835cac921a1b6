// User administration (API.md "Users": /admin/users): listing, disabling,
// role changes, the last-admin rule, and disabling across nodes.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { LastAdminError, UsersRepository } from '../src/auth/users.js';
import { systemClock } from '../src/clock.js';
import type { Database } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import { authMigrations } from '../src/auth/migrations.js';
import { blogMigrations } from '../src/posts/migrations.js';
import {
  backends,
  busesHealthy,
  eventually,
  hasRedis,
  hasServer,
  login,
  makeAdmin,
  openTestDatabase,
  registerAndLogin,
  startApp,
  type LoggedIn,
  type TestApp,
} from './helpers.js';

const USER_KEYS = ['created_at', 'disabled', 'email', 'full_name', 'id', 'mfa', 'role', 'username'];
const INVALID_TOKEN = /^Bearer realm="gatehouse", error="invalid_token", error_description="[^"]+"$/;

async function insertUser(db: Database, role: 'user' | 'admin', disabled = false): Promise<string> {
  const id = randomUUID();
  const name = `u${id.slice(0, 8)}`;
  await db.query(
    `INSERT INTO users (id, username, email, password_hash, role, disabled, created_at, updated_at)
     VALUES ($1, $2, $3, 'x', $4, $5, $6, $6)`,
    [id, name, `${name}@example.com`, role, disabled, new Date()],
  );
  return id;
}

async function enabledAdmins(db: Database): Promise<number> {
  const r = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM users WHERE role = 'admin' AND NOT disabled`);
  return r.rows[0]!.n;
}

for (const backend of backends()) {
  describe(`admin API (${backend})`, () => {
    let app: TestApp;
    let admin: LoggedIn;
    before(async () => {
      app = await startApp({ backend });
      admin = await makeAdmin(app, await registerAndLogin(app.http));
    });
    after(async () => app?.close());

    test('GET /admin/users: every user once, oldest first, in pages', async () => {
      for (let i = 0; i < 4; i++) await registerAndLogin(app.http);
      const total = (await app.core.db.query<{ n: number }>('SELECT count(*)::int AS n FROM users')).rows[0]!.n;
      const seen: Array<Record<string, unknown>> = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const r: { status: number; body: { items: typeof seen; next_cursor: string | null } } = await app.http.get(
          `/admin/users?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
          admin.access,
        );
        assert.equal(r.status, 200);
        assert.deepEqual(Object.keys(r.body).sort(), ['items', 'next_cursor']);
        for (const u of r.body.items) assert.deepEqual(Object.keys(u).sort(), USER_KEYS, 'a User, no hash');
        seen.push(...r.body.items);
        cursor = r.body.next_cursor;
        // Users registering meanwhile join the end of the list, never a page already read.
        if (pages++ === 0) await registerAndLogin(app.http);
      } while (cursor);
      const ids = seen.map((u) => u.id);
      assert.equal(new Set(ids).size, ids.length);
      assert.equal(ids.length, total + 1);
      for (let i = 1; i < seen.length; i++) assert.ok(String(seen[i - 1]!.created_at) <= String(seen[i]!.created_at));
      const def = await app.http.get('/admin/users', admin.access);
      assert.equal(def.body.items.length, Math.min(20, total + 1));
    });

    test('GET /admin/users: limit and cursor validated (422 naming the field)', async () => {
      for (const q of ['limit=0', 'limit=101', 'limit=x']) {
        const r = await app.http.get(`/admin/users?${q}`, admin.access);
        assert.equal(r.status, 422, q);
        assert.equal(r.body.errors[0].path, '/limit');
      }
      for (const c of ['nope', Buffer.from('["x","y"]').toString('base64url')]) {
        const r = await app.http.get(`/admin/users?cursor=${c}`, admin.access);
        assert.equal(r.status, 422);
        assert.equal(r.body.errors[0].path, '/cursor');
      }
    });

    test('PATCH /admin/users/{id}: 404 for unknown and malformed ids; 422 for bad fields', async () => {
      for (const id of [randomUUID(), 'nope', '123', `${randomUUID()}0`]) {
        const r = await app.http.patch(`/admin/users/${id}`, { disabled: true }, admin.access);
        assert.equal(r.status, 404, id);
        assert.match(r.headers.get('content-type') ?? '', /problem\+json/);
      }
      const u = await registerAndLogin(app.http);
      for (const [body, path] of [
        [{ role: 'root' }, '/role'],
        [{ disabled: 'sometimes' }, '/disabled'],
      ] as const) {
        const r = await app.http.patch(`/admin/users/${u.id}`, body, admin.access);
        assert.equal(r.status, 422);
        assert.ok(r.body.errors.some((e: { path: string }) => e.path === path), JSON.stringify(r.body.errors));
      }
      const same = await app.http.patch(`/admin/users/${u.id}`, {}, admin.access);
      assert.equal(same.status, 200);
      assert.deepEqual(Object.keys(same.body).sort(), USER_KEYS);
      assert.equal(same.body.role, 'user');
    });

    test('disable, then use: the earlier token fails on its next request; refresh and login fail; enable again', async () => {
      const u = await registerAndLogin(app.http);
      assert.equal((await app.http.get('/users/me', u.access)).status, 200);
      const r = await app.http.patch(`/admin/users/${u.id}`, { disabled: true }, admin.access);
      assert.equal(r.status, 200);
      assert.equal(r.body.disabled, true);
      for (const res of [
        await app.http.get('/users/me', u.access),
        await app.http.post('/posts', { title: 't', body: '' }, u.access),
        await app.http.get('/users/me/posts', u.access),
      ]) {
        assert.equal(res.status, 401);
        assert.match(res.headers.get('www-authenticate') ?? '', INVALID_TOKEN);
      }
      const refresh = await app.http.token({ grant_type: 'refresh_token', refresh_token: u.refresh });
      assert.equal(refresh.status, 400);
      assert.equal(refresh.body.error, 'invalid_grant');
      const pw = await app.http.token({ grant_type: 'password', username: u.username, password: u.password });
      assert.equal(pw.status, 400);
      assert.equal(pw.body.error, 'invalid_grant');

      const back = await app.http.patch(`/admin/users/${u.id}`, { disabled: false }, admin.access);
      assert.equal(back.body.disabled, false);
      const again = await login(app.http, u.username, u.password);
      assert.equal((await app.http.get('/users/me', again.access)).status, 200);
      // The sessions ended by the disabling stay ended.
      assert.equal((await app.http.get('/users/me', u.access)).status, 401);
      assert.equal((await app.http.token({ grant_type: 'refresh_token', refresh_token: u.refresh })).status, 400);
    });

    test('a disabled user’s posts can still be read; disabling is not deleting', async () => {
      const u = await registerAndLogin(app.http);
      const p = await app.http.post('/posts', { title: 'kept', body: '', published: true }, u.access);
      await app.http.patch(`/admin/users/${u.id}`, { disabled: true }, admin.access);
      assert.equal((await app.http.get(`/posts/${p.body.id}`)).status, 200);
    });

    test('promotion and demotion: admin-scoped tokens of a demoted admin fail with 401', async () => {
      const u = await registerAndLogin(app.http);
      const up = await app.http.patch(`/admin/users/${u.id}`, { role: 'admin' }, admin.access);
      assert.equal(up.status, 200);
      assert.equal(up.body.role, 'admin');
      const full = await login(app.http, u.username, u.password);
      assert.equal(full.scope, 'me posts:write admin');
      const plain = await login(app.http, u.username, u.password, 'me posts:write');
      assert.equal((await app.http.get('/admin/users', full.access)).status, 200);

      const down = await app.http.patch(`/admin/users/${u.id}`, { role: 'user' }, admin.access);
      assert.equal(down.body.role, 'user');
      const r = await app.http.get('/admin/users', full.access);
      assert.equal(r.status, 401);
      assert.match(r.headers.get('www-authenticate') ?? '', INVALID_TOKEN);
      assert.equal((await app.http.get('/users/me', full.access)).status, 401, 'the whole token, not just the admin part');
      // A token within the new role keeps working; a refresh drops what the role lost.
      assert.equal((await app.http.get('/users/me', plain.access)).status, 200);
      const refreshed = await app.http.token({ grant_type: 'refresh_token', refresh_token: full.refresh });
      assert.equal(refreshed.status, 200);
      assert.equal(refreshed.body.scope, 'me posts:write');
    });

    test('the last enabled admin can neither demote nor disable themself (409); with another admin they can', async () => {
      // Only our admin is an enabled admin in this database at this point.
      assert.equal(await enabledAdmins(app.core.db), 1);
      for (const body of [{ role: 'user' }, { disabled: true }, { role: 'user', disabled: true }]) {
        const r = await app.http.patch(`/admin/users/${admin.id}`, body, admin.access);
        assert.equal(r.status, 409, JSON.stringify(body));
        assert.match(r.headers.get('content-type') ?? '', /problem\+json/);
        assert.equal(typeof r.body.detail, 'string');
      }
      // Promoting someone is always fine; a no-op on oneself too.
      assert.equal((await app.http.patch(`/admin/users/${admin.id}`, { role: 'admin', disabled: false }, admin.access)).status, 200);
      // A disabled admin does not count.
      const dormant = await registerAndLogin(app.http);
      await app.http.patch(`/admin/users/${dormant.id}`, { role: 'admin', disabled: true }, admin.access);
      assert.equal((await app.http.patch(`/admin/users/${admin.id}`, { role: 'user' }, admin.access)).status, 409);
      // With a second enabled admin, stepping down works.
      const second = await makeAdmin(app, await registerAndLogin(app.http));
      const down = await app.http.patch(`/admin/users/${admin.id}`, { role: 'user' }, admin.access);
      assert.equal(down.status, 200);
      assert.equal((await app.http.get('/admin/users', admin.access)).status, 401, 'the demoted admin’s token is dead');
      // Now `second` is the last one.
      assert.equal((await app.http.patch(`/admin/users/${second.id}`, { disabled: true }, second.access)).status, 409);
      assert.equal((await app.http.patch(`/admin/users/${admin.id}`, { role: 'admin' }, second.access)).status, 200);
      admin = await login(app.http, admin.username, admin.password).then((t) => ({ ...admin, ...t }));
      assert.equal((await app.http.patch(`/admin/users/${second.id}`, { disabled: true }, second.access)).status, 200);
      assert.equal((await app.http.get('/admin/users', second.access)).status, 401, 'disabled themself: their token is dead');
      assert.equal(await enabledAdmins(app.core.db), 1);
    });
  });

  describe(`last-admin rule under concurrency (${backend})`, () => {
    let tdb: Awaited<ReturnType<typeof openTestDatabase>>;
    before(async () => {
      tdb = await openTestDatabase(backend);
      await migrate(tdb.db, [authMigrations, blogMigrations]);
    });
    after(async () => tdb?.close());

    test('two admins stepping each other down at once: exactly one succeeds', async () => {
      const changes = [{ role: 'user' as const }, { disabled: true }, { role: 'user' as const, disabled: true }];
      for (let round = 0; round < 12; round++) {
        await tdb.db.query(`UPDATE users SET role = 'user'`);
        const a = await insertUser(tdb.db, 'admin');
        const b = await insertUser(tdb.db, 'admin');
        const users = new UsersRepository(tdb.db, systemClock, async () => {});
        const results = await Promise.allSettled([users.change(b, changes[round % 3]!), users.change(a, changes[(round + 1) % 3]!)]);
        const ok = results.filter((r) => r.status === 'fulfilled');
        const refused = results.filter((r) => r.status === 'rejected');
        assert.equal(ok.length, 1, `round ${round}`);
        assert.ok((refused[0] as PromiseRejectedResult).reason instanceof LastAdminError);
        assert.equal(await enabledAdmins(tdb.db), 1);
      }
    });

    test('over HTTP: two admins demoting each other never leave zero admins', async () => {
      const app = await startApp({ db: tdb });
      try {
        for (let round = 0; round < 4; round++) {
          await tdb.db.query(`UPDATE users SET role = 'user'`);
          app.core.userStates.clear();
          const a = await makeAdmin(app, await registerAndLogin(app.http));
          const b = await makeAdmin(app, await registerAndLogin(app.http));
          const [ra, rb] = await Promise.all([
            app.http.patch(`/admin/users/${b.id}`, { role: 'user' }, a.access),
            app.http.patch(`/admin/users/${a.id}`, { role: 'user' }, b.access),
          ]);
          const statuses = [ra.status, rb.status].sort();
          assert.equal(statuses[0], 200, `round ${round}: ${statuses}`);
          assert.ok(statuses[1] === 409 || statuses[1] === 401, `round ${round}: ${statuses}`);
          assert.equal(await enabledAdmins(tdb.db), 1);
        }
      } finally {
        await app.close();
      }
    });
  });
}

describe('disabling across nodes sharing the PostgreSQL server', () => {
  for (const withRedis of [false, true]) {
    const via = withRedis ? 'Redis pub/sub' : 'PostgreSQL LISTEN/NOTIFY';
    const skip = !hasServer() ? 'needs DATABASE_URL' : withRedis && !hasRedis() ? 'needs REDIS_URL' : false;
    test(`disable or demote on one node: the token fails on the other within one second (${via})`, { skip }, async () => {
      const shared = await openTestDatabase('postgres');
      const env = withRedis ? { REDIS_URL: process.env.REDIS_URL } : {};
      const a = await startApp({ db: shared, env });
      const b = await startApp({ db: shared, env });
      try {
        assert.equal(a.core.bus.kind, withRedis ? 'redis' : 'postgres');
        assert.ok(await busesHealthy(a, b), 'both nodes on the fast path (caching, kept in step by events)');
        const admin = await makeAdmin(a, await registerAndLogin(a.http));
        const u = await registerAndLogin(b.http);
        // Node B has the user's state cached: only an event can make it forget.
        assert.equal((await b.http.get('/users/me', u.access)).status, 200);
        assert.equal((await b.http.get('/users/me', u.access)).status, 200);

        const r = await a.http.patch(`/admin/users/${u.id}`, { disabled: true }, admin.access);
        assert.equal(r.status, 200);
        let last = await b.http.get('/users/me', u.access);
        const failed = await eventually(async () => {
          last = await b.http.get('/users/me', u.access);
          return last.status === 401;
        }, 1000);
        assert.ok(failed, `still ${last.status} on node B a second after the disabling`);
        assert.match(last.headers.get('www-authenticate') ?? '', INVALID_TOKEN);

        // Demotion revokes no session: this one travels only as a user-state event.
        const other = await makeAdmin(b, await registerAndLogin(b.http));
        assert.equal((await b.http.get('/admin/users', other.access)).status, 200);
        assert.equal((await a.http.patch(`/admin/users/${other.id}`, { role: 'user' }, admin.access)).status, 200);
        const demoted = await eventually(async () => (await b.http.get('/admin/users', other.access)).status === 401, 1000);
        assert.ok(demoted, 'the demoted admin’s token still works on node B a second later');
      } finally {
        await a.close();
        await b.close();
        await shared.close();
      }
    });
  }
});
