// The guard (RFC 6750) and access-token verification (RFC 9068, RFC 8725):
// every way of forging, bending or stretching a token is refused with the
// exact challenge API.md gives; a well-made token is accepted (the control
// that shows each refusal is for the one thing changed).
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, exportSPKI, importJWK, jwtVerify, SignJWT, type JWK } from 'jose';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { backends, registerAndLogin, startApp, TEST_SECRET, type LoggedIn, type Res, type TestApp } from './helpers.js';

const SECRET = new TextEncoder().encode(TEST_SECRET);
const CHALLENGE = 'Bearer realm="gatehouse"';
const INVALID_TOKEN_RE = /^Bearer realm="gatehouse", error="invalid_token", error_description="[^"\\]+"$/;

const b64url = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** 401 with the plain challenge (no credentials were presented). */
function assertChallenge(r: Res) {
  assert.equal(r.status, 401, r.text);
  assert.equal(r.headers.get('www-authenticate'), CHALLENGE);
  assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal(r.body.status, 401);
  assert.equal(typeof r.body.detail, 'string');
}

/** 401 invalid_token, in exactly the format of API.md. */
function assertInvalidToken(r: Res, why = '') {
  assert.equal(r.status, 401, `${why}: ${r.status} ${r.text}`);
  const h = r.headers.get('www-authenticate') ?? '';
  assert.match(h, INVALID_TOKEN_RE, why);
  assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal(r.body.status, 401);
  assert.equal(typeof r.body.title, 'string');
  assert.equal(typeof r.body.type, 'string');
  assert.equal(typeof r.body.detail, 'string');
}

