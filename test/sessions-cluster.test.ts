// Issue 4, several nodes: two apps sharing one database on the PostgreSQL
// server (each with its own pool), kept in step by Redis pub/sub or by
// LISTEN/NOTIFY. Rotation across nodes, revocation seen on the other node
// within a second, and the failure modes: Redis stopped, hung, restarted
// empty, then PostgreSQL gone as well. Needs DATABASE_URL; the Redis parts
// start a redis-server of their own (and the shared one needs REDIS_URL).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { MovableClock } from '../src/clock.js';
import { openPostgres } from '../src/db/client.js';
import { PG_LISTENER_NAME } from '../src/auth/event-bus.js';
import {
  eventually,
  hasRedis,
  hasServer,
  login,
  openTestDatabase,
  registerAndLogin,
  startApp,
  type Res,
  type TestApp,
  type TestDatabase,
} from './helpers.js';
import { RedisServer } from './redis-server.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url');

function claims(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

function refresh(app: TestApp, token: string) {
  return app.http.token({ grant_type: 'refresh_token', refresh_token: token });
}

const revoke = (app: TestApp, token: string) => app.http.request('POST', '/auth/revoke', { form: { token } });
const me = (app: TestApp, token: string) => app.http.get('/users/me', token);

function assertInvalidToken(r: Res): void {
  assert.equal(r.status, 401, r.text);
  assert.match(r.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
}

function assertInvalidGrant(r: Res): void {
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error, 'invalid_grant');
}

interface Cluster {
  a: TestApp;
  b: TestApp;
  tdb: TestDatabase;
  close(): Promise<void>;
}

/** Two nodes on one fresh server database, each with a pool of its own. */
async function cluster(env: Record<string, string | undefined>): Promise<Cluster> {
  const tdb = await openTestDatabase('postgres');
  const poolB = await openPostgres(tdb.url!);
  const clock = new MovableClock();
  let a: TestApp | undefined;
  let b: TestApp | undefined;
  const close = async () => {
    await a?.close();
    await b?.close();
    await poolB.close();
    await tdb.close();
  };
  try {
    a = await startApp({ db: tdb, env, clock });
    b = await startApp({ db: { db: poolB, url: tdb.url, close: () => poolB.close() }, env, clock });
  } catch (err) {
    await close();
    throw err;
  }
  return { a, b, tdb, close };
}

const healthy = (...apps: TestApp[]) => eventually(async () => apps.every((x) => x.core.bus.healthy), 10_000, 25);
const unhealthy = (...apps: TestApp[]) => eventually(async () => apps.every((x) => !x.core.bus.healthy), 10_000, 25);

/** Revocation made on one node must hold on the other within a second, on the fast path. */
async function revocationReachesOtherNode(c: Cluster): Promise<void> {
  const { a, b } = c;
  assert.ok(a.core.bus.healthy && b.core.bus.healthy, 'both nodes on the fast path');
  // An access token revoked on A (RFC 7009).
  const u = await registerAndLogin(a.http);
  assert.equal((await me(b, u.access)).status, 200, 'B accepts it first');
  assert.equal((await revoke(a, u.access)).status, 200);
  const t0 = Date.now();
  assert.ok(await eventually(async () => (await me(b, u.access)).status === 401, 1_000, 10), 'B refuses it within 1 s');
  const took = Date.now() - t0;
  assert.ok(took < 1_000, `${took} ms`);
  // A session ended on A (logout): its other access tokens stop on B.
  const s = await login(a.http, u.username);
  const s2 = await refresh(a, s.refresh);
  assert.equal((await me(b, s2.body.access_token)).status, 200);
  assert.equal((await a.http.request('POST', '/auth/logout', { token: s.access })).status, 204);
  assert.ok(await eventually(async () => (await me(b, s2.body.access_token)).status === 401, 1_000, 10));
  assertInvalidGrant(await refresh(b, s2.body.refresh_token));
  // A user disabled on A: B's cached user state is dropped.
  const v = await registerAndLogin(a.http);
  assert.equal((await me(b, v.access)).status, 200);
  await a.core.db.query('UPDATE users SET disabled = true WHERE id = $1', [v.id]);
  await a.core.userStates.changed(v.id);
  assert.ok(await eventually(async () => (await me(b, v.access)).status === 401, 1_000, 10));
}

describe('two nodes sharing PostgreSQL and Redis', { skip: !hasServer() || !hasRedis() }, () => {
  let c: Cluster;
  before(async () => {
    c = await cluster({ REDIS_URL: process.env.REDIS_URL });
    assert.equal(c.a.core.bus.kind, 'redis');
    assert.ok(await healthy(c.a, c.b));
  });
  after(async () => c?.close());

  test('50 concurrent refreshes of one token spread over both nodes rotate it exactly once', async () => {
    const u = await registerAndLogin(c.a.http);
    const sid = claims(u.access).sid;
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => refresh(i % 2 ? c.b : c.a, u.refresh)));
    for (const r of answers) assert.equal(r.status, 200, r.text);
    const successors = new Set(answers.map((r) => r.body.refresh_token));
    assert.equal(successors.size, 1);
    const n = await c.a.core.db.query<{ n: number; unused: number }>(
      'SELECT count(*) AS n, count(*) FILTER (WHERE used_at IS NULL) AS unused FROM refresh_tokens WHERE session_id = $1',
      [sid],
    );
    assert.deepEqual(n.rows[0], { n: 2, unused: 1 });
    const [successor] = [...successors] as [string];
    const row = await c.a.core.db.query('SELECT 1 FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NULL', [sha256(successor)]);
    assert.equal(row.rowCount, 1);
    assert.equal((await refresh(c.b, successor)).status, 200);
  });

  test('a revocation on one node holds on the other within a second (Redis pub/sub)', async () => {
    await revocationReachesOtherNode(c);
  });

  test('reuse detected on one node ends the session on the other', async () => {
    const u = await registerAndLogin(c.a.http);
    const first = await refresh(c.a, u.refresh);
    assert.equal((await me(c.b, first.body.access_token)).status, 200);
    c.a.clock.advance(11_000); // the nodes share the clock
    assertInvalidGrant(await refresh(c.b, u.refresh));
    assertInvalidToken(await me(c.a, first.body.access_token));
    assertInvalidToken(await me(c.b, first.body.access_token));
    assertInvalidGrant(await refresh(c.a, first.body.refresh_token));
  });
});

