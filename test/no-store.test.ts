// Every answer that carries a token or personal data has Cache-Control:
// no-store (API.md, "Errors"), its errors included; public ones may be cached.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { makeAdmin, registerAndLogin, startApp, type LoggedIn, type TestApp } from './helpers.js';

let app: TestApp;
let admin: LoggedIn;
before(async () => {
  app = await startApp();
  admin = await makeAdmin(app, await registerAndLogin(app.http));
});
after(async () => app.close());

test('no-store on /auth/*, /users/me*, /admin/* and the audit log, errors included; not on public routes', async () => {
  const personal = [
    await app.http.post('/auth/register', { username: 'x', email: 'bad', password: 'short' }),
    await app.http.token({ grant_type: 'password', username: admin.username, password: admin.password }),
    await app.http.request('POST', '/auth/revoke', { form: { token: 'x' } }),
    // Browser sessions: refused (no CSRF header), and a sign-in that sets the cookie.
    await app.http.request('POST', '/auth/browser/refresh'),
    await app.http.request('POST', '/auth/browser/token', {
      form: { username: admin.username, password: admin.password },
      headers: { 'x-requested-with': 'gatehouse', origin: new URL(app.config.publicUrl).origin },
    }),
    await app.http.get('/users/me', admin.access),
    await app.http.get('/users/me'),
    await app.http.get('/users/me/sessions', admin.access),
    await app.http.get('/users/me/audit', admin.access),
    await app.http.get('/admin/users', admin.access),
    await app.http.get('/admin/audit', admin.access),
  ];
  for (const r of personal) assert.equal(r.headers.get('cache-control'), 'no-store', `${r.status} ${r.text.slice(0, 80)}`);
  assert.notEqual((await app.http.get('/.well-known/jwks.json')).headers.get('cache-control'), 'no-store');
  assert.equal((await app.http.get('/posts')).headers.get('cache-control'), null);
});
