// Rotation without downtime. A rotated key is published at once, signs
// only after KEY_PUBLISH_DELAY_SECONDS; the key it replaces stays published
// (and accepted) until every token it signed has expired, then is gone and
// housekeeping deletes it. On the PostgreSQL server: the real CLI process
// rotates while two running nodes follow without a restart, and a client
// refreshing and calling /users/me all along sees no failed request.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { describe, test } from 'node:test';
import { decodeJwt, decodeProtectedHeader, importPKCS8, SignJWT, type JWK } from 'jose';
import { rotateKeys, RotationRefused } from '../src/admin/rotate-keys.js';
import { parseEvent } from '../src/auth/event-bus.js';
import { busesHealthy, eventually, hasServer, login, openTestDatabase, registerAndLogin, startApp, testConfig, type TestApp } from './helpers.js';
import { runCli, tempDir } from './process-helpers.js';

const kidOf = (token: string) => decodeProtectedHeader(token).kid as string;
const publishedKids = async (app: TestApp) => ((await app.http.get('/.well-known/jwks.json')).body.keys as JWK[]).map((k) => k.kid);

/** A token like `model`, freshly dated by `app`'s clock, signed with the private key (PEM) under `kid`. */
async function forge(app: TestApp, model: string, pem: string, kid: string): Promise<string> {
  const iat = Math.floor(app.clock.now() / 1000);
  return new SignJWT({ ...(decodeJwt(model) as Record<string, unknown>), iat, exp: iat + 600, jti: randomUUID() })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid })
    .sign(await importPKCS8(pem, 'EdDSA'));
}

describe('key rotation (in-process, movable clock)', () => {
  test('published at once, signs after the delay; the old key verifies until its tokens expired, then is gone and deleted', async () => {
    const app = await startApp({ env: { ALGORITHM: 'EdDSA', ACCESS_TOKEN_EXPIRE_MINUTES: '15', JWT_LEEWAY_SECONDS: '30' } });
    try {
      const u = await registerAndLogin(app.http);
      const k0 = kidOf(u.access);
      const oldPem = app.core.keys.signer(app.clock.now()).signKey as string;
      assert.deepEqual(await publishedKids(app), [k0]);
      assert.match((await app.http.get('/.well-known/jwks.json')).headers.get('cache-control')!, /^public, max-age=300$/);

      const r = await rotateKeys(app.core.db, app.config, app.clock);
      assert.equal(r.previous, k0);
      assert.equal(r.activatesAt.getTime() - app.clock.now() <= 600_000, true);
      await app.core.keyFollower!.reload();
      const k1 = r.kid;
      assert.deepEqual(await publishedKids(app), [k0, k1], 'published at once, the signing key first');
      // Not signing before the delay.
      assert.equal(kidOf((await login(app.http, u.username)).access), k0);
      app.clock.advance(599_000);
      assert.equal(kidOf((await login(app.http, u.username)).access), k0);
      app.clock.advance(2_000);
      const after = await login(app.http, u.username);
      assert.equal(kidOf(after.access), k1, 'signs after the delay');
      assert.deepEqual(await publishedKids(app), [k1, k0]);
      assert.equal((await app.http.get('/users/me', u.access)).status, 200, 'a token of the old key still verifies');

      // The old key is accepted until retire time + access token lifetime + leeway…
      app.clock.advance(900_000 + 30_000 - 5_000);
      assert.equal((await app.http.get('/users/me', await forge(app, after.access, oldPem, k0))).status, 200);
      assert.deepEqual(await publishedKids(app), [k1, k0]);
      // …then refused and unpublished; housekeeping deletes it.
      app.clock.advance(10_000);
      const late = await app.http.get('/users/me', await forge(app, after.access, oldPem, k0));
      assert.equal(late.status, 401);
      assert.match(late.body.detail, /names no key of ours/);
      assert.deepEqual(await publishedKids(app), [k1]);
      assert.equal(await app.core.keyFollower!.prune(), 1);
      assert.deepEqual((await app.core.db.query<{ kid: string }>('SELECT kid FROM signing_keys')).rows.map((x) => x.kid), [k1]);
      assert.equal((await app.http.get('/users/me', (await login(app.http, u.username)).access)).status, 200);

      const audit = await app.core.db.query<{ detail: Record<string, unknown> }>(`SELECT detail FROM audit_events WHERE type = 'keys_rotated'`);
      assert.equal(audit.rows.length, 1);
      assert.equal(audit.rows[0]!.detail.kid, k1);
      assert.equal(audit.rows[0]!.detail.previous, k0);
    } finally {
      await app.close();
    }
  });

  test('refused where configuration fixes the keys: HS256, a configured private key', async () => {
    const tdb = await openTestDatabase('pglite');
    try {
      await assert.rejects(rotateKeys(tdb.db, testConfig({ ALGORITHM: 'HS256' })), (e: Error) => e instanceof RotationRefused && /PREVIOUS_SECRET_KEYS/.test(e.message));
      const { generateKeyPairSync } = await import('node:crypto');
      const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
      await assert.rejects(rotateKeys(tdb.db, testConfig({ ALGORITHM: 'EdDSA', JWT_PRIVATE_KEY: pem })), RotationRefused);
      assert.equal((await tdb.db.query('SELECT 1 FROM signing_keys')).rows.length, 0);
    } finally {
      await tdb.close();
    }
  });

  test('the keys event is exactly {"type":"keys"}; anything more or less is dropped', () => {
    assert.deepEqual(parseEvent('{"type":"keys"}'), { type: 'keys' });
    for (const raw of ['{"type":"keys","kid":"x"}', '{"type":"Keys"}', '["keys"]', '{"type":"keys"']) assert.equal(parseEvent(raw), undefined, raw);
  });

  test('the JWK set is cached no longer than the publish delay', async () => {
    const app = await startApp({ env: { ALGORITHM: 'ES256', KEY_PUBLISH_DELAY_SECONDS: '7' } });
    try {
      assert.equal((await app.http.get('/.well-known/jwks.json')).headers.get('cache-control'), 'public, max-age=7');
    } finally {
      await app.close();
    }
  });
});

