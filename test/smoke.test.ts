import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { backends, registerAndLogin, startApp, type TestApp } from './helpers.js';

for (const backend of backends()) {
  describe(`walk-through (${backend})`, () => {
    let app: TestApp;
    before(async () => {
      app = await startApp({ backend });
    });
    after(async () => app?.close());

    test('register, token, /users/me', async () => {
      const u = await registerAndLogin(app.http);
      const me = await app.http.get('/users/me', u.access);
      assert.equal(me.status, 200);
      assert.equal(me.body.username, u.username);
      assert.equal(me.body.password_hash, undefined);
      assert.deepEqual(Object.keys(me.body).sort(), ['created_at', 'disabled', 'email', 'email_verified', 'full_name', 'id', 'mfa', 'role', 'username']);
    });
  });
}

describe('the benchmark routes (BENCH_ROUTES=true)', () => {
  test('each layer answers 200 with the same fields as GET /users/me, so the bench prices work, not errors', async () => {
    const app = await startApp({ env: { BENCH_ROUTES: 'true' } });
    try {
      const u = await registerAndLogin(app.http);
      const fields = Object.keys((await app.http.get('/users/me', u.access)).body).sort();
      for (const path of ['/_bench/floor', '/_bench/verify', '/_bench/verify-denylist']) {
        const r = await app.http.get(path, u.access);
        assert.equal(r.status, 200, `${path}: ${r.text}`);
        assert.deepEqual(Object.keys(r.body).sort(), fields, path);
      }
      assert.equal((await app.http.get('/_bench/verify')).status, 401, 'a layer with the guard still needs a token');
    } finally {
      await app.close();
    }
  });
});
