// The real service as a cluster (WORKERS=2) on the PostgreSQL server without
// Redis: a per-IP limit counts once for both workers, whichever answers.
// Each request opens a connection of its own, so the cluster's round-robin
// hands them to the workers in turn; the request log says which one answered.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { createServerDatabase, eventually, hasServer, TEST_SECRET } from './helpers.js';
import { freePort, spawnServer, waitUntilUp, type ServerProcess } from './process-helpers.js';

const LIMIT = 6;

/** POST /auth/token on a new connection, closed after the answer. */
function tokenOnNewConnection(port: number, form: Record<string, string>): Promise<number> {
  const body = new URLSearchParams(form).toString();
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/auth/token',
        agent: false,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body), connection: 'close' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

interface LogLine {
  pid: number;
  reqId?: string;
  msg?: string;
  req?: { url: string };
  res?: { statusCode: number };
}

// Complete lines only: the last one may still be arriving.
const logLines = (stdout: string): LogLine[] =>
  stdout
    .slice(0, stdout.lastIndexOf('\n') + 1)
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);

/** Which worker (pid) answered each POST /auth/token, and with what status, from the JSON request log. */
function tokenAnswers(stdout: string): { pid: number; status: number }[] {
  const urls = new Map<string, string>();
  const out: { pid: number; status: number }[] = [];
  for (const e of logLines(stdout)) {
    const id = `${e.pid}/${e.reqId}`;
    if (e.msg === 'incoming request' && e.req) urls.set(id, e.req.url);
    if (e.msg === 'request completed' && e.res && urls.get(id) === '/auth/token') out.push({ pid: e.pid, status: e.res.statusCode });
  }
  return out;
}

describe('WORKERS=2 on the PostgreSQL server without Redis', { skip: hasServer() ? false : 'needs DATABASE_URL (a PostgreSQL server)' }, () => {
  let proc: ServerProcess | undefined;
  let drop: (() => Promise<void>) | undefined;
  let port: number;

  before(async () => {
    const created = await createServerDatabase();
    drop = created.drop;
    port = await freePort();
    proc = spawnServer({
      NODE_ENV: 'production',
      SECRET_KEY: TEST_SECRET,
      DATABASE_URL: created.url,
      WORKERS: '2',
      PORT: String(port),
      LOG_LEVEL: 'info',
      RATE_LIMIT_TOKEN_PER_MINUTE: String(LIMIT),
    });
    await waitUntilUp(`http://127.0.0.1:${port}/ready`, proc);
    // /ready answers once one worker listens; round-robin needs both.
    const listening = () => new Set(logLines(proc!.stdout()).filter((e) => e.msg?.startsWith('Server listening')).map((e) => e.pid)).size;
    assert.ok(await eventually(async () => listening() === 2, 60_000, 100), `both workers listen: ${proc.stdout().slice(-2000)}`);
  });

  after(async () => {
    if (proc) {
      if (proc.child.exitCode === null) proc.child.kill('SIGTERM');
      const { code } = await proc.exited;
      assert.equal(code, 0, `the cluster exits 0 on SIGTERM: ${proc.stderr()}`);
    }
    await drop?.();
  });

  test(`RATE_LIMIT_TOKEN_PER_MINUTE=${LIMIT}: request ${LIMIT + 1} and after get 429 from either worker`, async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 2 * LIMIT; i++) {
      statuses.push(await tokenOnNewConnection(port, { grant_type: 'refresh_token', refresh_token: 'ghr_' + 'a'.repeat(43) }));
    }
    assert.deepEqual(statuses, [...Array(LIMIT).fill(400), ...Array(LIMIT).fill(429)]);

    // Both workers answered before and after the limit was reached: neither counted alone.
    let answers: { pid: number; status: number }[] = [];
    const end = Date.now() + 5_000;
    while ((answers = tokenAnswers(proc!.stdout())).length < 2 * LIMIT && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    assert.equal(answers.length, 2 * LIMIT, 'every request is in the log');
    const pids = (status: number) => new Set(answers.filter((a) => a.status === status).map((a) => a.pid));
    assert.equal(pids(400).size, 2, `both workers answered 400: ${JSON.stringify(answers)}`);
    assert.equal(pids(429).size, 2, `both workers answered 429: ${JSON.stringify(answers)}`);
  });
});