for (const backend of backends()) {
  describe(`the guard and token verification (${backend})`, () => {
    let app: TestApp;
    let u: LoggedIn;
    let claims: Record<string, unknown>;
    let kid: string;

    before(async () => {
      app = await startApp({ backend });
      u = await registerAndLogin(app.http);
      claims = decodeJwt(u.access) as Record<string, unknown>;
      kid = decodeProtectedHeader(u.access).kid!;
    });
    after(async () => app?.close());

    /** A token as the service would make it, with overrides (claims set to undefined are left out). */
    async function forge(
      over: Record<string, unknown> = {},
      header: Record<string, unknown> = {},
      key: Uint8Array | CryptoKey = SECRET,
    ): Promise<string> {
      const now = Math.floor(app.clock.now() / 1000);
      const payload: Record<string, unknown> = { ...claims, iat: now, exp: now + 900, jti: randomUUID(), ...over };
      for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
      return new SignJWT(payload as never).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid, ...header } as never).sign(key);
    }

    const me = (token: string) => app.http.get('/users/me', token);

    test('control: a token forged with the right key, header and claims is accepted', async () => {
      const r = await me(await forge());
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.id, u.id);
    });

    test('no Authorization header: 401 with the plain challenge', async () => {
      assertChallenge(await app.http.get('/users/me'));
    });

    test('another scheme (Basic, Digest, garbage): the plain challenge, no error', async () => {
      for (const value of ['Basic dXNlcjpwYXNz', 'Digest username="a"', 'garbage', 'Token abc', 'Bearerx abc', '']) {
        const r = await app.http.request('GET', '/users/me', { headers: { authorization: value } });
        assertChallenge(r);
      }
    });

    test('a malformed Bearer credential: 401 invalid_token', async () => {
      for (const value of ['Bearer', 'Bearer ', 'Bearer abc def', 'Bearer not-a-jwt', 'Bearer a.b.c', 'Bearer ....', 'Bearer é', `Bearer ${u.access}x`, `Bearer ${u.access}.x`]) {
        const r = await app.http.request('GET', '/users/me', { headers: { authorization: value } });
        assertInvalidToken(r, value);
      }
    });

    test('the scheme is case-insensitive (RFC 7235)', async () => {
      for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
        const r = await app.http.request('GET', '/users/me', { headers: { authorization: `${scheme} ${u.access}` } });
        assert.equal(r.status, 200, `${scheme}: ${r.text}`);
      }
    });

    test('a FastAPI-style token (typ JWT, same secret, same claims) is refused', async () => {
      assertInvalidToken(await me(await forge({}, { typ: 'JWT' })), 'typ JWT');
      // No typ at all, as python-jose and PyJWT write by default.
      const now = Math.floor(Date.now() / 1000);
      const noTyp = await new SignJWT({ ...claims, iat: now, exp: now + 900 } as never).setProtectedHeader({ alg: 'HS256' }).sign(SECRET);
      assertInvalidToken(await me(noTyp), 'no typ');
      // FastAPI's tutorial payload: {"sub": username, "exp"} only.
      const tutorial = await new SignJWT({ sub: u.username, exp: now + 900 }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(SECRET);
      assertInvalidToken(await me(tutorial), 'tutorial token');
      assertInvalidToken(await me(await forge({}, { typ: 'application/jwt' })), 'typ application/jwt');
    });

    test('alg none is refused (with and without a signature part)', async () => {
      const payload = b64url({ ...claims, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 900 });
      for (const alg of ['none', 'None', 'NONE']) {
        const head = b64url({ alg, typ: 'at+jwt', kid });
        assertInvalidToken(await me(`${head}.${payload}.`), alg);
        const sig = u.access.split('.')[2];
        assertInvalidToken(await me(`${head}.${payload}.${sig}`), `${alg} with a signature`);
      }
    });

    test('HS384 and HS512 with the same key are refused (only the configured algorithm)', async () => {
      for (const alg of ['HS384', 'HS512']) assertInvalidToken(await me(await forge({}, { alg })), alg);
    });

    test('an asymmetric token (RS256, ES256, EdDSA) is refused by an HS256 service', async () => {
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const ed = generateKeyPairSync('ed25519');
      assertInvalidToken(await me(await forge({}, { alg: 'RS256' }, rsa.privateKey as never)), 'RS256');
      assertInvalidToken(await me(await forge({}, { alg: 'ES256' }, ec.privateKey as never)), 'ES256');
      assertInvalidToken(await me(await forge({}, { alg: 'EdDSA' }, ed.privateKey as never)), 'EdDSA');
    });

    test('a tampered payload, header or signature is refused', async () => {
      const [h, p, s] = u.access.split('.') as [string, string, string];
      const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
      for (const change of [{ scope: 'me posts:write admin' }, { sub: randomUUID() }, { exp: payload.exp + 3600 }, { username: 'root' }]) {
        assertInvalidToken(await me(`${h}.${b64url({ ...payload, ...change })}.${s}`), JSON.stringify(change));
      }
      const header = JSON.parse(Buffer.from(h, 'base64url').toString());
      assertInvalidToken(await me(`${b64url({ ...header, kid: 'other' })}.${p}.${s}`), 'header changed');
      const flipped = s.slice(0, -2) + (s.at(-2) === 'A' ? 'B' : 'A') + s.at(-1);
      assertInvalidToken(await me(`${h}.${p}.${flipped}`), 'signature changed');
      assertInvalidToken(await me(`${h}.${p}.`), 'signature removed');
    });

    test('a token signed with another secret is refused', async () => {
      assertInvalidToken(await me(await forge({}, {}, new TextEncoder().encode(TEST_SECRET + 'x'))));
      assertInvalidToken(await me(await forge({}, {}, new TextEncoder().encode(TEST_SECRET.slice(0, -1)))));
    });

    test('wrong iss, wrong aud, or none at all: refused', async () => {
      for (const over of [{ iss: 'evil' }, { iss: undefined }, { aud: 'other-api' }, { aud: undefined }, { aud: ['other-api'] }, { iss: 'Gatehouse' }]) {
        assertInvalidToken(await me(await forge(over)), JSON.stringify(over));
      }
      // An audience list that includes ours is fine (RFC 7519 §4.1.3).
      assert.equal((await me(await forge({ aud: ['other-api', 'gatehouse'] }))).status, 200);
    });

    test('a missing or mistyped required claim is refused', async () => {
      for (const over of [
        { sub: undefined },
        { jti: undefined },
        { sid: undefined },
        { scope: undefined },
        { exp: undefined },
        { iat: undefined },
        { exp: 'tomorrow' },
        { iat: '0' },
        { nbf: 'now' },
        { scope: ['me'] },
        { sub: 42 },
      ]) {
        assertInvalidToken(await me(await forge(over)), JSON.stringify(over));
      }
    });

    test('the sub of a user that does not exist: 401', async () => {
      assertInvalidToken(await me(await forge({ sub: randomUUID() })));
    });

    test('expiry, with the leeway (30 s), on the service clock', async () => {
      const fresh = await registerAndLogin(app.http);
      const exp = (decodeJwt(fresh.access).exp as number) * 1000;
      const step = exp - app.clock.now();
      try {
        app.clock.advance(step + 20_000); // 20 s past exp: within the leeway
        assert.equal((await me(fresh.access)).status, 200);
        app.clock.advance(11_000); // 31 s past exp
        const r = await me(fresh.access);
        assertInvalidToken(r, 'expired');
        assert.match(r.headers.get('www-authenticate')!, /expired/);
      } finally {
        app.clock.advance(-(step + 31_000));
      }
      // Back in time, the same token is good again: the decision was about time only.
      assert.equal((await me(fresh.access)).status, 200);
    });

    test('nbf and iat in the future beyond the leeway are refused; within it, accepted', async () => {
      const now = Math.floor(app.clock.now() / 1000);
      assertInvalidToken(await me(await forge({ nbf: now + 120 })), 'nbf +120 s');
      assert.equal((await me(await forge({ nbf: now + 10 }))).status, 200, 'nbf +10 s');
      assert.equal((await me(await forge({ nbf: now - 10 }))).status, 200, 'nbf -10 s');
      assertInvalidToken(await me(await forge({ iat: now + 120, exp: now + 1000 })), 'iat +120 s');
      assertInvalidToken(await me(await forge({ exp: now - 60 })), 'exp -60 s');
    });

    test('a token over 8 KiB is refused before anything else; a validly signed 7 KiB one passes', async () => {
      const big = await forge({ pad: 'x'.repeat(4800) });
      const bigger = await forge({ pad: 'x'.repeat(6600) });
      assert.ok(big.length > 6 * 1024 && big.length < 8 * 1024, String(big.length));
      assert.ok(bigger.length >= 9 * 1024 && bigger.length < 10 * 1024, String(bigger.length));
      assert.equal((await me(big)).status, 200);
      const r = await me(bigger);
      assertInvalidToken(r, '9 KiB');
      assert.match(r.headers.get('www-authenticate')!, /too large/);
    });

    test('403 insufficient_scope: a posts:write-only token on GET /users/me', async () => {
      const narrow = await app.http.token({ grant_type: 'password', username: u.username, password: u.password, scope: 'posts:write' });
      assert.equal(narrow.status, 200, narrow.text);
      assert.equal(narrow.body.scope, 'posts:write');
      for (const r of [await me(narrow.body.access_token), await app.http.patch('/users/me', { full_name: 'x' }, narrow.body.access_token)]) {
        assert.equal(r.status, 403, r.text);
        assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="gatehouse", error="insufficient_scope", scope="me"');
        assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/);
        assert.equal(r.body.status, 403);
      }
      // A forged token claiming a scope the user's role lacks is not a way in either.
      assertInvalidToken(await me(await forge({ scope: 'me admin' })), 'admin scope on a user');
    });

    test('the JWK set of an HS256 service is empty: a shared secret is never published', async () => {
      const r = await app.http.get('/.well-known/jwks.json');
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, { keys: [] });
      assert.ok(!r.text.includes(TEST_SECRET) && !r.text.includes(Buffer.from(TEST_SECRET).toString('base64url')));
    });

    test('every 401 from a protected route carries the challenge; none leaks the token', async () => {
      for (const [method, path] of [
        ['GET', '/users/me'],
        ['PATCH', '/users/me'],
        ['GET', '/users/me/sessions'],
        ['PUT', '/users/me/password'],
        ['POST', '/auth/logout'],
      ] as const) {
        assertChallenge(await app.http.request(method, path));
        const bad = await app.http.request(method, path, { headers: { authorization: `Bearer ${u.access.slice(0, -3)}abc` } });
        assertInvalidToken(bad, `${method} ${path}`);
        assert.ok(!bad.text.includes(u.access.slice(0, 40)));
      }
    });
  });

  describe(`RS256 (${backend})`, () => {
    let app: TestApp;
    before(async () => {
      app = await startApp({ backend, env: { ALGORITHM: 'RS256' } });
    });
    after(async () => app?.close());

    test('tokens verify against the published JWK set; HS256 signed with the public key is refused', async () => {
      const u = await registerAndLogin(app.http);
      const jwks = await app.http.get('/.well-known/jwks.json');
      assert.equal(jwks.status, 200);
      assert.equal(jwks.body.keys.length, 1);
      const jwk = jwks.body.keys[0] as JWK;
      assert.equal(jwk.alg, 'RS256');
      assert.equal(jwk.use, 'sig');
      assert.equal(jwk.kty, 'RSA');
      assert.equal(jwk.d, undefined, 'no private part is published');
      const header = decodeProtectedHeader(u.access);
      assert.equal(header.alg, 'RS256');
      assert.equal(header.kid, jwk.kid);
      const { payload } = await jwtVerify(u.access, createLocalJWKSet(jwks.body), { typ: 'at+jwt', issuer: app.config.jwtIssuer, audience: 'gatehouse' });
      assert.equal(payload.sub, u.id);
      assert.equal((await app.http.get('/users/me', u.access)).status, 200);

      // Algorithm confusion: HS256 keyed with the public key (PEM or JWK bytes) must not pass.
      const pem = await exportSPKI((await importJWK(jwk, 'RS256')) as CryptoKey);
      const claims = decodeJwt(u.access);
      for (const key of [pem, pem.trim(), JSON.stringify(jwk)]) {
        const forged = await new SignJWT({ ...claims, jti: randomUUID() } as never)
          .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: jwk.kid })
          .sign(new TextEncoder().encode(key));
        assertInvalidToken(await app.http.get('/users/me', forged), 'HS256 with the public key');
      }
      // And HS256 with SECRET_KEY (still configured, for derived keys) is no signing key either.
      const withSecret = await new SignJWT({ ...claims, jti: randomUUID() } as never)
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: jwk.kid })
        .sign(SECRET);
      assertInvalidToken(await app.http.get('/users/me', withSecret), 'HS256 with SECRET_KEY');
    });
  });
}
