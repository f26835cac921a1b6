// The README's FastAPI dependency (docs/examples/fastapi_jwks.py, run as
// shown, with Debian's python3-fastapi, python3-uvicorn, python3-jwt)
// verifying Gatehouse tokens through the JWK set of the running service.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { login, registerAndLogin, type TestApp } from './helpers.js';
import { ROOT } from './process-helpers.js';
import { startPublicApp } from './public-app.js';
import { PYTHON, pythonMissing } from './python.js';

const missing = pythonMissing(['jwt', 'cryptography', 'fastapi', 'uvicorn']);

describe('FastAPI resource server verifying through the JWK set', { skip: missing ?? false }, () => {
  let app: TestApp;
  let child: ReturnType<typeof spawn> | undefined;
  let api = '';
  before(async () => {
    app = await startPublicApp({ env: { ALGORITHM: 'ES256' } });
    child = spawn(PYTHON, [join(ROOT, 'test', 'fixtures', 'serve_fastapi.py')], {
      cwd: ROOT,
      env: { PATH: '/usr/bin:/bin', GATEHOUSE_URL: app.config.jwtIssuer },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const first = await createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next();
    api = `http://127.0.0.1:${String(first.value).trim()}`;
  });
  after(async () => {
    if (child && child.exitCode === null) {
      const closed = new Promise((r) => child!.once('close', r));
      child.kill('SIGTERM');
      await closed;
    }
    await app?.close();
  });

  const whoami = (token?: string) => fetch(`${api}/whoami`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  test('a Gatehouse token passes; none, a forged one or one without the scope does not', async () => {
    const u = await registerAndLogin(app.http);
    const ok = await whoami(u.access);
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { user_id: u.id, username: u.username, scope: 'me posts:write' });

    assert.equal((await whoami()).status, 401);
    assert.equal((await whoami('not-a-token')).status, 401);
    const [h, p] = u.access.split('.');
    assert.equal((await whoami(`${h}.${p}.${'A'.repeat(86)}`)).status, 401);
    const narrow = await login(app.http, u.username, undefined, 'posts:write');
    assert.equal((await whoami(narrow.access)).status, 403);
  });
});
