// Configuration and edge hardening (issue 9, findings 5, 9, 10, 12 and the
// v2 HSTS rule): each test tries what an attacker or a careless operator
// would, and sees it refused.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, loadConfig, lowEntropy } from '../src/config.js';
import { openPglite } from '../src/db/client.js';
import { registerAndLogin, startApp, type LoggedIn, type TestApp } from './helpers.js';

const tempDir = () => mkdtempSync(join(tmpdir(), 'gatehouse-hardening-'));
const base = (env: Record<string, string>) => ({ NODE_ENV: 'development', DATA_DIR: tempDir(), ...env });
const refused = (env: Record<string, string>, variable: string) =>
  assert.throws(() => loadConfig(base(env)), (err: unknown) => err instanceof ConfigError && err.variable === variable);

describe('configuration refusals', () => {
  test('TRUST_PROXY=true is refused: it would believe any client’s X-Forwarded-For', () => {
    for (const v of ['true', 'yes', 'on']) refused({ TRUST_PROXY: v }, 'TRUST_PROXY');
    assert.equal(loadConfig(base({ TRUST_PROXY: '1' })).trustProxy, 1);
    assert.deepEqual(loadConfig(base({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1' })).trustProxy, ['10.0.0.0/8', '127.0.0.1']);
    assert.equal(loadConfig(base({})).trustProxy, false);
  });

  test('a short SECRET_KEY warns in every mode; in production an obviously guessable one is refused', () => {
    assert.match(loadConfig(base({ SECRET_KEY: 'secret' })).warnings.join(' '), /SECRET_KEY is shorter than 32 bytes/);
    assert.deepEqual(loadConfig(base({ SECRET_KEY: 'k'.repeat(8) + 'Vq3-Ys8_pL2mXz7RbT4wNc9dHf6uJ0eA' })).warnings, []);
    const production = { NODE_ENV: 'production' };
    for (const weak of ['a'.repeat(32), 'a'.repeat(64), 'secretsecretsecretsecretsecret12', '0123456701234567012345670123456701']) {
      assert.ok(lowEntropy(weak), weak);
      refused({ ...production, SECRET_KEY: weak }, 'SECRET_KEY');
    }
    // What gen-secret, openssl rand -hex 32 and openssl rand -base64 32 produce passes.
    for (const good of ['dG9wLXNlY3JldC1rZXktZ2VuZXJhdGVkLWJ5LWdlbi1zZWNyZXQ', 'b3f1c9a27e4d8056a1c3e9f7b2d4068a9c1e3f5b7d9024a6c8e0f2b4d6a8c0e2', 'q8W2vT6yN1rB5xK9mP3sL7dF0gH4jZ==']) {
      assert.equal(lowEntropy(good), false, good);
      assert.equal(loadConfig(base({ ...production, SECRET_KEY: good })).secretKey, good);
    }
  });
});

describe('the embedded database folder is its owner’s alone', () => {
  test('refused when others may write it; what others could read is closed; new files are 0600', async () => {
    const open = tempDir();
    chmodSync(open, 0o777);
    await assert.rejects(openPglite(open), /writable by other users/);
    rmSync(open, { recursive: true, force: true });

    const existing = tempDir();
    chmodSync(existing, 0o755);
    writeFileSync(join(existing, 'left-over'), 'x', { mode: 0o666 });
    chmodSync(join(existing, 'left-over'), 0o666);
    let db = await openPglite(existing);
    try {
      await db.query('CREATE TABLE t (x int)');
      assert.equal(statSync(existing).mode & 0o777, 0o700, 'others cannot even enter the folder');
      await db.close();
      db = await openPglite(existing);
      assert.equal(statSync(existing).mode & 0o777, 0o700);
      assert.equal(statSync(join(existing, 'left-over')).mode & 0o077, 0);
      const loose: string[] = [];
      const walk = (dir: string) => {
        for (const name of readdirSync(dir)) {
          const p = join(dir, name);
          const st = statSync(p);
          if (st.mode & 0o077) loose.push(`${p} ${(st.mode & 0o777).toString(8)}`);
          if (st.isDirectory()) walk(p);
        }
      };
      walk(existing);
      assert.deepEqual(loose, [], 'no file of the database is readable or writable by others');
    } finally {
      await db.close();
      rmSync(existing, { recursive: true, force: true });
    }
  });
});

describe('HTTP edges', () => {
  let app: TestApp;
  let u: LoggedIn;
  before(async () => {
    app = await startApp({ env: { TRUST_PROXY: '127.0.0.1' } });
    u = await registerAndLogin(app.http);
  });
  after(async () => app.close());

  test('an unknown body field is a 422 naming it, as OpenAPI says (never silently dropped)', async () => {
    const post = await app.http.post('/posts', { title: 't', body: 'b', published: true, author_id: 'someone-else' }, u.access);
    assert.equal(post.status, 422, post.text);
    assert.deepEqual(post.body.errors, [{ path: '/author_id', message: 'is not allowed' }]);
    const me = await app.http.patch('/users/me', { full_name: 'x', role: 'admin' }, u.access);
    assert.equal(me.status, 422);
    assert.deepEqual(me.body.errors, [{ path: '/role', message: 'is not allowed' }]);
    assert.equal((await app.http.get('/users/me', u.access)).body.role, 'user');
  });

  test('HSTS whenever a trusted proxy says the client used https', async () => {
    const over = (proto?: string) => app.http.request('GET', '/health', { headers: proto ? { 'x-forwarded-proto': proto } : {} });
    assert.match((await over('https')).headers.get('strict-transport-security') ?? '', /max-age=31536000/);
    assert.equal((await over('http')).headers.get('strict-transport-security'), null);
    assert.equal((await over()).headers.get('strict-transport-security'), null);
    const untrusted = await startApp();
    try {
      const r = await untrusted.http.request('GET', '/health', { headers: { 'x-forwarded-proto': 'https' } });
      assert.equal(r.headers.get('strict-transport-security'), null, 'a client cannot claim https for itself');
    } finally {
      await untrusted.close();
    }
  });
});
