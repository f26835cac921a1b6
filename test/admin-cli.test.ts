// `npm run cli -- set-role USER admin|user`: the real CLI process, and a
// running node that hears of the change (LISTEN/NOTIFY or Redis).
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  busesHealthy,
  eventually,
  hasRedis,
  hasServer,
  login,
  makeAdmin,
  openTestDatabase,
  registerAndLogin,
  startApp,
  STRONG_PASSWORD,
  TEST_SECRET,
  uniqueName,
} from './helpers.js';
import { runCli as runCliProcess, tempDir } from './process-helpers.js';

/** src/cli.ts as a real process, keyed like the service's tests. */
const runCli = (args: string[], env: Record<string, string>, input?: string) => runCliProcess(args, { SECRET_KEY: TEST_SECRET, ...env }, input);

describe('cli set-role', () => {
  test('on the embedded database: promote, repeat, refuse to demote the last admin, usage errors', async () => {
    const dataDir = tempDir('gatehouse-cli-data-');
    const env = { DATA_DIR: dataDir };
    try {
      const name = uniqueName('cli');
      const created = await runCli(['create-user', '--username', name, '--email', `${name}@example.com`], env, `${STRONG_PASSWORD}\n`);
      assert.equal(created.code, 0, created.stderr);
      const up = await runCli(['set-role', `${name}@EXAMPLE.com`, 'admin'], env);
      assert.equal(up.code, 0, up.stderr);
      assert.equal(up.stdout.trim(), `${name} is now admin`);
      const again = await runCli(['set-role', name.toUpperCase(), 'admin'], env);
      assert.equal(again.stdout.trim(), `${name} was already admin`);
      const down = await runCli(['set-role', name, 'user'], env);
      assert.equal(down.code, 1);
      assert.match(down.stderr, /last enabled admin/);
      assert.ok(!/\n\s+at /.test(down.stderr), 'no stack trace');
      for (const args of [['set-role', name, 'root'], ['set-role', name], ['set-role', 'nobody_here', 'user']]) {
        const r = await runCli(args, env);
        assert.equal(r.code, 1, args.join(' '));
        assert.match(r.stderr, /^gatehouse: (usage: set-role|no user)/, r.stderr);
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  for (const withRedis of [false, true]) {
    const via = withRedis ? 'Redis pub/sub' : 'PostgreSQL NOTIFY';
    const skip = !hasServer() ? 'needs DATABASE_URL' : withRedis && !hasRedis() ? 'needs REDIS_URL' : false;
    test(`on the server: a running node hears of it (${via})`, { skip }, async () => {
      const shared = await openTestDatabase('postgres');
      const node = await startApp({ db: shared, env: withRedis ? { REDIS_URL: process.env.REDIS_URL } : {} });
      const dataDir = tempDir('gatehouse-cli-data-');
      const env: Record<string, string> = { DATABASE_URL: shared.url!, DATA_DIR: dataDir, REDIS_PREFIX: node.config.redisPrefix };
      if (withRedis) env.REDIS_URL = process.env.REDIS_URL!;
      try {
        assert.ok(await busesHealthy(node), 'the node is on the fast path (caching, kept in step by events)');
        await makeAdmin(node, await registerAndLogin(node.http)); // someone stays admin
        const u = await makeAdmin(node, await registerAndLogin(node.http));
        assert.equal((await node.http.get('/admin/users', u.access)).status, 200); // cached on the node

        const down = await runCli(['set-role', u.email, 'user'], env);
        assert.equal(down.code, 0, down.stderr);
        assert.equal(down.stdout.trim(), `${u.username} is now user`);
        assert.equal(down.stderr, '', 'announced everywhere it should be');
        const dead = await eventually(async () => (await node.http.get('/admin/users', u.access)).status === 401, 1000);
        assert.ok(dead, 'the admin token still works on the running node a second after set-role user');

        const plain = await login(node.http, u.username, u.password);
        assert.equal(plain.scope, 'me posts:write');
        const up = await runCli(['set-role', u.username, 'admin'], env);
        assert.equal(up.code, 0, up.stderr);
        const promoted = await eventually(async () => {
          const r = await node.http.token({ grant_type: 'password', username: u.username, password: u.password, scope: 'admin' });
          return r.status === 200;
        }, 1000);
        assert.ok(promoted);
      } finally {
        await node.close();
        await shared.close();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  }
});