describe('key rotation on the PostgreSQL server (CLI process, two nodes)', { skip: hasServer() ? false : 'needs DATABASE_URL' }, () => {
  test('rotate-keys twice under load: both nodes follow without restart, the client sees no failed request', async () => {
    const DELAY = 4;
    const shared = await openTestDatabase('postgres');
    const env = { ALGORITHM: 'EdDSA', KEY_PUBLISH_DELAY_SECONDS: String(DELAY) };
    const nodes = [await startApp({ db: shared, env }), await startApp({ db: shared, env })];
    const dataDir = tempDir('gatehouse-cli-data-');
    const cliEnv = { ...env, DATABASE_URL: shared.url!, DATA_DIR: dataDir, REDIS_PREFIX: nodes[0]!.config.redisPrefix };
    let running = true;
    const failures: string[] = [];
    const kids = new Set<string>();
    let requests = 0;
    try {
      assert.ok(await busesHealthy(...nodes));
      const u = await registerAndLogin(nodes[0]!.http);
      const firstAccess = u.access;
      // The client: refresh on one node, call /users/me on the other, and again with its first token; over and over.
      const client = (async () => {
        let refresh = u.refresh;
        for (let i = 0; running; i++) {
          const [a, b] = [nodes[i % 2]!, nodes[(i + 1) % 2]!];
          const t = await a.http.token({ grant_type: 'refresh_token', refresh_token: refresh });
          requests++;
          if (t.status !== 200) {
            failures.push(`refresh ${t.status} ${t.text}`);
            break;
          }
          refresh = t.body.refresh_token;
          kids.add(kidOf(t.body.access_token));
          for (const token of [t.body.access_token as string, firstAccess]) {
            const me = await b.http.get('/users/me', token);
            requests++;
            if (me.status !== 200) failures.push(`/users/me ${me.status} ${me.text} (kid ${kidOf(token)})`);
          }
        }
      })();

      let previous = kidOf(u.access);
      for (let round = 0; round < 2; round++) {
        const out = await runCli(['rotate-keys'], cliEnv);
        assert.equal(out.code, 0, out.stderr);
        assert.equal(out.stderr, '', 'every node told');
        const m = /^key (\S+) \(EdDSA\) is published now and signs from (\S+); key (\S+) is retired then/.exec(out.stdout);
        assert.ok(m, out.stdout);
        const [, kid, from, retired] = m as unknown as [string, string, string, string];
        assert.equal(retired, previous);
        // Published on both nodes within seconds (no restart), while the old key still signs.
        assert.ok(await eventually(async () => (await Promise.all(nodes.map(publishedKids))).every((k) => k.includes(kid) && k.includes(previous)), 3000, 50));
        if (Date.now() < Date.parse(from) - 500) assert.equal(kidOf((await login(nodes[1]!.http, u.username)).access), previous, 'not signing before the delay');
        // After the delay both nodes sign with it.
        assert.ok(
          await eventually(async () => {
            const tokens = await Promise.all(nodes.map(async (n) => (await login(n.http, u.username)).access));
            return tokens.every((t) => kidOf(t) === kid);
          }, DELAY * 1000 + 3000, 200),
          'both nodes sign with the new key after the delay',
        );
        previous = kid;
      }
      running = false;
      await client;
      assert.deepEqual(failures, []);
      assert.equal(kids.size, 3, 'the client saw tokens of all three keys');
      assert.ok(requests > 20, `${requests} requests`);
      const audit = await shared.db.query(`SELECT 1 FROM audit_events WHERE type = 'keys_rotated'`);
      assert.equal(audit.rows.length, 2);
    } finally {
      running = false;
      for (const n of nodes) await n.close();
      await shared.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
