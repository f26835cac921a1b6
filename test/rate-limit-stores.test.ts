// Where rate-limit counters live (src/auth/rate-limit.ts): Redis with
// REDIS_URL; without it, the PostgreSQL server's table, shared by every node
// on that database (and memory standing in while PostgreSQL errors); memory
// only for the embedded database. The cluster of worker processes is in
// test/limits-cluster.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { lockoutKey } from '../src/auth/rate-limit.js';
import { openPostgres } from '../src/db/client.js';
import { hasRedis, hasServer, login, openTestDatabase, registerUser, startApp, type TestApp, type TestDatabase } from './helpers.js';

const NEEDS_SERVER = hasServer() ? false : 'needs DATABASE_URL (a PostgreSQL server)';

const bogusRefresh = (app: TestApp) => app.http.token({ grant_type: 'refresh_token', refresh_token: 'ghr_' + 'a'.repeat(43) });

test('lockout keys: the account id when the name matched one, else a fixed-size hash of the normalised name', () => {
  const id = '3f1c2a4e-0000-4000-8000-000000000001';
  assert.equal(lockoutKey('alice', id), lockoutKey('alice@example.com', id));
  assert.equal(lockoutKey('ａｌｉｃｅ'), lockoutKey('ALICE'));
  assert.notEqual(lockoutKey('alice'), lockoutKey('alice', id));
  const huge = lockoutKey('x'.repeat(1 << 20));
  assert.equal(huge.length, 66);
  assert.ok(!huge.includes('xxx'));
});

test('the embedded database keeps counters in memory', async () => {
  const app = await startApp({ backend: 'pglite' });
  try {
    assert.equal(app.core.limits.store, 'memory');
  } finally {
    await app.close();
  }
});

describe('rate limits on the PostgreSQL server without Redis', { skip: NEEDS_SERVER }, () => {
  /** Two nodes on one fresh server database, each with a pool of its own; closed after `fn`. */
  async function twoNodes(env: Record<string, string>, fn: (a: TestApp, b: TestApp, tdb: TestDatabase) => Promise<void>) {
    const tdb = await openTestDatabase('postgres');
    const poolB = await openPostgres(tdb.url!);
    const nodes: TestApp[] = [];
    try {
      nodes.push(await startApp({ db: tdb, env }));
      nodes.push(await startApp({ db: { db: poolB, url: tdb.url, close: () => poolB.close() }, env }));
      await fn(nodes[0]!, nodes[1]!, tdb);
    } finally {
      for (const n of nodes) await n.close();
      await poolB.close();
      await tdb.close();
    }
  }

  test('two nodes on one database count a per-IP limit once; past it, each refuses from memory', () =>
    twoNodes({ RATE_LIMIT_TOKEN_PER_MINUTE: '4' }, async (a, b, tdb) => {
      const statuses: number[] = [];
      for (let i = 0; i < 10; i++) statuses.push((await bogusRefresh(i % 2 ? b : a)).status);
      assert.deepEqual(statuses, [400, 400, 400, 400, 429, 429, 429, 429, 429, 429]);
      assert.equal(a.core.limits.store, 'postgres');
      const rows = await tdb.db.query<{ points: number }>('SELECT points FROM rate_limit_counters WHERE key = $1', ['token:127.0.0.1']);
      // One counter for both nodes; each node wrote one refusal to it, then refused the flood without a write.
      assert.equal(rows.rows[0]?.points, 6);
    }));

  test('failures on one node lock the account on the other too, by username or email', () =>
    twoNodes({ RATE_LIMIT_FAILED_LOGINS_PER_ACCOUNT: '2' }, async (a, b) => {
      const u = await registerUser(a.http);
      assert.equal((await a.http.token({ username: u.username, password: 'wrong-Pass-1' })).status, 400);
      assert.equal((await b.http.token({ username: u.email, password: 'wrong-Pass-2' })).status, 400);
      assert.equal((await a.http.token({ username: u.username, password: u.password })).status, 429);
      assert.equal((await b.http.token({ username: u.username, password: u.password })).status, 429);
    }));

  test('a sign-in writes to the account counters only what changed: failures cleared, the known mark renewed past half its life', () =>
    twoNodes({}, async (a, _b, tdb) => {
      const u = await registerUser(a.http);
      const { id } = u;
      await login(a.http, u.username, u.password);
      const counters = async () =>
        (
          await tdb.db.query<{ key: string; expire: string; version: string }>(
            `SELECT key, expire::text, xmin::text AS version FROM rate_limit_counters WHERE key LIKE $1 ORDER BY key`,
            [`%:u:${id}|%`],
          )
        ).rows;
      const day = 24 * 3600_000;
      const first = await counters();
      assert.deepEqual(first.map((r) => r.key.split(':')[0]), ['known'], 'a known mark, no failures');
      assert.ok(Math.abs(Number(first[0]!.expire) - (Date.now() + 20 * day)) < 60_000, 'marked for 20 days');
      // A second sign-in: the same rows, not rewritten (xmin unchanged).
      assert.equal((await a.http.token({ username: u.username, password: u.password })).status, 200);
      assert.deepEqual(await counters(), first);
      // A failure is counted; the next success clears it.
      assert.equal((await a.http.token({ username: u.username, password: 'wrong-Pass-1' })).status, 400);
      assert.deepEqual((await counters()).map((r) => r.key.split(':')[0]), ['fail-ui', 'known']);
      assert.equal((await a.http.token({ username: u.username, password: u.password })).status, 200);
      assert.deepEqual(await counters(), first, 'failures cleared, the mark left alone');
      // A mark with less than half its time left is renewed to the full 20 days.
      await tdb.db.query('UPDATE rate_limit_counters SET expire = $1 WHERE key = $2', [Date.now() + 9 * day, first[0]!.key]);
      assert.equal((await a.http.token({ username: u.username, password: u.password })).status, 200);
      const [renewed] = await counters();
      assert.ok(Math.abs(Number(renewed!.expire) - (Date.now() + 20 * day)) < 60_000, `renewed: ${renewed!.expire}`);
    }));

  test('while PostgreSQL errors, the in-process limiter still limits', async () => {
    const app = await startApp({ backend: 'postgres', env: { RATE_LIMIT_TOKEN_PER_MINUTE: '3' } });
    try {
      // A real failure of the store, not a mock: its table is gone.
      await app.core.db.query('DROP TABLE rate_limit_counters');
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await bogusRefresh(app)).status);
      assert.deepEqual(statuses, [400, 400, 400, 429, 429]);
    } finally {
      await app.close();
    }
  });

  test('with REDIS_URL as well, Redis keeps the counters', { skip: hasRedis() ? false : 'needs REDIS_URL' }, async () => {
    const app = await startApp({ backend: 'postgres', env: { REDIS_URL: process.env.REDIS_URL } });
    try {
      assert.equal(app.core.limits.store, 'redis');
    } finally {
      await app.close();
    }
  });
});
