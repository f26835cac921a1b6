// GET and PATCH /users/me: the caller's own profile, what may change (full
// name, email) and what may not (role, disabled, id, username), and users
// disabled or deleted behind a live token.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { backends, registerAndLogin, startApp, uniqueName, type Res, type TestApp } from './helpers.js';

function assertProblem(r: Res, status: number) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/);
  for (const k of ['type', 'title', 'detail']) assert.equal(typeof r.body[k], 'string', k);
  assert.equal(r.body.status, status);
}

for (const backend of backends()) {
  describe(`/users/me (${backend})`, () => {
    let app: TestApp;
    before(async () => {
      app = await startApp({ backend });
    });
    after(async () => app?.close());

    test('GET: the caller as a User', async () => {
      const u = await registerAndLogin(app.http);
      const r = await app.http.get('/users/me', u.access);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(Object.keys(r.body).sort(), ['created_at', 'disabled', 'email', 'full_name', 'id', 'mfa', 'role', 'username']);
      assert.equal(r.body.id, u.id);
      assert.equal(r.body.username, u.username);
      assert.equal(r.body.email, u.email);
      assert.equal(r.body.role, 'user');
      assert.equal(r.body.disabled, false);
      assert.ok(!/password|argon2/i.test(r.text));
    });

    test('PATCH full_name: set, shown by GET, cleared with null', async () => {
      const u = await registerAndLogin(app.http);
      await app.http.get('/users/me', u.access); // any cached copy must not outlive the change
      const r = await app.http.patch('/users/me', { full_name: 'Grace Hopper' }, u.access);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.full_name, 'Grace Hopper');
      assert.equal(r.body.email, u.email);
      assert.equal((await app.http.get('/users/me', u.access)).body.full_name, 'Grace Hopper');
      const cleared = await app.http.patch('/users/me', { full_name: null }, u.access);
      assert.equal(cleared.status, 200, cleared.text);
      assert.equal(cleared.body.full_name, null);
      assert.equal((await app.http.get('/users/me', u.access)).body.full_name, null);
      // An empty PATCH changes nothing.
      const same = await app.http.patch('/users/me', {}, u.access);
      assert.equal(same.status, 200);
      assert.equal(same.body.full_name, null);
    });

    test('PATCH email: stored as given; logging in follows it', async () => {
      const u = await registerAndLogin(app.http);
      const email = `New.${u.username}@Example.org`;
      const r = await app.http.patch('/users/me', { email, current_password: u.password }, u.access);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.email, email);
      assert.equal((await app.http.get('/users/me', u.access)).body.email, email);
      assert.equal((await app.http.token({ grant_type: 'password', username: email.toLowerCase(), password: u.password })).status, 200);
      assert.equal((await app.http.token({ grant_type: 'password', username: u.email, password: u.password })).status, 400);
      // The same address in another case is still the caller's own: no conflict.
      const recased = await app.http.patch('/users/me', { email: email.toUpperCase() }, u.access);
      assert.equal(recased.status, 200, recased.text);
    });

    test('PATCH email taken by another user (any case): 409, nothing changed, nothing leaked', async () => {
      const a = await registerAndLogin(app.http);
      const b = await registerAndLogin(app.http);
      for (const email of [b.email, b.email.toUpperCase()]) {
        const r = await app.http.patch('/users/me', { email, full_name: 'Should Not Stick', current_password: a.password }, a.access);
        assertProblem(r, 409);
        assert.ok(!r.text.toLowerCase().includes(b.username), 'the other user is not named');
      }
      const me = await app.http.get('/users/me', a.access);
      assert.equal(me.body.email, a.email);
      assert.equal(me.body.full_name, null, 'a refused PATCH changes no field');
    });

    test('v2: a new email needs the current password; without it nothing (not even a taken address) is revealed', async () => {
      const a = await registerAndLogin(app.http);
      const b = await registerAndLogin(app.http);
      for (const email of [`fresh.${a.username}@example.org`, b.email]) {
        const missing = await app.http.patch('/users/me', { email }, a.access);
        assertProblem(missing, 422);
        assert.deepEqual(missing.body.errors, [{ path: '/current_password', message: 'is required to change the email address' }]);
        const wrong = await app.http.patch('/users/me', { email, current_password: 'not-Mine-42x' }, a.access);
        assertProblem(wrong, 400);
        assert.equal(wrong.body.code, 'current_password_incorrect');
      }
      assert.equal((await app.http.get('/users/me', a.access)).body.email, a.email, 'nothing changed');
      // The name alone needs no password.
      assert.equal((await app.http.patch('/users/me', { full_name: 'Ada' }, a.access)).status, 200);
    });

    test('PATCH with an invalid email or wrong types: 422 naming the field', async () => {
      const u = await registerAndLogin(app.http);
      for (const [body, path] of [
        [{ email: 'not-an-email' }, '/email'],
        [{ email: '' }, '/email'],
        [{ email: 42 }, '/email'],
        [{ email: null }, '/email'],
        [{ full_name: 42 }, '/full_name'],
        [{ full_name: ['x'] }, '/full_name'],
        [{ full_name: 'x'.repeat(201) }, '/full_name'],
      ] as const) {
        const r = await app.http.patch('/users/me', body, u.access);
        assertProblem(r, 422);
        assert.ok((r.body.errors as Array<{ path: string }>).some((e) => e.path === path), `${JSON.stringify(body)}: ${r.text}`);
      }
      assert.equal((await app.http.get('/users/me', u.access)).body.email, u.email);
    });

    test('PATCH cannot change role, disabled, id, username or the password', async () => {
      const u = await registerAndLogin(app.http);
      const r = await app.http.patch(
        '/users/me',
        { role: 'admin', disabled: true, id: '00000000-0000-4000-8000-000000000000', username: 'root', password: 'x', password_hash: 'x', created_at: '2000-01-01T00:00:00Z' },
        u.access,
      );
      assert.ok(r.status === 200 || r.status === 422, r.text);
      const row = await app.core.db.query<{ role: string; disabled: boolean; username: string; password_hash: string; created_at: Date }>(
        'SELECT role, disabled, username, password_hash, created_at FROM users WHERE id = $1',
        [u.id],
      );
      assert.equal(row.rows[0]!.role, 'user');
      assert.equal(row.rows[0]!.disabled, false);
      assert.equal(row.rows[0]!.username, u.username);
      assert.match(row.rows[0]!.password_hash, /^\$argon2id\$/);
      assert.notEqual(row.rows[0]!.created_at.getUTCFullYear(), 2000);
      const me = await app.http.get('/users/me', u.access);
      assert.equal(me.status, 200);
      assert.equal(me.body.role, 'user');
      assert.equal(me.body.disabled, false);
      assert.equal(me.body.id, u.id);
      // Still no way to an admin token, and the password is unchanged.
      const admin = await app.http.token({ grant_type: 'password', username: u.username, password: u.password, scope: 'admin' });
      assert.equal(admin.status, 400);
      assert.equal(admin.body.error, 'invalid_scope');
    });

    test('a user disabled behind a live token: 401 invalid_token on the next request', async () => {
      const u = await registerAndLogin(app.http);
      assert.equal((await app.http.get('/users/me', u.access)).status, 200);
      await app.core.db.query('UPDATE users SET disabled = true WHERE id = $1', [u.id]);
      await app.core.userStates.changed(u.id);
      for (const r of [await app.http.get('/users/me', u.access), await app.http.patch('/users/me', { full_name: 'x' }, u.access)]) {
        assert.equal(r.status, 401, r.text);
        assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer realm="gatehouse", error="invalid_token", error_description="[^"]+"$/);
      }
      assert.equal((await app.http.token({ grant_type: 'password', username: u.username, password: u.password })).status, 400);
      // Enabled again: the same token works (it had not expired).
      await app.core.db.query('UPDATE users SET disabled = false WHERE id = $1', [u.id]);
      await app.core.userStates.changed(u.id);
      assert.equal((await app.http.get('/users/me', u.access)).status, 200);
    });

    test('a deleted user: 401 invalid_token, never a 404 or 500', async () => {
      const u = await registerAndLogin(app.http);
      assert.equal((await app.http.get('/users/me', u.access)).status, 200);
      await app.core.db.query('DELETE FROM users WHERE id = $1', [u.id]);
      await app.core.userStates.changed(u.id);
      for (const r of [
        await app.http.get('/users/me', u.access),
        await app.http.patch('/users/me', { full_name: 'x' }, u.access),
        await app.http.get('/users/me/sessions', u.access),
      ]) {
        assert.equal(r.status, 401, r.text);
        assert.match(r.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
      }
      // The name is free again.
      const again = await app.http.post('/auth/register', { username: u.username, email: `${uniqueName('re')}@example.com`, password: u.password });
      assert.equal(again.status, 201, again.text);
    });
  });
}
