// The service as a process: liveness and readiness, graceful shutdown with
// requests in flight, the DATA_DIR lock, and a restart that keeps data and
// tokens (embedded database and development key under DATA_DIR).
import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { backends, STRONG_PASSWORD, openTestDatabase, registerAndLogin, startApp, uniqueName } from './helpers.js';
import { finishAll, holdForms, holdRequest, untilRefused } from './held-requests.js';
import { freePort, runToExit, spawnServer, tempDir, waitUntilUp, type ServerProcess } from './process-helpers.js';

for (const backend of backends()) {
  describe(`health and readiness (${backend})`, () => {
    test('/health 200 {"status":"ok"}; /ready 200, then 503 problem once the database is closed', async () => {
      const tdb = await openTestDatabase(backend);
      const app = await startApp({ backend, db: tdb });
      let dbOpen = true;
      try {
        const health = await app.http.get('/health');
        assert.equal(health.status, 200);
        assert.equal(health.text, '{"status":"ok"}');
        const ready = await app.http.get('/ready');
        assert.equal(ready.status, 200, ready.text);
        assert.equal(ready.body.status, 'ready');
        const u = await registerAndLogin(app.http);

        await tdb.db.close();
        dbOpen = false;
        const down = await app.http.get('/ready');
        assert.equal(down.status, 503, down.text);
        assert.match(down.headers.get('content-type') ?? '', /^application\/problem\+json/);
        assert.equal(down.body.status, 503);
        assert.equal(typeof down.body.detail, 'string');
        assert.doesNotMatch(down.text, /closed|pool|PGlite|ECONN|at .*:\d+/i);
        // Still alive: liveness does not depend on the database.
        assert.equal((await app.http.get('/health')).status, 200);
        // Requests that need the database fail as unavailable, never 500.
        for (const r of [
          await app.http.token({ grant_type: 'password', username: u.username, password: u.password }),
          await app.http.post('/auth/register', { username: uniqueName('down'), email: `${uniqueName('down')}@example.com`, password: STRONG_PASSWORD }),
          await app.http.patch('/users/me', { full_name: 'x' }, u.access),
        ]) {
          assert.equal(r.status, 503, r.text);
          assert.match(r.headers.get('retry-after') ?? '', /^\d+$/);
          assert.doesNotMatch(r.text, /closed|pool|PGlite|at .*:\d+/i);
        }
      } finally {
        await app.app.close().catch(() => {});
        if (dbOpen) await tdb.close();
        else if (backend === 'postgres') await tdb.close().catch(() => {});
      }
    });
  });
}

