// Every algorithm, verified the way resource servers do it: with jose's
// createRemoteJWKSet and with PyJWT's PyJWKClient (Debian python3-jwt)
// fetching the running service's JWK set over loopback; HS256 with the
// shared SECRET_KEY. The verifying code is docs/examples/, as the README
// shows it. Also: keys kept in the database are sealed (no plaintext, a
// wrong SECRET_KEY cannot open them and says so at start), HS256 with
// PREVIOUS_SECRET_KEYS, and no algorithm confusion.
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, exportSPKI, importJWK, jwtVerify, SignJWT, type JWK } from 'jose';
import { gatehouseVerifier } from '../docs/examples/verify-jose.js';
import { ALGORITHMS } from '../src/auth/algorithms.js';
import { deriveKey } from '../src/auth/derived-keys.js';
import { unseal } from '../src/auth/sealed.js';
import { backends, openTestDatabase, registerAndLogin, startApp, TEST_SECRET, type TestApp } from './helpers.js';
import { ROOT, tempDir } from './process-helpers.js';
import { startPublicApp } from './public-app.js';
import { PythonLines, pythonMissing } from './python.js';

const noPython = pythonMissing(['jwt', 'cryptography']);
const PYJWT = join(ROOT, 'test', 'fixtures', 'pyjwt_verify.py');

