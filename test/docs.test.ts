// /docs (Swagger UI from local assets) and /openapi.json (OpenAPI 3.1 with
// the OAuth2 password flow), and the request Swagger UI's Authorize button
// actually sends.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { registerUser, startApp, type TestApp } from './helpers.js';

// Every route of API.md, with its methods.
const CONTRACT: Record<string, string[]> = {
  '/auth/register': ['post'],
  '/auth/token': ['post'],
  '/auth/revoke': ['post'],
  '/auth/logout': ['post'],
  '/.well-known/jwks.json': ['get'],
  '/users/me': ['get', 'patch'],
  '/users/me/password': ['put'],
  '/users/me/sessions': ['get'],
  '/users/me/sessions/{id}': ['delete'],
  '/users/me/posts': ['get'],
  '/admin/users': ['get'],
  '/admin/users/{id}': ['patch'],
  '/posts': ['get', 'post'],
  '/posts/{id}': ['get', 'patch', 'delete'],
  '/health': ['get'],
  '/ready': ['get'],
};

describe('API documentation', () => {
  let app: TestApp;
  before(async () => {
    app = await startApp({ backend: 'pglite' });
  });
  after(async () => app?.close());

  test('/docs serves Swagger UI whose scripts and styles are served locally', async () => {
    const r = await fetch(`${app.url}/docs`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/html/);
    const html = await r.text();
    assert.match(html, /swagger-ui/i);
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(assets.some((a) => /swagger-ui-bundle\.js$/.test(a)), html);
    assert.ok(assets.some((a) => /swagger-ui\.css$/.test(a)), html);
    for (const asset of assets) {
      const url = new URL(asset, `${app.url}/docs/`);
      assert.equal(url.origin, new URL(app.url).origin, `${asset} is not local`);
      const a = await fetch(url);
      assert.equal(a.status, 200, `${asset}: ${a.status}`);
      const body = await a.arrayBuffer();
      assert.ok(body.byteLength > 0, asset);
      if (asset.endsWith('.js')) assert.match(a.headers.get('content-type') ?? '', /javascript/);
      if (asset.endsWith('.css')) assert.match(a.headers.get('content-type') ?? '', /css/);
    }
    // The initializer points Swagger UI at a spec that is served.
    const init = await (await fetch(`${app.url}/docs/static/swagger-initializer.js`)).text();
    assert.match(init, /SwaggerUIBundle/);
    const spec = await fetch(`${app.url}/docs/json`);
    assert.equal(spec.status, 200);
    assert.equal(((await spec.json()) as { openapi: string }).openapi, '3.1.0');
  });

  test('/openapi.json: OpenAPI 3.1, the OAuth2 password flow with the three scopes, and every route of the contract', async () => {
    const r = await app.http.get('/openapi.json');
    assert.equal(r.status, 200);
    const spec = r.body;
    assert.equal(spec.openapi, '3.1.0');
    const scheme = spec.components.securitySchemes.OAuth2PasswordBearer;
    assert.equal(scheme.type, 'oauth2');
    assert.equal(scheme.flows.password.tokenUrl, '/auth/token');
    assert.deepEqual(Object.keys(scheme.flows.password.scopes).sort(), ['admin', 'me', 'posts:write']);
    for (const [path, methods] of Object.entries(CONTRACT)) {
      assert.ok(spec.paths[path], `${path} is documented`);
      for (const m of methods) assert.ok(spec.paths[path][m], `${m.toUpperCase()} ${path} is documented`);
    }
    // Security requirements: scope me on /users/me; nothing on public routes.
    for (const m of ['get', 'patch']) assert.deepEqual(spec.paths['/users/me'][m].security, [{ OAuth2PasswordBearer: ['me'] }]);
    assert.deepEqual(spec.paths['/users/me/password'].put.security, [{ OAuth2PasswordBearer: ['me'] }]);
    assert.deepEqual(spec.paths['/admin/users'].get.security, [{ OAuth2PasswordBearer: ['admin'] }]);
    assert.deepEqual(spec.paths['/posts'].post.security, [{ OAuth2PasswordBearer: ['posts:write'] }]);
    for (const [path, m] of [['/auth/register', 'post'], ['/auth/token', 'post'], ['/health', 'get'], ['/.well-known/jwks.json', 'get']]) {
      assert.equal(spec.paths[path!][m!].security, undefined, `${path} is public`);
    }
    // The token endpoint documents its form body; the spec names no internals.
    assert.ok(spec.paths['/auth/token'].post.requestBody.content['application/x-www-form-urlencoded']);
    assert.doesNotMatch(r.text, /password_hash|argon2|SECRET_KEY/);
  });

  test("the request Swagger UI's Authorize button sends logs in", async () => {
    const u = await registerUser(app.http);
    // What Swagger UI posts for the password flow with no client id or secret.
    const r = await app.http.request('POST', '/auth/token', {
      body: new URLSearchParams({ grant_type: 'password', username: u.username, password: u.password, scope: '', client_id: '' }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json, text/plain, */*', 'x-requested-with': 'XMLHttpRequest' },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.token_type, 'bearer');
    assert.equal(r.body.scope, 'me posts:write');
    // With scopes ticked, Swagger UI sends them space-separated; with client_secret empty too.
    const scoped = await app.http.token({ grant_type: 'password', username: u.username, password: u.password, scope: 'me', client_id: '', client_secret: '' });
    assert.equal(scoped.status, 200, scoped.text);
    assert.equal(scoped.body.scope, 'me');
    const me = await app.http.get('/users/me', scoped.body.access_token);
    assert.equal(me.status, 200);
  });
});
