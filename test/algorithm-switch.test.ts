// Changing ALGORITHM is a rotation with no publish delay: the new algorithm
// signs at once; the previous one's keys keep verifying (and, asymmetric,
// stay in the JWK set) until every token they can have signed has expired
// (switch + access token lifetime + leeway), then are refused, unpublished
// and deleted. The switch is recorded in the database: a restart does not
// move it. Refresh tokens are opaque and survive any switch. Each test runs
// nodes one after another on one database and one movable clock.
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { cpSync, rmSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, importPKCS8, jwtVerify, SignJWT, type JWK } from 'jose';
import { KeyStore } from '../src/auth/key-store.js';
import { hmacKey } from '../src/auth/keys.js';
import { authMigrations } from '../src/auth/migrations.js';
import { MovableClock } from '../src/clock.js';
import { openPglite } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import { backends, eventually, hasServer, login, openTestDatabase, registerAndLogin, startApp, TEST_SECRET, type BackendName, type TestApp, type TestDatabase } from './helpers.js';
import { tempDir } from './process-helpers.js';

const LIFETIME = { ACCESS_TOKEN_EXPIRE_MINUTES: '15', JWT_LEEWAY_SECONDS: '30' };
/** Until when (ms) keys retired at `atMs` verify: the rotation rule, lifetime 15 min + leeway 30 s. */
const windowEnd = (atMs: number) => (Math.ceil(atMs / 1000) + 900 + 30) * 1000;

const algOf = (token: string) => decodeProtectedHeader(token).alg;
const jwks = async (app: TestApp) => (await app.http.get('/.well-known/jwks.json')).body as { keys: JWK[] };
const publishedKids = async (app: TestApp) => (await jwks(app)).keys.map((k) => k.kid);
const me = async (app: TestApp, token: string) => app.http.get('/users/me', token);
const refresh = async (app: TestApp, token: string) => app.http.token({ grant_type: 'refresh_token', refresh_token: token });

/** When the database says `algorithm` stopped signing (ms). */
async function retiredAt(app: TestApp, algorithm: string): Promise<number> {
  const r = await app.core.db.query<{ retired_at: Date }>('SELECT retired_at FROM signing_algorithms WHERE algorithm = $1', [algorithm]);
  return r.rows[0]!.retired_at.getTime();
}

/** A token like `model`, freshly dated by the clock, signed by the previous algorithm's key: HS256 under SECRET_KEY, or a private key (PEM). */
async function forge(clock: MovableClock, model: string, key: { hs256: string } | { pem: string; alg: string; kid: string }): Promise<string> {
  const iat = Math.floor(clock.now() / 1000);
  const jwt = new SignJWT({ ...(decodeJwt(model) as Record<string, unknown>), iat, exp: iat + 600, jti: randomUUID() });
  if ('hs256' in key) return jwt.setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: hmacKey(key.hs256, true).kid }).sign(Buffer.from(key.hs256, 'utf8'));
  return jwt.setProtectedHeader({ alg: key.alg, typ: 'at+jwt', kid: key.kid }).sign(await importPKCS8(key.pem, key.alg));
}

/** Runs `fn` with a node starter: each node joins one database (`tdb`, or a fresh one) and one clock; all are closed afterwards. */
async function onOneDatabase(
  backend: BackendName,
  fn: (node: Node, clock: MovableClock, tdb: TestDatabase) => Promise<void>,
  given?: TestDatabase,
) {
  const tdb = given ?? (await openTestDatabase(backend));
  const clock = new MovableClock();
  let running: TestApp | undefined;
  // One node at a time: starting the next closes the previous (a restart with another configuration).
  const node = async (env: Record<string, string>) => {
    await running?.close();
    running = undefined;
    running = await startApp({ db: tdb, clock, env: { ...LIFETIME, ...env } });
    return running;
  };
  try {
    await fn(node, clock, tdb);
  } finally {
    await running?.close();
    await tdb.close();
  }
}

const advanceTo = (clock: MovableClock, ms: number) => clock.advance(ms - clock.now());

