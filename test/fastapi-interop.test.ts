// Gatehouse against the real FastAPI tutorial (test/fixtures/fastapi_tutorial:
// get_current_user and create_access_token written as seeds 000 and 002 do
// with python-jose, and as seed 001 does with PyJWT), run by Debian's
// /usr/bin/python3 under uvicorn on a loopback port, with SECRET_KEY shared:
// - TOKEN_PROFILE=fastapi tokens pass the tutorial's get_current_user
//   unchanged (and default-profile tokens do not: aud, sub = id);
// - the tutorial app's own tokens pass Gatehouse during the legacy window
//   (LEGACY_SECRET_KEY) and fail after it.
// Tokens do not depend on the database: PGlite only.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeJwt } from 'jose';
import { openTestDatabase, startApp, type TestApp, type TestDatabase } from './helpers.js';
import { freePort, ROOT } from './process-helpers.js';

const PYTHON = '/usr/bin/python3';
const FIXTURE = join(ROOT, 'test', 'fixtures', 'fastapi_tutorial');
/** One key for all: the FastAPI app's SECRET_KEY, Gatehouse's, and LEGACY_SECRET_KEY. */
const SHARED_KEY = 'tutorial-and-gatehouse-share-this-key-0123456789';
const TUTORIAL_HASH = '$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW';
const WINDOW_MS = 10 * 60_000;

function pythonProblem(): string | false {
  const r = spawnSync(PYTHON, ['-c', 'import fastapi, uvicorn, jose, jwt, multipart'], { encoding: 'utf8' });
  if (r.error) return `${PYTHON} is not installed`;
  return r.status === 0 ? false : `${PYTHON} lacks fastapi, uvicorn, python-jose, PyJWT or python-multipart (apt-get install python3-fastapi python3-uvicorn python3-jose python3-jwt python3-multipart)`;
}

const skip = pythonProblem();

async function startTutorial(): Promise<{ url: string; child: ChildProcess; output: () => string }> {
  const port = await freePort();
  const child = spawn(PYTHON, ['-m', 'uvicorn', 'app:app', '--host', '127.0.0.1', '--port', String(port), '--log-level', 'warning'], {
    cwd: FIXTURE,
    env: { PATH: '/usr/bin:/bin', SECRET_KEY: SHARED_KEY, PYTHONDONTWRITEBYTECODE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const end = Date.now() + 30_000;
  while (Date.now() < end && child.exitCode === null) {
    try {
      if ((await fetch(`${url}/openapi.json`)).status === 200) return { url, child, output: () => out };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`the FastAPI app did not start: ${out}`);
}

describe('the FastAPI tutorial and Gatehouse, SECRET_KEY shared', { skip }, () => {
  let tutorial: Awaited<ReturnType<typeof startTutorial>>;
  let db: TestDatabase;
  let gh: TestApp;
  let plain: TestApp;

  before(async () => {
    tutorial = await startTutorial();
    db = await openTestDatabase('pglite');
    const env = {
      SECRET_KEY: SHARED_KEY,
      TOKEN_PROFILE: 'fastapi',
      LEGACY_SECRET_KEY: SHARED_KEY,
      LEGACY_TOKENS_UNTIL: new Date(Date.now() + WINDOW_MS).toISOString(),
    };
    gh = await startApp({ db, env });
    plain = await startApp({ db, env: { SECRET_KEY: SHARED_KEY } });
    // johndoe as import-users brings him: the tutorial's hash of "secret".
    await gh.core.users.insertMany([{ username: 'johndoe', email: 'johndoe@example.com', fullName: 'John Doe', passwordHash: TUTORIAL_HASH, disabled: false, emailVerified: true }]);
  });
  after(async () => {
    // By PID: the uvicorn process this test started, and nothing else.
    if (tutorial?.child.exitCode === null) {
      const gone = new Promise((r) => tutorial.child.once('exit', r));
      process.kill(tutorial.child.pid!, 'SIGTERM');
      await gone;
    }
    await gh?.close();
    await plain?.close();
    await db?.close();
  });

  const tutorialGet = async (path: string, token: string) => {
    const r = await fetch(tutorial.url + path, { headers: { authorization: `Bearer ${token}` } });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };

  test('TOKEN_PROFILE=fastapi tokens pass get_current_user unchanged, python-jose and PyJWT', async () => {
    const r = await gh.http.token({ username: 'johndoe', password: 'secret' });
    assert.equal(r.status, 200, r.text);
    for (const path of ['/jose/users/me', '/pyjwt/users/me']) {
      const me = await tutorialGet(path, r.body.access_token);
      assert.equal(me.status, 200, `${path}: ${JSON.stringify(me.body)} ${tutorial.output()}`);
      assert.deepEqual(me.body, { username: 'johndoe', scopes: ['me', 'posts:write'] });
    }
    // A narrower grant reads narrower there too.
    const narrow = await gh.http.token({ username: 'johndoe', password: 'secret', scope: 'me' });
    assert.deepEqual((await tutorialGet('/jose/users/me', narrow.body.access_token)).body.scopes, ['me']);
    // And Gatehouse itself takes them.
    assert.equal((await gh.http.get('/users/me', r.body.access_token)).body.username, 'johndoe');
  });

  test('control: default-profile (rfc9068) tokens are refused by the tutorial (aud, sub = id)', async () => {
    const r = await plain.http.token({ username: 'johndoe', password: 'secret' });
    assert.equal(r.status, 200, r.text);
    assert.ok(decodeJwt(r.body.access_token).aud);
    assert.equal((await tutorialGet('/jose/users/me', r.body.access_token)).status, 401);
    assert.equal((await tutorialGet('/pyjwt/users/me', r.body.access_token)).status, 401);
  });

  test("the tutorial's own tokens pass Gatehouse during the legacy window, as me posts:write, and fail after it", async () => {
    const form = new URLSearchParams({ username: 'johndoe', password: 'secret' });
    const tokens: string[] = [];
    for (const path of ['/login', '/login-pyjwt']) {
      const r = await fetch(tutorial.url + path, { method: 'POST', body: form });
      assert.equal(r.status, 200, path);
      tokens.push(((await r.json()) as { access_token: string }).access_token);
    }
    for (const t of tokens) {
      assert.equal(decodeJwt(t).sub, 'johndoe');
      const me = await gh.http.get('/users/me', t);
      assert.equal(me.status, 200, me.text);
      assert.equal(me.body.username, 'johndoe');
      const post = await gh.http.post('/posts', { title: 'written with the old token', body: '…' }, t);
      assert.equal(post.status, 201, post.text);
      assert.equal((await gh.http.get('/admin/users', t)).status, 403);
    }
    // The tutorial's tokens live 30 minutes (seed 000) and 15 days (seed 001): still unexpired when the window ends.
    gh.clock.advance(WINDOW_MS + 1000);
    try {
      for (const t of tokens) {
        const r = await gh.http.get('/users/me', t);
        assert.equal(r.status, 401, r.text);
        assert.match(r.headers.get('www-authenticate') ?? '', /no longer accepted/);
      }
    } finally {
      gh.clock.advance(-(WINDOW_MS + 1000));
    }
  });
});