describe('two nodes sharing PostgreSQL, no Redis (LISTEN/NOTIFY)', { skip: !hasServer() }, () => {
  let c: Cluster;
  before(async () => {
    c = await cluster({ REDIS_URL: undefined });
    assert.equal(c.a.core.bus.kind, 'postgres');
    assert.ok(await healthy(c.a, c.b));
  });
  after(async () => c?.close());

  test('a revocation on one node holds on the other within a second (LISTEN/NOTIFY)', async () => {
    await revocationReachesOtherNode(c);
  });

  test('50 concurrent refreshes over both nodes rotate the token once', async () => {
    const u = await registerAndLogin(c.a.http);
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => refresh(i % 2 ? c.b : c.a, u.refresh)));
    for (const r of answers) assert.equal(r.status, 200, r.text);
    assert.equal(new Set(answers.map((r) => r.body.refresh_token)).size, 1);
  });

  test('the LISTEN connection dropped: checks fall back to PostgreSQL, then the fast path comes back rebuilt', async () => {
    const { a, b } = c;
    const victim = await registerAndLogin(a.http);
    const live = await registerAndLogin(a.http);
    assert.equal((await me(b, victim.access)).status, 200);
    // Kill both nodes' listening connections from the server side.
    const killed = await a.core.db.query<{ ok: boolean }>(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = $1`,
      [PG_LISTENER_NAME],
    );
    assert.equal(killed.rowCount, 2);
    // A revocation whose NOTIFY nobody hears on the dropped connection, made behind the service's back.
    await a.core.db.query('UPDATE sessions SET revoked_at = now() WHERE id = $1', [claims(victim.access).sid]);
    assert.ok(await healthy(a, b), 'back on the fast path');
    assertInvalidToken(await me(b, victim.access));
    assertInvalidToken(await me(a, victim.access));
    assert.equal((await me(b, live.access)).status, 200);
  });
});

describe('Redis failures (a redis-server of this test’s own)', { skip: !hasServer() }, () => {
  let redis: RedisServer;
  let c: Cluster;
  before(async () => {
    redis = await RedisServer.start();
    c = await cluster({ REDIS_URL: redis.url });
    assert.ok(await healthy(c.a, c.b));
  });
  after(async () => {
    await c?.close();
    await redis?.stop();
  });

  test('Redis stopped: revoked tokens refused, live ones served; restarted empty: the denylist is rebuilt from PostgreSQL', async () => {
    const { a, b } = c;
    const live = await registerAndLogin(a.http);
    const revokedAccess = await registerAndLogin(a.http);
    const loggedOut = await registerAndLogin(a.http);
    const behindTheBack = await registerAndLogin(a.http);
    for (const u of [live, revokedAccess, loggedOut, behindTheBack]) assert.equal((await me(b, u.access)).status, 200);

    await redis.stop();
    assert.ok(await unhealthy(a, b), 'both nodes noticed');

    // Revocations made on A while Redis is down: the request does not fail or hang.
    const t0 = Date.now();
    assert.equal((await revoke(a, revokedAccess.access)).status, 200);
    assert.equal((await a.http.request('POST', '/auth/logout', { token: loggedOut.access })).status, 204);
    assert.ok(Date.now() - t0 < 2_000, `revocations took ${Date.now() - t0} ms with Redis down`);
    // And one no event could ever announce.
    await a.core.db.query('UPDATE sessions SET revoked_at = now() WHERE id = $1', [claims(behindTheBack.access).sid]);

    for (const node of [a, b]) {
      assertInvalidToken(await me(node, revokedAccess.access));
      assertInvalidToken(await me(node, loggedOut.access));
      assertInvalidToken(await me(node, behindTheBack.access));
      assert.equal((await me(node, live.access)).status, 200);
    }
    assertInvalidGrant(await refresh(b, loggedOut.refresh));
    const r = await refresh(b, live.refresh);
    assert.equal(r.status, 200, `refresh with Redis down: ${r.text}`);

    await redis.launch(); // same port, nothing in it
    assert.ok(await healthy(a, b), 'both nodes back on the fast path by themselves');
    for (const node of [b, a]) {
      assertInvalidToken(await me(node, revokedAccess.access));
      assertInvalidToken(await me(node, loggedOut.access));
      assertInvalidToken(await me(node, behindTheBack.access));
      assert.equal((await me(node, r.body.access_token)).status, 200);
    }
    // Pub/sub works again.
    await revocationReachesOtherNode(c);
  });

  test('Redis hung (SIGSTOP): the heartbeat notices, requests neither hang nor accept revoked tokens', async () => {
    const { a, b } = c;
    assert.ok(await healthy(a, b));
    const live = await registerAndLogin(a.http);
    const victim = await registerAndLogin(a.http);
    assert.equal((await me(b, victim.access)).status, 200);
    redis.pause();
    try {
      assert.ok(await unhealthy(a, b), 'the heartbeat noticed');
      const t0 = Date.now();
      assert.equal((await revoke(a, victim.access)).status, 200);
      assert.ok(Date.now() - t0 < 3_000, `revoke took ${Date.now() - t0} ms against a hung Redis`);
      assertInvalidToken(await me(b, victim.access));
      assert.equal((await me(b, live.access)).status, 200);
      const r = await refresh(b, live.refresh);
      assert.equal(r.status, 200, r.text);
    } finally {
      redis.resume();
    }
    assert.ok(await healthy(a, b));
    assertInvalidToken(await me(b, victim.access));
    assert.equal((await me(b, live.access)).status, 200);
  });

  test('events travel on ${REDIS_PREFIX}events; a node started while Redis is down joins the fast path when it appears', async () => {
    const { a } = c;
    // The channel is part of the contract (the CLI publishes on it too).
    const listener = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    listener.on('error', () => {});
    const heard: Array<Record<string, unknown>> = [];
    try {
      await listener.connect();
      await listener.subscribe(`${a.config.redisPrefix}events`);
      listener.on('message', (_channel: string, message: string) => heard.push(JSON.parse(message) as Record<string, unknown>));
      const u = await registerAndLogin(a.http);
      assert.equal((await a.http.request('POST', '/auth/logout', { token: u.access })).status, 204);
      const sid = claims(u.access).sid;
      assert.ok(await eventually(async () => heard.some((e) => e.type === 'sid' && e.sid === sid), 1_000, 10));
    } finally {
      listener.disconnect();
    }

    // A third node starts while Redis is stopped: it serves, from PostgreSQL.
    await redis.stop();
    const late = await startApp({ db: c.tdb, env: { REDIS_URL: redis.url }, clock: a.clock });
    try {
      assert.equal(late.core.bus.healthy, false);
      const u = await registerAndLogin(late.http);
      assert.equal((await me(late, u.access)).status, 200);
      await redis.launch();
      assert.ok(await healthy(late, a, c.b), 'joins the fast path by itself');
      assert.equal((await revoke(a, u.access)).status, 200);
      assert.ok(await eventually(async () => (await me(late, u.access)).status === 401, 1_000, 10));
    } finally {
      await late.close();
    }
  });

  test('PostgreSQL gone as well: a protected request gets 503 (problem details)', async () => {
    // A node of its own, on a database of its own that is then dropped.
    const tdb = await openTestDatabase('postgres');
    const node = await startApp({ db: tdb, env: { REDIS_URL: redis.url } });
    try {
      assert.ok(await healthy(node));
      const u = await registerAndLogin(node.http);
      await redis.stop();
      assert.ok(await unhealthy(node));
      assert.equal((await me(node, u.access)).status, 200, 'PostgreSQL alone still answers');
      const base = new URL(process.env.DATABASE_URL!);
      const admin = await openPostgres(base.toString(), 1);
      try {
        await admin.query(`DROP DATABASE ${new URL(tdb.url!).pathname.slice(1)} WITH (FORCE)`);
      } finally {
        await admin.close();
      }
      const r = await me(node, u.access);
      assert.equal(r.status, 503, r.text);
      assert.match(r.headers.get('content-type') ?? '', /application\/problem\+json/);
      assert.equal(r.body.status, 503);
      assert.equal(typeof r.body.detail, 'string');
      assert.ok(!/database|sql|pg_|ECONN/i.test(r.body.detail), r.body.detail);
      // Refusing an unknown token needs no store at all.
      assert.equal((await me(node, 'x.y.z')).status, 401);
    } finally {
      await node.close();
      await tdb.close(); // DROP ... IF EXISTS
      if (!redis.running) await redis.launch();
    }
  });
});
