// Attacks on access tokens and the Authorization header that the first
// hardening pass let through (issue 9, finding 12, and the v2 rules of
// API.md "Access tokens"). Each forged token is correctly signed with the
// service's own key, so only the rule under test can refuse it; a control
// token built the same way but for that one thing is accepted.
import { decodeJwt, decodeProtectedHeader, SignJWT, type JWTPayload } from 'jose';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { backends, registerAndLogin, startApp, TEST_SECRET, type LoggedIn, type Res, type TestApp } from './helpers.js';

const KEY = new TextEncoder().encode(TEST_SECRET);
const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** HS256 by hand, for headers jose will not sign (crit). */
function signRaw(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  return `${input}.${createHmac('sha256', TEST_SECRET).update(input).digest('base64url')}`;
}

/** One raw HTTP/1.1 request, headers exactly as given (fetch would merge repeated ones). */
function rawGet(base: string, path: string, headers: Array<[string, string]>): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => {
      const lines = [`GET ${path} HTTP/1.1`, `Host: ${url.host}`, 'Connection: close', ...headers.map(([k, v]) => `${k}: ${v}`)];
      socket.write(lines.join('\r\n') + '\r\n\r\n');
    });
    let data = '';
    socket.on('data', (c) => (data += c));
    socket.on('error', reject);
    socket.on('end', () => {
      const [head = '', ...rest] = data.split('\r\n\r\n');
      resolve({ status: Number(head.split(' ')[1]), body: rest.join('\r\n\r\n') });
    });
  });
}

function assertInvalidToken(r: Res, why: string) {
  assert.equal(r.status, 401, `${why}: ${r.status} ${r.text}`);
  assert.match(r.headers.get('www-authenticate') ?? '', /error="invalid_token"/, why);
  assert.equal(r.body.code, 'invalid_token', why);
}

for (const backend of backends()) {
  describe(`token attacks (${backend})`, () => {
    let app: TestApp;
    let u: LoggedIn;
    let claims: JWTPayload;
    let kid: string;

    before(async () => {
      app = await startApp({ backend });
      u = await registerAndLogin(app.http);
      claims = decodeJwt(u.access);
      kid = decodeProtectedHeader(u.access).kid!;
    });
    after(async () => app.close());

    /** Our own claims and header, signed with our own key, with `change` applied. */
    function forge(change: { header?: Record<string, unknown>; claims?: Record<string, unknown> } = {}) {
      return new SignJWT({ ...claims, jti: randomUUID(), ...change.claims })
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid, ...change.header } as never)
        .sign(KEY);
    }

    test('control: a token forged exactly like ours is accepted (so each refusal below is for its one change)', async () => {
      assert.equal((await app.http.get('/users/me', await forge())).status, 200);
    });

    test('v2: issued tokens carry kid, client_id, auth_time and amr', () => {
      assert.equal(typeof kid, 'string');
      assert.equal(claims.client_id, 'gatehouse');
      assert.equal(typeof claims.auth_time, 'number');
      assert.ok(Math.abs((claims.auth_time as number) - (claims.iat as number)) <= 1);
      assert.deepEqual(claims.amr, ['pwd']);
    });

    test('auth_time is the sign-in, kept across refreshes', async () => {
      app.clock.advance(120_000);
      const next = await app.http.token({ grant_type: 'refresh_token', refresh_token: u.refresh });
      assert.equal(next.status, 200, next.text);
      const c = decodeJwt(next.body.access_token);
      assert.equal(c.auth_time, claims.auth_time);
      assert.ok((c.iat as number) >= (claims.iat as number) + 120);
      u = { ...u, refresh: next.body.refresh_token };
    });

    for (const member of ['jku', 'x5u', 'jwk', 'x5c', 'crit', 'cty', 'zip']) {
      test(`a header member "${member}" is refused`, async () => {
        const value = member === 'jwk' ? { kty: 'oct', k: 'AAAA' } : member === 'x5c' ? ['AAAA'] : member === 'crit' ? ['exp'] : 'https://evil.example/keys';
        const token = signRaw({ alg: 'HS256', typ: 'at+jwt', kid, [member]: value }, { ...claims, jti: randomUUID() });
        assertInvalidToken(await app.http.get('/users/me', token), member);
      });
    }

    test('an unknown kid, and no kid, are refused', async () => {
      assertInvalidToken(await app.http.get('/users/me', await forge({ header: { kid: 'someone-elses-key' } })), 'unknown kid');
      const noKid = await new SignJWT({ ...claims, jti: randomUUID() }).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' }).sign(KEY);
      assertInvalidToken(await app.http.get('/users/me', noKid), 'no kid');
    });

    test('a signature with its unused low bits changed (same bytes, another spelling) is refused', async () => {
      const token = await forge();
      const [h, p, s] = token.split('.') as [string, string, string];
      // A 32-byte HMAC is 43 base64url characters: the last one carries 2 unused bits.
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const last = alphabet.indexOf(s.at(-1)!);
      const variant = `${h}.${p}.${s.slice(0, -1)}${alphabet[last ^ 1]}`;
      assert.deepEqual(Buffer.from(variant.split('.')[2]!, 'base64url'), Buffer.from(s, 'base64url'), 'the same signature bytes');
      assert.equal((await app.http.get('/users/me', token)).status, 200);
      assertInvalidToken(await app.http.get('/users/me', variant), 'non-canonical signature');
      assertInvalidToken(await app.http.get('/users/me', `${token}=`), 'padding');
    });

    test('a correctly signed token whose sub, sid or jti is not a UUID: 401, never a 5xx', async () => {
      for (const [claim, value] of [
        ['sub', 'johndoe'],
        ['sub', u.username],
        ['sid', 'not-a-session'],
        ['jti', "1' OR '1'='1"],
      ] as const) {
        assertInvalidToken(await app.http.get('/users/me', await forge({ claims: { [claim]: value } })), `${claim}=${value}`);
      }
    });

    test('a token living longer than the configured lifetime (plus leeway) is refused', async () => {
      const iat = Math.floor(app.clock.now() / 1000);
      const ttl = 15 * 60;
      const ok = await forge({ claims: { iat, exp: iat + ttl + 30 } });
      assert.equal((await app.http.get('/users/me', ok)).status, 200, 'lifetime + leeway is still ours');
      const long = await forge({ claims: { iat, exp: iat + 30 * 24 * 3600 } });
      assertInvalidToken(await app.http.get('/users/me', long), 'a 30-day token');
    });

    test('several Authorization headers: 400, whichever comes first', async () => {
      const good = `Bearer ${u.access}`;
      assert.equal((await rawGet(app.url, '/users/me', [['Authorization', good]])).status, 200, 'control: one header');
      for (const headers of [
        [['Authorization', good], ['Authorization', 'Bearer x.y.z']],
        [['Authorization', 'Bearer x.y.z'], ['authorization', good]],
        [['Authorization', good], ['AUTHORIZATION', good]],
      ] as Array<Array<[string, string]>>) {
        const r = await rawGet(app.url, '/users/me', headers);
        assert.equal(r.status, 400, r.body);
        assert.equal(JSON.parse(r.body).code, 'invalid_request');
      }
    });
  });
}
