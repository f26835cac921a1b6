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
      assert.deepEqual(Object.keys(me.body).sort(), ['created_at', 'disabled', 'email', 'full_name', 'id', 'mfa', 'role', 'username']);
    });
  });
}
