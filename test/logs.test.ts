// What reaches the logs: requests are logged (so the test is not vacuous),
// credentials never are — no password, access or refresh token,
// Authorization header value, or SECRET_KEY, whatever the log level.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { loggerOptions } from '../src/app.js';
import { backends, registerUser, startApp, STRONG_PASSWORD, TEST_SECRET, testConfig, uniqueName } from './helpers.js';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void) {
    this.text += chunk.toString();
    done();
  }
}

for (const backend of backends()) {
  describe(`logs (${backend})`, () => {
    test('register, login, /users/me, refresh, revoke, logout: nothing secret is logged', async () => {
      const sink = new Capture();
      const config = testConfig();
      rmSync(config.dataDir, { recursive: true, force: true });
      const app = await startApp({ backend, logger: { ...(loggerOptions(config) as object), level: 'trace', stream: sink } });
      const secrets: string[] = [TEST_SECRET, STRONG_PASSWORD];
      try {
        const u = await registerUser(app.http);
        const login = await app.http.token({ grant_type: 'password', username: u.username, password: u.password });
        assert.equal(login.status, 200);
        const { access_token: access, refresh_token: refresh } = login.body as { access_token: string; refresh_token: string };
        secrets.push(access, refresh);
        assert.equal((await app.http.get('/users/me', access)).status, 200);
        const refreshed = await app.http.token({ grant_type: 'refresh_token', refresh_token: refresh });
        assert.equal(refreshed.status, 200, refreshed.text);
        secrets.push(refreshed.body.access_token, refreshed.body.refresh_token);
        // Failures are logged too, and must not carry what was tried.
        const wrongPassword = 'Wrong-but-Secret-77';
        secrets.push(wrongPassword);
        assert.equal((await app.http.token({ grant_type: 'password', username: u.username, password: wrongPassword })).status, 400);
        assert.equal((await app.http.token({ grant_type: 'refresh_token', refresh_token: refresh })).status, 200); // retry in grace
        const forged = `${access.slice(0, -6)}AAAAAA`;
        secrets.push(forged);
        assert.equal((await app.http.get('/users/me', forged)).status, 401);
        // Credentials in a query string (a client mistake) are redacted from the logged URL.
        const inQuery = await app.http.request('GET', `/users/me?access_token=${encodeURIComponent(access)}&password=${encodeURIComponent(u.password)}`);
        assert.equal(inQuery.status, 401);
        const newPassword = 'fresh-Orchid-93-lantern';
        secrets.push(newPassword);
        const changed = await app.http.put('/users/me/password', { current_password: u.password, new_password: newPassword }, refreshed.body.access_token);
        assert.equal(changed.status, 204, changed.text);
        const other = uniqueName('logs');
        const reg = await app.http.post('/auth/register', { username: other, email: `${other}@example.com`, password: 'short' });
        assert.equal(reg.status, 422);
        assert.equal((await app.http.request('POST', '/auth/logout', { token: refreshed.body.access_token })).status, 204);
        assert.equal((await app.http.request('POST', '/auth/revoke', { form: { token: refreshed.body.refresh_token } })).status, 200);
      } finally {
        await app.close();
      }
      const log = sink.text;
      // Not vacuous: requests and their URLs were logged.
      assert.match(log, /incoming request/);
      assert.match(log, /\/auth\/token/);
      assert.match(log, /\/users\/me\?access_token=/);
      assert.match(log, /"statusCode":401/);
      for (const secret of secrets) assert.ok(!log.includes(secret), `the log holds a secret: ${secret.slice(0, 12)}…`);
      // Nor any part of a token long enough to matter (its signature), nor a Bearer header value.
      for (const secret of secrets.filter((s) => s.split('.').length === 3)) assert.ok(!log.includes(secret.split('.')[2]!));
      assert.doesNotMatch(log, /Bearer [A-Za-z0-9]/);
      assert.doesNotMatch(log, /\$argon2|password_hash/);
      assert.doesNotMatch(log, /ghr_[A-Za-z0-9_-]{20}/);
    });
  });
}
