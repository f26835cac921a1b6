// Errors in the contract's two formats: problem+json everywhere, RFC 6749
// JSON on the OAuth endpoints. Malformed input of every kind gets a 4xx,
// never a 500, and no response carries a stack, SQL or a hash.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { backends, registerAndLogin, startApp, STRONG_PASSWORD, uniqueName, type LoggedIn, type Res, type TestApp } from './helpers.js';

function assertProblem(r: Res, status: number, why = '') {
  assert.equal(r.status, status, `${why} ${r.text}`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/, why);
  assert.equal(typeof r.body.type, 'string', why);
  assert.equal(typeof r.body.title, 'string', why);
  assert.equal(r.body.status, status, why);
  assert.equal(typeof r.body.detail, 'string', why);
  assert.ok(r.body.detail.length > 0, why);
}

function assertOAuthError(r: Res, error = 'invalid_request', why = '') {
  assert.equal(r.status, 400, `${why} ${r.text}`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/, why);
  assert.deepEqual(Object.keys(r.body).sort(), ['error', 'error_description'], why);
  assert.equal(r.body.error, error, why);
  assert.equal(r.headers.get('cache-control'), 'no-store', why);
}

/** Nothing internal in a response: no stack, no SQL, no hash, no driver message. */
function assertNothingLeaks(r: Res, why = '') {
  const t = r.text;
  for (const re of [/\bat .*\(?\/.*:\d+:\d+/, /node_modules/, /\bSELECT\b|\bINSERT\b|\bUPDATE\b.*\bSET\b/, /password_hash/, /\$argon2/, /\$2[aby]\$/, /\bpg_|PGlite|pglite|duplicate key|violates/i]) {
    assert.doesNotMatch(t, re, `${why}: ${t.slice(0, 300)}`);
  }
  assert.ok(r.status < 500, `${why}: ${r.status} ${t}`);
}

const json = { 'content-type': 'application/json' };
const form = { 'content-type': 'application/x-www-form-urlencoded' };

for (const backend of backends()) {
  describe(`HTTP errors (${backend})`, () => {
    let app: TestApp;
    let u: LoggedIn;
    before(async () => {
      app = await startApp({ backend, env: { BODY_LIMIT_BYTES: '4096' } });
      u = await registerAndLogin(app.http);
    });
    after(async () => app?.close());

    test('malformed JSON: 400 problem+json (RFC 6749 JSON on the token endpoint)', async () => {
      for (const body of ['{', '{"username": }', "{'a': 1}", '{"a":1}}', 'nul']) {
        assertProblem(await app.http.request('POST', '/auth/register', { body, headers: json }), 400, body);
        assertProblem(await app.http.request('PATCH', '/users/me', { body, headers: json, token: u.access }), 400, body);
        assertOAuthError(await app.http.request('POST', '/auth/token', { body, headers: json }), 'invalid_request', body);
        assertOAuthError(await app.http.request('POST', '/auth/revoke', { body, headers: json }), 'invalid_request', body);
      }
      // An empty body that says it is JSON.
      assertProblem(await app.http.request('POST', '/auth/register', { body: '', headers: json }), 400);
      assertOAuthError(await app.http.request('POST', '/auth/token', { body: '', headers: json }));
    });

    test('prototype-polluting JSON is refused, never applied', async () => {
      const body = JSON.stringify({ username: uniqueName('proto'), email: 'p@example.com', password: STRONG_PASSWORD }).replace(/}$/, ',"__proto__":{"role":"admin"}}');
      const r = await app.http.request('POST', '/auth/register', { body, headers: json });
      assert.ok(r.status === 400 || r.status === 422 || r.status === 201, r.text);
      if (r.status === 201) assert.equal(r.body.role, 'user');
      else assertProblem(r, r.status);
      const c = await app.http.request('POST', '/auth/token', { body: '{"constructor":{"prototype":{"x":1}},"grant_type":"password"}', headers: json });
      assertNothingLeaks(c);
      assert.equal(({} as Record<string, unknown>).role, undefined);
    });

    test('wrong content type: 415 problem (RFC 6749 invalid_request on the token endpoint)', async () => {
      const body = JSON.stringify({ username: 'a', email: 'a@example.com', password: STRONG_PASSWORD });
      for (const type of ['text/plain', 'application/xml', 'multipart/form-data; boundary=x']) {
        assertProblem(await app.http.request('PATCH', '/users/me', { body, headers: { 'content-type': type }, token: u.access }), 415, type);
      }
      for (const type of ['text/plain', 'application/xml']) {
        assertProblem(await app.http.request('POST', '/auth/register', { body, headers: { 'content-type': type } }), 415, type);
        assertOAuthError(await app.http.request('POST', '/auth/token', { body: 'grant_type=password&username=a&password=b', headers: { 'content-type': type } }), 'invalid_request', type);
      }
      // v2: /auth takes multipart/form-data (a browser's FormData); a malformed one is a 400, never a 500.
      const bad = 'multipart/form-data; boundary=x';
      assertOAuthError(await app.http.request('POST', '/auth/token', { body: 'grant_type=password&username=a&password=b', headers: { 'content-type': bad } }), 'invalid_request', bad);
      assertProblem(await app.http.request('POST', '/auth/register', { body, headers: { 'content-type': bad } }), 400, bad);
    });

    test('body over BODY_LIMIT_BYTES: 413', async () => {
      const big = JSON.stringify({ username: 'a', email: 'a@example.com', password: 'x'.repeat(5000) });
      assertProblem(await app.http.request('POST', '/auth/register', { body: big, headers: json }), 413);
      assertProblem(await app.http.request('PATCH', '/users/me', { body: big, headers: json, token: u.access }), 413);
      const r = await app.http.request('POST', '/auth/token', { body: `grant_type=password&username=a&password=${'x'.repeat(5000)}`, headers: form });
      assert.equal(r.status, 413, r.text);
      assertNothingLeaks(r);
    });

    test('unknown route: 404 problem', async () => {
      for (const [method, path] of [
        ['GET', '/nope'],
        ['POST', '/auth/nope'],
        ['GET', '/users/me/nope'],
        ['GET', '/users/me/'],
        ['DELETE', '/users'],
        ['GET', '/.env'],
        ['GET', '/../etc/passwd'],
      ] as const) {
        assertProblem(await app.http.request(method, path), 404, `${method} ${path}`);
      }
    });

    test('wrong method: 405 with Allow', async () => {
      const cases: Array<[string, string, string[]]> = [
        ['GET', '/auth/token', ['POST']],
        ['DELETE', '/auth/register', ['POST']],
        ['PUT', '/auth/revoke', ['POST']],
        ['POST', '/users/me', ['GET', 'HEAD', 'PATCH']],
        ['DELETE', '/users/me', ['GET', 'HEAD', 'PATCH']],
        ['POST', '/health', ['GET', 'HEAD']],
        ['POST', '/.well-known/jwks.json', ['GET', 'HEAD']],
      ];
      for (const [method, path, allowed] of cases) {
        const r = await app.http.request(method, path);
        assertProblem(r, 405, `${method} ${path}`);
        const allow = (r.headers.get('allow') ?? '').split(',').map((s) => s.trim()).filter(Boolean).sort();
        assert.deepEqual(allow, [...allowed].sort(), `${method} ${path}: Allow ${r.headers.get('allow')}`);
      }
    });

    test('OAuth endpoints: wrong types are RFC 6749 invalid_request', async () => {
      const bodies: unknown[] = [
        { grant_type: 'password', username: 123, password: 'x' },
        { grant_type: 'password', username: u.username, password: 12345678 },
        { grant_type: ['password'], username: u.username, password: u.password },
        { grant_type: 'password', username: { $gt: '' }, password: u.password },
        { grant_type: 'password', username: u.username, password: u.password, scope: ['me'] },
        { grant_type: 'refresh_token', refresh_token: 42 },
        [],
        'password',
        null,
      ];
      for (const body of bodies) {
        const r = await app.http.request('POST', '/auth/token', { body: JSON.stringify(body), headers: json });
        assertOAuthError(r, 'invalid_request', JSON.stringify(body));
      }
      for (const body of [{ token: 42 }, { token: ['a', 'b'] }, []]) {
        const r = await app.http.request('POST', '/auth/revoke', { body: JSON.stringify(body), headers: json });
        assertOAuthError(r, 'invalid_request', JSON.stringify(body));
      }
    });

    test('NUL and other characters PostgreSQL cannot store: 4xx, never 500', async () => {
      const nul = '\u0000';
      const reqs: Array<Promise<Res>> = [
        app.http.post('/auth/register', { username: uniqueName('nul'), email: `a${nul}b@example.com`, password: STRONG_PASSWORD }),
        app.http.post('/auth/register', { username: uniqueName('nul'), email: `${uniqueName('nul')}@example.com`, password: STRONG_PASSWORD, full_name: `Ada${nul}` }),
        app.http.post('/auth/register', { username: uniqueName('nul'), email: `${uniqueName('nul')}@example.com`, password: `${STRONG_PASSWORD}${nul}` }),
        app.http.token({ grant_type: 'password', username: `${u.username}${nul}`, password: u.password }),
        app.http.token({ grant_type: 'password', username: `a${nul}b@example.com`, password: u.password }),
        app.http.token({ grant_type: 'password', username: u.username, password: `${u.password}${nul}` }),
        app.http.token({ grant_type: 'refresh_token', refresh_token: `ghr_${nul}` }),
        app.http.request('POST', '/auth/revoke', { form: { token: `ghr_${nul}` } }),
        app.http.patch('/users/me', { email: `x${nul}@example.com` }, u.access),
        app.http.patch('/users/me', { full_name: `x${nul}y` }, u.access),
        app.http.patch('/users/me', { full_name: '\ud800' }, u.access),
        app.http.post('/auth/register', { username: uniqueName('sur'), email: `${uniqueName('sur')}@example.com`, password: STRONG_PASSWORD, full_name: '\udfff' }),
      ];
      const answers = await Promise.all(reqs);
      for (const r of answers) assertNothingLeaks(r, 'NUL');
      // Named precisely: 422 at the field on JSON routes, invalid_request on the OAuth endpoints.
      const [regEmail, regName, regPassword, tokUser, tokEmail, tokPassword, refresh, revoke, patchEmail, patchName, patchSurrogate, regSurrogate] = answers as Res[];
      for (const [r, path] of [
        [regEmail, '/email'],
        [regName, '/full_name'],
        [regPassword, '/password'],
        [patchEmail, '/email'],
        [patchName, '/full_name'],
        [patchSurrogate, '/full_name'],
        [regSurrogate, '/full_name'],
      ] as const) {
        assertProblem(r!, 422, path);
        assert.deepEqual((r!.body.errors as Array<{ path: string }>).map((e) => e.path), [path]);
      }
      for (const r of [tokUser, tokEmail, tokPassword, refresh, revoke]) assertOAuthError(r!, 'invalid_request');
      // And the caller's profile is as it was.
      const me = await app.http.get('/users/me', u.access);
      assert.equal(me.status, 200);
      assert.equal(me.body.email, u.email);
    });

    test('odd paths, ids, query strings and headers: 4xx, never 500', async () => {
      const spare = await registerAndLogin(app.http); // logout may end its session
      const reqs: Array<[string, string, Parameters<TestApp['http']['request']>[2]?]> = [
        ['DELETE', '/users/me/sessions/not-a-uuid', { token: u.access }],
        ['DELETE', '/users/me/sessions/00000000-0000-0000-0000-000000000000', { token: u.access }],
        ['DELETE', `/users/me/sessions/${'a'.repeat(300)}`, { token: u.access }],
        ['GET', '/users/me?scope=%ZZ', { token: u.access }],
        ['GET', '/%E0%A4%A', {}],
        ['GET', '/users/%00', {}],
        ['POST', '/auth/logout?scope=everything', { token: spare.access }],
        ['POST', '/auth/logout?scope[]=local', { token: spare.access }],
        ['POST', '/auth/token', { body: 'grant_type=password&username=%ZZ&password=%', headers: form }],
        ['POST', '/auth/token', { body: '&&&===&', headers: form }],
        ['POST', '/auth/register', { body: '['.repeat(5000) + ']'.repeat(5000), headers: json }],
        ['POST', '/auth/register', { body: '{"a":'.repeat(2000) + '1' + '}'.repeat(2000), headers: json }],
        ['POST', '/auth/register', { body: JSON.stringify({ username: 'x'.repeat(3000), email: 'e', password: 'p' }), headers: json }],
        ['PATCH', '/users/me', { body: '1e999999', headers: json, token: u.access }],
        ['GET', '/users/me', { headers: { authorization: `Bearer ${'a'.repeat(12_000)}` } }],
        ['GET', '/posts?limit=abc', {}],
        ['GET', '/posts?limit=-1&cursor=%00', {}],
        ['GET', '/posts/%27%3B%20DROP%20TABLE%20users%3B--', {}],
      ];
      for (const [method, path, opts] of reqs) {
        const r = await app.http.request(method, path, opts);
        assertNothingLeaks(r, `${method} ${path}`);
        // Every error is in one of the two formats.
        if (r.status >= 400) {
          if (path.startsWith('/auth/token') && r.status === 400) assertOAuthError(r, r.body.error, path);
          else assertProblem(r, r.status, `${method} ${path}`);
        }
      }
      // The users table is still there.
      assert.equal((await app.http.get('/users/me', u.access)).status, 200);
    });

    test('security headers on API responses', async () => {
      const r = await app.http.get('/users/me', u.access);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(r.headers.get('x-frame-options'), 'DENY');
      assert.match(r.headers.get('content-security-policy') ?? '', /default-src 'none'/);
      assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
      assert.equal(r.headers.get('x-powered-by'), null);
    });
  });
}