type Node = (env: Record<string, string>) => Promise<TestApp>;

/** Moves the clock to 5 s before `end`, where a token `forged` then is accepted, then to 5 s after, where one is refused. */
async function acrossWindowEnd(app: TestApp, clock: MovableClock, end: number, forged: () => Promise<string>): Promise<void> {
  advanceTo(clock, end - 5_000);
  assert.equal((await me(app, await forged())).status, 200, 'accepted until the window closes');
  clock.advance(10_000);
  const late = await me(app, await forged());
  assert.equal(late.status, 401);
  assert.match(late.body.detail, /names no key of ours/);
}

/** Signs a user in on an EdDSA node, then restarts it with `algorithm`: the user, the EdDSA key (to forge with), when its window closes. */
async function switchFromEdDSA(node: Node, clock: MovableClock, algorithm: string) {
  let app = await node({ ALGORITHM: 'EdDSA' });
  const u = await registerAndLogin(app.http);
  const oldKey = { pem: app.core.keys.signer(clock.now()).signKey as string, alg: 'EdDSA', kid: decodeProtectedHeader(u.access).kid! };
  app = await node({ ALGORITHM: algorithm });
  return { app, u, oldKey, end: windowEnd(await retiredAt(app, 'EdDSA')) };
}

/** A database as this version's predecessor left it: the auth migrations before 011 (signing_algorithms). */
async function openPredecessorDatabase(backend: BackendName): Promise<TestDatabase> {
  let tdb: TestDatabase;
  if (backend === 'pglite') {
    const db = await openPglite('memory://');
    tdb = { db, close: () => db.close() };
  } else tdb = await openTestDatabase('postgres');
  const dir = tempDir('gatehouse-migrations-');
  cpSync(fileURLToPath(authMigrations.dir as URL), dir, { recursive: true, filter: (f) => !f.endsWith('011_signing_algorithms.sql') });
  try {
    await migrate(tdb.db, { ...authMigrations, dir });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return tdb;
}

for (const backend of backends()) {
  describe(`changing ALGORITHM (${backend})`, () => {
    test('HS256 → EdDSA: an HS256 token verifies until the switch + lifetime + leeway, even across a restart; new tokens are EdDSA; the refresh token survives', () =>
      onOneDatabase(backend, async (node, clock) => {
        let app = await node({ ALGORITHM: 'HS256' });
        const u = await registerAndLogin(app.http);
        assert.equal(algOf(u.access), 'HS256');

        app = await node({ ALGORITHM: 'EdDSA' });
        const end = windowEnd(await retiredAt(app, 'HS256'));
        assert.equal((await me(app, u.access)).status, 200, 'the HS256 token issued before the switch still works');
        assert.equal(algOf((await login(app.http, u.username)).access), 'EdDSA');
        const r = await refresh(app, u.refresh);
        assert.equal(r.status, 200, r.text);
        assert.equal(algOf(r.body.access_token as string), 'EdDSA');
        assert.deepEqual((await jwks(app)).keys.map((k) => k.alg), ['EdDSA'], 'a shared secret is never published');

        // A restart inside the window moves nothing: the switch is the recorded one.
        advanceTo(clock, end - 60_000);
        app = await node({ ALGORITHM: 'EdDSA' });
        // The switch was audited once, by the node that made it (closing it wrote its events), not by the restart.
        const switches = await app.core.db.query<{ detail: unknown }>(`SELECT detail FROM audit_events WHERE type = 'signing_algorithm_changed'`);
        assert.deepEqual(switches.rows.map((r) => r.detail), [{ algorithm: 'EdDSA', previous: ['HS256'] }]);
        await acrossWindowEnd(app, clock, end, () => forge(clock, u.access, { hs256: TEST_SECRET }));
        assert.equal((await me(app, u.access)).status, 401);
        // Nor after another restart.
        app = await node({ ALGORITHM: 'EdDSA' });
        assert.equal((await me(app, await forge(clock, u.access, { hs256: TEST_SECRET }))).status, 401);
        const again = await refresh(app, r.body.refresh_token as string);
        assert.equal(again.status, 200, again.text);
        assert.equal((await me(app, again.body.access_token as string)).status, 200);
      }));

    test('EdDSA → ES256: the EdDSA key stays in the JWK set (resource servers verify with it) until the window closes, then is gone and deleted', () =>
      onOneDatabase(backend, async (node, clock, tdb) => {
        const { app, u, oldKey, end } = await switchFromEdDSA(node, clock, 'ES256');
        const k0 = oldKey.kid;
        assert.equal((await me(app, u.access)).status, 200);
        const fresh = await login(app.http, u.username);
        const k1 = decodeProtectedHeader(fresh.access).kid!;
        assert.equal(algOf(fresh.access), 'ES256');
        assert.deepEqual(await publishedKids(app), [k1, k0], 'the signing key first, the retired one still published');
        // A resource server verifying through the served set accepts the old token.
        const verified = await jwtVerify(u.access, createLocalJWKSet(await jwks(app)), { issuer: app.config.jwtIssuer, audience: 'gatehouse' });
        assert.equal(verified.payload.sub, u.id);
        assert.equal(await app.core.keyFollower.prune(), 0, 'nothing deleted inside the window');

        advanceTo(clock, end - 5_000);
        assert.deepEqual(await publishedKids(app), [k1, k0]);
        await acrossWindowEnd(app, clock, end, () => forge(clock, u.access, oldKey));
        assert.deepEqual(await publishedKids(app), [k1]);
        assert.equal(await app.core.keyFollower.prune(), 1);
        const rows = await tdb.db.query<{ kid: string; algorithm: string }>('SELECT kid, algorithm FROM signing_keys');
        assert.deepEqual(rows.rows, [{ kid: k1, algorithm: 'ES256' }]);
        const r = await refresh(app, u.refresh);
        assert.equal(r.status, 200, r.text);
        assert.equal(algOf(r.body.access_token as string), 'ES256');
      }));

    test('EdDSA → HS256: EdDSA tokens verify (the key still published) until the window closes; the key is deleted then', () =>
      onOneDatabase(backend, async (node, clock, tdb) => {
        const { app, u, oldKey, end } = await switchFromEdDSA(node, clock, 'HS256');
        assert.equal((await me(app, u.access)).status, 200);
        assert.equal(algOf((await login(app.http, u.username)).access), 'HS256');
        assert.deepEqual(await publishedKids(app), [oldKey.kid]);
        await acrossWindowEnd(app, clock, end, () => forge(clock, u.access, oldKey));
        assert.deepEqual(await publishedKids(app), []);
        assert.equal(await app.core.keyFollower.prune(), 1);
        assert.equal((await tdb.db.query('SELECT 1 FROM signing_keys')).rows.length, 0);
        const r = await refresh(app, u.refresh);
        assert.equal(r.status, 200, r.text);
        assert.equal(algOf(r.body.access_token as string), 'HS256');
      }));

    test('EdDSA for longer than the window: an HS256 token signed with SECRET_KEY is refused (also for a deployment stored before the switch was recorded)', () =>
      onOneDatabase(backend, async (node, clock, tdb) => {
        let app = await node({ ALGORITHM: 'EdDSA' });
        const u = await registerAndLogin(app.http);
        clock.advance(901_000 + 30_000);
        const hs = await forge(clock, u.access, { hs256: TEST_SECRET });
        assert.equal((await me(app, hs)).status, 401);
        // As the migration leaves a database from before: no record of HS256; the first stored key says since when EdDSA signs.
        await tdb.db.query(`DELETE FROM signing_algorithms WHERE algorithm = 'HS256'`);
        app = await node({ ALGORITHM: 'EdDSA' });
        const late = await me(app, await forge(clock, u.access, { hs256: TEST_SECRET }));
        assert.equal(late.status, 401);
        assert.match(late.body.detail, /names no key of ours/);
        assert.equal((await me(app, (await login(app.http, u.username)).access)).status, 200);
      }));

    test('HS256 → a configured private key (JWT_PRIVATE_KEY): HS256 tokens verify until the window closes', () =>
      onOneDatabase(backend, async (node, clock) => {
        let app = await node({ ALGORITHM: 'HS256' });
        const u = await registerAndLogin(app.http);
        const pem = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
        app = await node({ ALGORITHM: 'ES256', JWT_PRIVATE_KEY: pem });
        const end = windowEnd(await retiredAt(app, 'HS256'));
        assert.equal((await me(app, u.access)).status, 200);
        assert.equal(algOf((await login(app.http, u.username)).access), 'ES256');
        await acrossWindowEnd(app, clock, end, () => forge(clock, u.access, { hs256: TEST_SECRET }));
        assert.equal((await refresh(app, u.refresh)).status, 200);
      }));

    test('keys a predecessor stored under earlier algorithms are retired at the first start and deleted after the window', async () => {
      const tdb = await openPredecessorDatabase(backend);
      const secrets = { current: TEST_SECRET, previous: [] };
      // ES256 long ago, then EdDSA: the predecessor kept both for good.
      await new KeyStore(tdb.db, 'ES256', secrets).ensure(Date.now() - 86_400_000);
      await new KeyStore(tdb.db, 'EdDSA', secrets).ensure(Date.now() - 3_600_000);
      const stored = async () => (await tdb.db.query<{ algorithm: string }>('SELECT algorithm FROM signing_keys ORDER BY algorithm')).rows.map((r) => r.algorithm);
      assert.deepEqual(await stored(), ['ES256', 'EdDSA']);
      await onOneDatabase(
        backend,
        async (node, clock) => {
          const app = await node({ ALGORITHM: 'EdDSA' });
          const u = await registerAndLogin(app.http);
          assert.equal(algOf(u.access), 'EdDSA');
          const end = windowEnd(await retiredAt(app, 'ES256'));
          assert.equal((await jwks(app)).keys.length, 2, 'the ES256 key is published until its window closes');
          assert.equal((await me(app, await forge(clock, u.access, { hs256: TEST_SECRET }))).status, 401, 'EdDSA has signed for an hour: no HS256');
          advanceTo(clock, end + 1_000);
          assert.deepEqual((await jwks(app)).keys.map((k) => k.alg), ['EdDSA']);
          assert.equal(await app.core.keyFollower.prune(), 1);
          assert.deepEqual(await stored(), ['EdDSA']);
        },
        tdb,
      );
    });
  });
}

describe('changing ALGORITHM node by node (PostgreSQL server)', { skip: hasServer() ? false : 'needs DATABASE_URL' }, () => {
  test('a node not yet restarted learns of the switch within seconds and accepts the new algorithm; the switched one accepts the old', async () => {
    const shared = await openTestDatabase('postgres');
    const nodes: TestApp[] = [];
    try {
      nodes.push(await startApp({ db: shared, env: { ...LIFETIME, ALGORITHM: 'EdDSA' } }));
      nodes.push(await startApp({ db: shared, env: { ...LIFETIME, ALGORITHM: 'EdDSA' } }));
      const u = await registerAndLogin(nodes[0]!.http);
      await nodes.pop()!.close();
      const switched = await startApp({ db: shared, env: { ...LIFETIME, ALGORITHM: 'ES256' } });
      nodes.push(switched);
      const fresh = await login(switched.http, u.username);
      assert.equal(algOf(fresh.access), 'ES256');
      assert.equal((await me(switched, u.access)).status, 200);
      assert.ok(await eventually(async () => (await me(nodes[0]!, fresh.access)).status === 200, 5_000, 100), 'the EdDSA node accepts ES256 tokens');
      assert.equal(algOf((await login(nodes[0]!.http, u.username)).access), 'EdDSA', 'it signs as configured until restarted');
    } finally {
      for (const n of nodes) await n.close();
      await shared.close();
    }
  });
});
