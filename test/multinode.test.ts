// Two real nodes: separate processes on different ports, one PostgreSQL
// server database and (when REDIS_URL is set) one Redis. Whatever one node
// does to a session or a user holds on the other within a second.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createServerDatabase, eventually, hasRedis, hasServer, HttpClient, STRONG_PASSWORD, TEST_SECRET, uniqueName } from './helpers.js';
import { freePort, spawnServer, waitUntilUp, type ServerProcess } from './process-helpers.js';

const variants = [
  { name: 'PostgreSQL LISTEN/NOTIFY', redis: false, skip: !hasServer() },
  { name: 'Redis pub/sub', redis: true, skip: !hasServer() || !hasRedis() },
];

for (const variant of variants) {
  describe(`two node processes (${variant.name})`, { skip: variant.skip }, () => {
    const procs: ServerProcess[] = [];
    let drop: (() => Promise<void>) | undefined;
    let a: HttpClient;
    let b: HttpClient;
    let dbUrl: string;

    before(async () => {
      const created = await createServerDatabase();
      drop = created.drop;
      dbUrl = created.url;
      const prefix = `ghtest:${new URL(dbUrl).pathname.slice(1)}:`;
      const nodes: HttpClient[] = [];
      for (let i = 0; i < 2; i++) {
        const port = await freePort();
        const env: Record<string, string> = {
          NODE_ENV: 'production',
          SECRET_KEY: TEST_SECRET,
          DATABASE_URL: dbUrl,
          PORT: String(port),
          // One service behind a load balancer: one public address, hence one issuer.
          PUBLIC_URL: 'http://gatehouse.test',
          LOG_LEVEL: 'warn',
          REDIS_PREFIX: prefix,
          RATE_LIMIT_TOKEN_PER_MINUTE: '100000',
          RATE_LIMIT_REGISTER_PER_HOUR: '100000',
        };
        if (variant.redis) env.REDIS_URL = process.env.REDIS_URL!;
        const proc = spawnServer(env);
        procs.push(proc);
        const base = `http://127.0.0.1:${port}`;
        await waitUntilUp(`${base}/ready`, proc);
        nodes.push(new HttpClient(base));
      }
      [a, b] = nodes as [HttpClient, HttpClient];
    });

    after(async () => {
      for (const p of procs) {
        if (p.child.exitCode === null) p.child.kill('SIGTERM');
        const { code } = await p.exited;
        assert.equal(code, 0, `node exits 0 on SIGTERM: ${p.stderr()}`);
      }
      await drop?.();
    });

    async function newUser() {
      const username = uniqueName('mn');
      const r = await a.post('/auth/register', { username, email: `${username}@example.com`, password: STRONG_PASSWORD });
      assert.equal(r.status, 201);
      return { id: r.body.id as string, username };
    }

    async function loginOn(node: HttpClient, username: string) {
      const r = await node.token({ username, password: STRONG_PASSWORD });
      assert.equal(r.status, 200, r.text);
      return { access: r.body.access_token as string, refresh: r.body.refresh_token as string };
    }

    const rejected = (node: HttpClient, token: string) => async () => (await node.get('/users/me', token)).status === 401;

    test('log in on one node, refresh on the other, revoke on either', async () => {
      const u = await newUser();
      const t1 = await loginOn(a, u.username);
      assert.equal((await b.get('/users/me', t1.access)).status, 200);

      const r = await b.token({ grant_type: 'refresh_token', refresh_token: t1.refresh });
      assert.equal(r.status, 200, r.text);
      const t2 = { access: r.body.access_token as string, refresh: r.body.refresh_token as string };
      assert.equal((await a.get('/users/me', t2.access)).status, 200);

      // Revoking the refresh token on A ends the session: B refuses its refresh and access tokens.
      assert.equal((await a.request('POST', '/auth/revoke', { form: { token: t2.refresh } })).status, 200);
      assert.equal((await b.token({ grant_type: 'refresh_token', refresh_token: t2.refresh })).body.error, 'invalid_grant');
      assert.ok(await eventually(rejected(b, t2.access), 1000), 'B rejects the ended session within a second');
      assert.ok(await eventually(rejected(a, t1.access), 1000));

      // Revoking an access token on B: A rejects it too; the session itself lives on.
      const t3 = await loginOn(a, u.username);
      assert.equal((await a.get('/users/me', t3.access)).status, 200); // A has seen it once
      assert.equal((await b.request('POST', '/auth/revoke', { form: { token: t3.access, token_type_hint: 'access_token' } })).status, 200);
      assert.ok(await eventually(rejected(a, t3.access), 1000), 'A rejects the revoked access token within a second');
      assert.equal((await a.token({ grant_type: 'refresh_token', refresh_token: t3.refresh })).status, 200);
    });

    test('logout on one node holds on the other', async () => {
      const u = await newUser();
      const t = await loginOn(b, u.username);
      assert.equal((await a.get('/users/me', t.access)).status, 200);
      assert.equal((await b.request('POST', '/auth/logout?scope=global', { token: t.access })).status, 204);
      assert.ok(await eventually(rejected(a, t.access), 1000));
      assert.equal((await a.token({ grant_type: 'refresh_token', refresh_token: t.refresh })).body.error, 'invalid_grant');
    });

    test('a refresh token rotates once across both nodes', async () => {
      const u = await newUser();
      const t = await loginOn(a, u.username);
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).token({ grant_type: 'refresh_token', refresh_token: t.refresh })),
      );
      assert.ok(answers.every((r) => r.status === 200), answers.map((r) => r.text).join('\n'));
      assert.equal(new Set(answers.map((r) => r.body.refresh_token)).size, 1, 'one successor for all');
    });

    test('disable a user on one node, the other refuses their token', async () => {
      const admin = await newUser();
      // The first admin is made outside the API (as the CLI does); neither node has seen this user yet.
      const pg = (await import('pg')).default;
      const c = new pg.Client({ connectionString: dbUrl });
      await c.connect();
      await c.query(`UPDATE users SET role = 'admin' WHERE id = $1`, [admin.id]);
      await c.end();
      const adminTokens = await loginOn(a, admin.username);

      const victim = await newUser();
      const vt = await loginOn(b, victim.username);
      assert.equal((await b.get('/users/me', vt.access)).status, 200); // cached on B

      const r = await a.patch(`/admin/users/${victim.id}`, { disabled: true }, adminTokens.access);
      assert.equal(r.status, 200, r.text);
      assert.ok(await eventually(rejected(b, vt.access), 1000), 'B refuses the disabled user within a second');
      const res = await b.get('/users/me', vt.access);
      assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
      assert.equal((await b.token({ username: victim.username, password: STRONG_PASSWORD })).body.error, 'invalid_grant');
    });
  });
}