describe('the server process', () => {
  const dirs: string[] = [];
  const procs: ServerProcess[] = [];
  after(async () => {
    for (const p of procs) {
      if (p.child.exitCode === null && p.child.signalCode === null) {
        p.child.kill('SIGKILL');
        await p.exited;
      }
    }
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('SIGTERM finishes logins in flight, exits 0 and releases DATA_DIR; a restart (past a stale lock) keeps users and tokens', async () => {
    const dataDir = tempDir('gatehouse-server-');
    dirs.push(dataDir);
    const port = await freePort();
    // Development without SECRET_KEY: the key is made once under DATA_DIR.
    const env = { NODE_ENV: 'development', DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', HASH_CONCURRENCY: '1' };
    const base = `http://127.0.0.1:${port}`;
    const first = spawnServer(env);
    procs.push(first);
    await waitUntilUp(`${base}/health`, first);
    const lock = join(dataDir, 'gatehouse.pid');
    assert.ok(existsSync(lock), 'the lock file exists while running');
    assert.equal(readFileSync(lock, 'utf8').trim(), String(first.child.pid));

    // A second process on the same DATA_DIR refuses to start, with one line naming it.
    const second = await runToExit({ ...env, PORT: String(await freePort()) }, 90_000);
    assert.notEqual(second.code, 0);
    const lines = second.stderr.split('\n').filter((l) => l.trim());
    assert.equal(lines.length, 1, second.stderr);
    assert.ok(lines[0]!.includes(dataDir), lines[0]);
    assert.match(lines[0]!, /in use/);
    assert.doesNotMatch(second.stderr, /\bat .+:\d+:\d+/);
    assert.equal((await fetch(`${base}/health`)).status, 200, 'the first one is unaffected');

    const username = uniqueName('proc');
    const reg = await fetch(`${base}/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, email: `${username}@example.com`, password: STRONG_PASSWORD }),
    });
    assert.equal(reg.status, 201, await reg.text());
    const tok = await fetch(`${base}/auth/token`, { method: 'POST', body: new URLSearchParams({ username, password: STRONG_PASSWORD }) });
    assert.equal(tok.status, 200);
    const { access_token: access } = (await tok.json()) as { access_token: string };

    // Four logins the server has received (headers and all of the body but its
    // last byte) are held in flight; SIGTERM lands, and only once the server has
    // stopped accepting connections (it is shutting down) are the bodies finished.
    // Behind one hashing thread the four then hash one after another, so the
    // shutdown has to wait for work that had not even started when it began.
    const held = await holdForms(base, '/auth/token', { grant_type: 'password', username, password: STRONG_PASSWORD }, 4);
    const signalledAt = performance.now();
    first.child.kill('SIGTERM');
    await untilRefused(port);
    const answers = await finishAll(held);
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200], `every request in flight completed: ${answers.map((a) => a.error ?? a.text).join(' ')}`);
    assert.ok(answers.filter((a) => a.at > signalledAt).length >= 2, 'several were still in flight at SIGTERM');
    const exit = await Promise.race([first.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no exit')), 30_000))]);
    assert.deepEqual(exit, { code: 0, signal: null }, first.stderr());
    assert.equal(existsSync(lock), false, 'the lock file is gone');
    // Nothing listens any more.
    await assert.rejects(fetch(`${base}/health`));

    // A crash leaves a lock behind whose process is gone: it must not block the next start.
    writeFileSync(lock, '99999999');
    // Restarted on the same DATA_DIR: the user is there and the old token still verifies.
    const again = spawnServer(env);
    procs.push(again);
    await waitUntilUp(`${base}/health`, again);
    const me = await fetch(`${base}/users/me`, { headers: { authorization: `Bearer ${access}` } });
    const meText = await me.text();
    assert.equal(me.status, 200, meText);
    assert.equal((JSON.parse(meText) as { username: string }).username, username);
    again.child.kill('SIGINT');
    assert.deepEqual(await again.exited, { code: 0, signal: null }, again.stderr());
    assert.equal(existsSync(lock), false);
    assert.doesNotMatch(first.stdout() + first.stderr() + again.stdout() + again.stderr(), new RegExp(STRONG_PASSWORD));
  });

  test('SIGTERM with a request in flight on a kept-alive connection: exits 0 as soon as the request is done, not after a keep-alive or force timeout', async () => {
    const dataDir = tempDir('gatehouse-server-');
    dirs.push(dataDir);
    const port = await freePort();
    const env = { NODE_ENV: 'development', DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn' };
    const base = `http://127.0.0.1:${port}`;
    const proc = spawnServer(env);
    procs.push(proc);
    await waitUntilUp(`${base}/health`, proc);
    // An idle kept-alive connection: one request answered, the socket left open.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const idleAnswer = await new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
      httpRequest(`${base}/health`, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
      }).on('error', reject).end();
    });
    assert.equal(idleAnswer.status, 200);
    assert.equal(agent.freeSockets[Object.keys(agent.freeSockets)[0]!]?.length, 1, 'the connection is kept alive, idle');
    // A request in flight on that same kept-alive connection (received, its body not finished).
    const held = holdRequest(base, '/auth/token', 'application/x-www-form-urlencoded', 'grant_type=password&username=nobody&password=x', agent);
    await held.received;
    const signalled = performance.now();
    proc.child.kill('SIGTERM');
    await untilRefused(port);
    const answer = await held.finish();
    assert.equal(answer!.status, 400, answer!.error ?? answer!.text);
    assert.equal(answer!.headers.get('connection'), 'close', 'answered while closing: the connection is not reused');
    const exit = await proc.exited;
    const took = performance.now() - signalled;
    assert.deepEqual(exit, { code: 0, signal: null }, proc.stderr());
    // The force timer is 20 s; an idle keep-alive connection used to hold shutdown until it fired.
    assert.ok(took < 15_000, `shutdown took ${Math.round(took)} ms`);
    agent.destroy();
  });
});