for (const algorithm of ALGORITHMS) {
  describe(`${algorithm}: tokens verify through the JWK set (jose, PyJWT)`, () => {
    let app: TestApp;
    let python: PythonLines | undefined;
    before(async () => {
      app = await startPublicApp({ env: { ALGORITHM: algorithm } });
      if (!noPython) python = new PythonLines(PYJWT, { GATEHOUSE_URL: app.config.jwtIssuer });
    });
    after(async () => {
      await python?.close();
      await app?.close();
    });

    test('jose: createRemoteJWKSet + jwtVerify (HS256: the shared secret)', async () => {
      const u = await registerAndLogin(app.http);
      const header = decodeProtectedHeader(u.access);
      assert.equal(header.alg, algorithm);
      assert.equal(typeof header.kid, 'string');
      const payload =
        algorithm === 'HS256'
          ? (await jwtVerify(u.access, new TextEncoder().encode(TEST_SECRET), { issuer: app.config.jwtIssuer, audience: 'gatehouse', algorithms: ['HS256'] })).payload
          : await gatehouseVerifier(app.config.jwtIssuer)(u.access);
      assert.equal(payload.sub, u.id);
      assert.equal(payload.iss, app.config.publicUrl);
      const jwks = (await app.http.get('/.well-known/jwks.json')).body.keys as JWK[];
      if (algorithm === 'HS256') assert.deepEqual(jwks, [], 'a shared secret is never published');
      else assert.deepEqual(jwks.map((k) => [k.kid, k.alg]), [[header.kid, algorithm]]);
    });

    test('PyJWT: PyJWKClient over loopback (HS256: the shared secret); a tampered token is refused', async (t) => {
      if (!python) return t.skip(noPython);
      const u = await registerAndLogin(app.http);
      const secret = algorithm === 'HS256' ? TEST_SECRET : undefined;
      const ok = await python.ask({ token: u.access, secret });
      assert.equal(ok.claims?.sub, u.id, JSON.stringify(ok));
      assert.equal(ok.claims.scope, 'me posts:write');
      const [h, p, s] = u.access.split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
      const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: randomUUID() })).toString('base64url')}.${s}`;
      assert.equal((await python.ask({ token: tampered, secret })).error, 'InvalidSignatureError');
      if (secret) assert.equal((await python.ask({ token: u.access, secret: 'another-secret-of-enough-length' })).error, 'InvalidSignatureError');
    });

    if (algorithm !== 'HS256') {
      test('algorithm confusion: HS256 keyed with the public key (PEM or JWK) and the published kid is refused', async () => {
        const u = await registerAndLogin(app.http);
        const jwk = ((await app.http.get('/.well-known/jwks.json')).body.keys as JWK[])[0]!;
        const pem = await exportSPKI((await importJWK(jwk, algorithm)) as CryptoKey);
        for (const key of [pem, pem.trim(), JSON.stringify(jwk)]) {
          const forged = await new SignJWT({ ...(decodeJwt(u.access) as Record<string, unknown>), jti: randomUUID() })
            .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: jwk.kid })
            .sign(new TextEncoder().encode(key));
          assert.equal((await app.http.get('/users/me', forged)).status, 401);
        }
        assert.equal((await app.http.get('/users/me', u.access)).status, 200, 'control');
      });

      test('the key is kept in the database, sealed: no plaintext, opens only with a key from SECRET_KEY', async () => {
        const rows = (await app.core.db.query<{ kid: string; private_key: string; public_jwk: string }>('SELECT kid, private_key, public_jwk FROM signing_keys')).rows;
        assert.equal(rows.length, 1);
        const row = rows[0]!;
        assert.equal(row.kid, app.core.keys.signer(Date.now()).kid);
        assert.doesNotMatch(row.private_key, /PRIVATE KEY|-----/);
        const pem = app.core.keys.signer(Date.now()).signKey as string;
        const der = createPrivateKey(pem).export({ format: 'der', type: 'pkcs8' });
        for (const form of [der.toString('base64'), der.toString('base64url'), der.toString('hex')]) assert.ok(!row.private_key.includes(form.slice(0, 40)));
        assert.equal(unseal(deriveKey(TEST_SECRET, 'signing-key encryption v1'), row.private_key, row.kid), pem);
        assert.equal(unseal(deriveKey('another-secret-of-enough-length', 'signing-key encryption v1'), row.private_key, row.kid), undefined);
        assert.equal(unseal(deriveKey(TEST_SECRET, 'refresh-token successor v1'), row.private_key, row.kid), undefined, 'a key of its own');
        assert.equal(unseal(deriveKey(TEST_SECRET, 'signing-key encryption v1'), row.private_key, 'another kid'), undefined, 'bound to its row');
        assert.equal(JSON.parse(row.public_jwk).d, undefined);
      });
    }
  });
}

for (const backend of backends()) {
  describe(`keys kept by the service (${backend})`, () => {
    test('every node shares the one key; a wrong SECRET_KEY stops start-up clearly; PREVIOUS_SECRET_KEYS opens and reseals it', async () => {
      const tdb = await openTestDatabase(backend);
      const apps: TestApp[] = [];
      try {
        const [a, b] = await Promise.all([startApp({ db: tdb, env: { ALGORITHM: 'ES256' } }), startApp({ db: tdb, env: { ALGORITHM: 'ES256' } })]);
        apps.push(a!, b!);
        assert.equal((await tdb.db.query('SELECT kid FROM signing_keys')).rows.length, 1, 'nodes started together made one key');
        const u = await registerAndLogin(a!.http);
        assert.equal((await b!.http.get('/users/me', u.access)).status, 200);

        const other = 'a-new-secret-key-that-is-long-enough-987654321';
        await assert.rejects(startApp({ db: tdb, env: { ALGORITHM: 'ES256', SECRET_KEY: other } }), (err: Error) => {
          assert.match(err.message, /cannot be decrypted with SECRET_KEY/);
          assert.ok(!err.message.includes(other) && !err.message.includes(TEST_SECRET), 'no secret in the message');
          return true;
        });
        const c = await startApp({ db: tdb, env: { ALGORITHM: 'ES256', SECRET_KEY: other, PREVIOUS_SECRET_KEYS: TEST_SECRET } });
        apps.push(c);
        assert.equal((await c.http.get('/users/me', u.access)).status, 200, 'same key, after a SECRET_KEY change');
        const row = (await tdb.db.query<{ kid: string; private_key: string }>('SELECT kid, private_key FROM signing_keys')).rows[0]!;
        assert.ok(unseal(deriveKey(other, 'signing-key encryption v1'), row.private_key, row.kid), 'sealed again under the new SECRET_KEY');
      } finally {
        for (const x of apps) await x.close();
        await tdb.close();
      }
    });
  });
}

test('a development key file from an earlier version is adopted as the first stored key (its tokens stay valid)', async () => {
  const dir = tempDir('gatehouse-legacy-key-');
  const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  writeFileSync(join(dir, 'jwt_eddsa_private.pem'), pem, { mode: 0o600 });
  const app = await startApp({ env: { ALGORITHM: 'EdDSA', DATA_DIR: dir } });
  try {
    const u = await registerAndLogin(app.http);
    const jwk = ((await app.http.get('/.well-known/jwks.json')).body.keys as JWK[])[0]!;
    const { createPublicKey } = await import('node:crypto');
    assert.equal(jwk.kid, await calculateJwkThumbprint(createPublicKey(pem).export({ format: 'jwk' }) as JWK));
    assert.equal(decodeProtectedHeader(u.access).kid, jwk.kid);
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('HS256: PREVIOUS_SECRET_KEYS', () => {
  const OLD = TEST_SECRET;
  const NEW = 'the-next-secret-key-that-is-long-enough-55555';
  test('old tokens still verify, only the new secret signs, each secret has its kid; refresh tokens and grace retries survive', async () => {
    const tdb = await openTestDatabase('pglite');
    const apps: TestApp[] = [];
    try {
      const before = await startApp({ db: tdb, options: { refreshGraceSeconds: 60 } });
      apps.push(before);
      const u = await registerAndLogin(before.http);
      const oldKid = decodeProtectedHeader(u.access).kid;
      // A refresh answered by a node still on the old secret; its response is lost, the client retries on a node with the new one.
      const first = await before.http.token({ grant_type: 'refresh_token', refresh_token: u.refresh });
      assert.equal(first.status, 200);

      const rotated = await startApp({ db: tdb, env: { SECRET_KEY: NEW, PREVIOUS_SECRET_KEYS: OLD }, options: { refreshGraceSeconds: 60 } });
      apps.push(rotated);
      const retry = await rotated.http.token({ grant_type: 'refresh_token', refresh_token: u.refresh });
      assert.equal(retry.status, 200, retry.text);
      assert.equal(retry.body.refresh_token, first.body.refresh_token, 'the same successor, found across the change');
      assert.equal((await rotated.http.get('/users/me', u.access)).status, 200, 'a token of the old secret still verifies');
      const again = await rotated.http.token({ grant_type: 'refresh_token', refresh_token: retry.body.refresh_token });
      assert.equal(again.status, 200, 'the session lives on');
      const fresh = again.body.access_token as string;
      assert.notEqual(decodeProtectedHeader(fresh).kid, oldKid, 'each secret has its own kid');
      await jwtVerify(fresh, new TextEncoder().encode(NEW), { algorithms: ['HS256'] });
      await assert.rejects(jwtVerify(fresh, new TextEncoder().encode(OLD), { algorithms: ['HS256'] }), 'only SECRET_KEY signs');

      // Without PREVIOUS_SECRET_KEYS the old secret's tokens are refused.
      const dropped = await startApp({ db: tdb, env: { SECRET_KEY: NEW } });
      apps.push(dropped);
      assert.equal((await dropped.http.get('/users/me', u.access)).status, 401);
      assert.equal((await dropped.http.get('/users/me', fresh)).status, 200);
    } finally {
      for (const x of apps) await x.close();
      await tdb.close();
    }
  });
});

test('the README shows the resource-server examples exactly as these tests run them', async () => {
  const { readFileSync } = await import('node:fs');
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  for (const [file, lang] of [['verify-jose.ts', 'ts'], ['verify_pyjwt.py', 'python'], ['fastapi_jwks.py', 'python']]) {
    const code = readFileSync(join(ROOT, 'docs', 'examples', file!), 'utf8');
    assert.ok(readme.includes('```' + lang + '\n' + code + '```'), `README shows docs/examples/${file} verbatim`);
  }
});

test('a configured private key given as a JWK wins over stored keys (nothing is stored)', async () => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const jwk = privateKey.export({ format: 'jwk' });
  const app = await startApp({ env: { ALGORITHM: 'ES256', JWT_PRIVATE_KEY: JSON.stringify(jwk) } });
  try {
    const u = await registerAndLogin(app.http);
    const published = ((await app.http.get('/.well-known/jwks.json')).body.keys as JWK[])[0]!;
    assert.equal(published.kid, await calculateJwkThumbprint({ kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y } as JWK));
    assert.equal(published.d, undefined);
    assert.equal(decodeProtectedHeader(u.access).kid, published.kid);
    assert.equal((await app.core.db.query('SELECT 1 FROM signing_keys')).rows.length, 0);
  } finally {
    await app.close();
  }
});
