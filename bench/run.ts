// npm run bench [-- --workers N --duration S --connections C --memory --seed N --only login]
//
// Starts the built service (dist/server.js) as a real listening process, on
// the PostgreSQL server when DATABASE_URL is set (in a database of its own,
// dropped afterwards) or embedded otherwise, and measures with autocannon:
// every figure is reported with its ratio to a floor measured in the same
// run, because the machine is shared and absolute numbers drift.
import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { PasswordHasher } from '../src/auth/passwords.js';
import { HttpClient } from '../test/http-client.js';
import { explain, seed } from './seed.js';

const { values: args } = parseArgs({
  options: {
    workers: { type: 'string', default: process.env.WORKERS ?? '1' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    // The memory target (100 000 refreshes, 20 000 logouts) takes minutes of
    // its own, bound by PostgreSQL commits: run it on request.
    memory: { type: 'boolean', default: false },
    // Growth check: fill the bench database with N users and N posts first.
    seed: { type: 'string', default: '0' },
    // `login`: only the hash floor, password logins and the login storm (with
    // the idle /users/me it is compared with), for changes to hashing.
    only: { type: 'string' },
    out: { type: 'string' },
  },
});
const WORKERS = Number(args.workers);
const DURATION = Number(args.duration);
const CONNECTIONS = Number(args.connections);
const LOGIN_CONNECTIONS = 16;
if (args.only !== undefined && args.only !== 'login') throw new Error('--only takes: login');
const LOGIN_ONLY = args.only === 'login';
const PASSWORD = 'bench-Anchor-47-velvet';

interface Row {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  floor?: string;
  ratio?: number;
  note?: string;
}

const rows: Row[] = [];
let plans: string | undefined;
let layers: { denylistCost: number; userStateCost: number } | undefined;
const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

// ---------- the service under test ----------

let server: ChildProcess | undefined;
let dropDb: (() => Promise<void>) | undefined;
let dataDir: string | undefined;
let base = '';
let http: HttpClient;
let db: pg.Pool | undefined;

async function startService(): Promise<void> {
  const port = await freePort();
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    // A real SECRET_KEY, but not NODE_ENV=production: that refuses BENCH_ROUTES.
    NODE_ENV: 'development',
    SECRET_KEY: randomBytes(32).toString('base64url'),
    HOST: '127.0.0.1',
    PORT: String(port),
    WORKERS: String(WORKERS),
    LOG_LEVEL: 'warn',
    BENCH_ROUTES: 'true',
    HSTS: 'false',
    // Limits would measure the limiter, not the service.
    RATE_LIMIT_TOKEN_PER_MINUTE: '0',
    RATE_LIMIT_REGISTER_PER_HOUR: '0',
    RATE_LIMIT_FAILED_LOGINS_PER_ACCOUNT: '0',
    HASH_QUEUE_MAX: '10000',
  };
  if (process.env.DATABASE_URL) {
    const name = `gh_bench_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const u = new URL(process.env.DATABASE_URL);
    u.pathname = `/${name}`;
    env.DATABASE_URL = u.toString();
    db = new pg.Pool({ connectionString: env.DATABASE_URL, max: 4 });
    dropDb = async () => {
      await db?.end();
      const c = new pg.Client({ connectionString: process.env.DATABASE_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    };
  } else {
    if (WORKERS > 1) throw new Error('--workers > 1 needs DATABASE_URL (the embedded database is single-process)');
    delete env.DATABASE_URL;
    dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));
    env.DATA_DIR = dataDir;
  }
  server = spawn(process.execPath, ['dist/server.js'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  base = `http://127.0.0.1:${port}`;
  http = new HttpClient(base);
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(`${base}/ready`)).ok) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline || server.exitCode !== null) throw new Error('the service did not become ready');
    await new Promise((r) => setTimeout(r, 100));
  }
  // With several workers, make sure every worker has started (each answers /ready).
  await new Promise((r) => setTimeout(r, WORKERS > 1 ? 3000 : 200));
}

async function stopService(): Promise<void> {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server!.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  await dropDb?.();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}

/** RSS (KiB) of the process serving requests: the worker(s), summed. */
function serviceRssKiB(): number {
  const pids = [server!.pid!];
  try {
    const children = readFileSync(`/proc/${server!.pid}/task/${server!.pid}/children`, 'utf8').trim();
    if (children) pids.push(...children.split(/\s+/).map(Number));
  } catch {
    /* no children file: single process */
  }
  const serving = WORKERS > 1 ? pids.slice(1) : pids;
  return serving.reduce((sum, pid) => {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return sum + Number(m?.[1] ?? 0);
  }, 0);
}

// ---------- helpers over HTTP ----------

async function register(username: string) {
  const r = await http.post('/auth/register', { username, email: `${username}@example.com`, password: PASSWORD });
  if (r.status !== 201) throw new Error(`register ${username}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as { id: string };
}

async function login(username: string) {
  const r = await http.token({ username, password: PASSWORD });
  if (r.status !== 200) throw new Error(`login ${username}: ${r.status}`);
  return r.body as { access_token: string; refresh_token: string };
}

// ---------- measurements ----------

/**
 * A refresh-grant request that takes its refresh token from `take` and hands
 * the answer to `onAnswer`. autocannon resets per-connection context between
 * requests, so rotation chains live in shared pools instead.
 */
function refreshRequest(take: () => string | undefined, onAnswer: (body: Record<string, string>) => void): autocannon.Request {
  return {
    method: 'POST',
    path: '/auth/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    setupRequest: (req) => ({ ...req, body: `grant_type=refresh_token&refresh_token=${take() ?? ''}` }),
    onResponse: (status, body) => {
      if (status === 200) onAnswer(JSON.parse(body));
    },
  };
}

type Opts = Omit<autocannon.Options, 'url'> & { path?: string };

async function cannon(opts: Opts): Promise<autocannon.Result> {
  const { path = '/', ...rest } = opts;
  return autocannon({ url: base + path, duration: DURATION, connections: CONNECTIONS, ...rest });
}

/** Answers by status class other than 2xx (autocannon counts 1xx, 3xx, 4xx and 5xx). */
function statusCounts(r: autocannon.Result): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of ['1xx', '3xx', '4xx', '5xx'] as const) if (r[k]) out[k] = r[k];
  return out;
}

function record(name: string, r: autocannon.Result, floor?: Row, note?: string): Row {
  const row: Row = {
    name,
    rps: Math.round(r.requests.average),
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors + r.timeouts + r.non2xx,
    note,
  };
  if (floor) {
    row.floor = floor.name;
    row.ratio = Number((row.rps / floor.rps).toFixed(3));
  }
  rows.push(row);
  const kinds = row.errors ? ` (${r.errors} failed, ${r.timeouts} timed out, ${r.non2xx} non-2xx: ${JSON.stringify(statusCounts(r))})` : '';
  log(`${name}: ${row.rps} req/s, p50 ${row.p50} ms, p99 ${row.p99} ms, errors ${row.errors}${kinds}${row.ratio !== undefined ? `, ratio ${row.ratio}` : ''}`);
  return row;
}

/** The argon2id hashes per second this machine gives with the service's own parameters and pool. */
async function hashFloor(): Promise<Row> {
  const concurrency = availableParallelism();
  // Same parameters and the same bounded pool per process as the service; one
  // pool per worker process, so a cluster gets WORKERS × that on the same cores.
  const hashers = Array.from({ length: 1 }, () => new PasswordHasher(concurrency, 100_000));
  const hash = await hashers[0]!.hash(PASSWORD);
  let done = 0;
  const end = Date.now() + DURATION * 1000;
  const lat: number[] = [];
  await Promise.all(
    Array.from({ length: concurrency * 2 }, async () => {
      while (Date.now() < end) {
        const t = performance.now();
        await hashers[0]!.verify(hash, PASSWORD);
        lat.push(performance.now() - t);
        done++;
      }
    }),
  );
  lat.sort((a, b) => a - b);
  const row: Row = {
    name: 'hash floor (argon2id verify, no HTTP)',
    rps: Math.round(done / DURATION),
    p50: Math.round(lat[Math.floor(lat.length / 2)] ?? 0),
    p99: Math.round(lat[Math.floor(lat.length * 0.99)] ?? 0),
    errors: 0,
  };
  rows.push(row);
  log(`${row.name}: ${row.rps}/s`);
  return row;
}

async function main() {
  const started = Date.now();
  await startService();
  log(`service up on ${base} (${WORKERS} worker(s), ${process.env.DATABASE_URL ? 'PostgreSQL server' : 'embedded PGlite'})`);
  const seeded = Number(args.seed);
  if (seeded > 0) {
    if (!db) throw new Error('--seed needs DATABASE_URL');
    log(`seeding ${seeded} users and ${seeded} posts`);
    await seed(db, seeded, seeded, log);
    plans = await explain(db);
  }

  const me = `bench_${randomBytes(3).toString('hex')}`;
  await register(me);
  const tokens = await login(me);
  for (let i = 0; i < 50; i++) {
    await http.post('/posts', { title: `Post ${i}`, body: 'x'.repeat(500), published: true }, tokens.access_token);
  }
  const auth = { authorization: `Bearer ${tokens.access_token}` };

  // Warm-up (JIT, pools, caches), not recorded: every route the layer figures compare, or the first one
  // measured (the floor) pays for its own compilation and reads low.
  const warm = LOGIN_ONLY ? ['/users/me'] : ['/_bench/floor', '/_bench/verify', '/_bench/verify-denylist', '/users/me'];
  for (const path of warm) await autocannon({ url: base + path, headers: auth, duration: 2, connections: CONNECTIONS });

  let meIdle: Row;
  let floor: Row | undefined;
  if (LOGIN_ONLY) {
    meIdle = record('GET /users/me (+ user-state check)', await cannon({ path: '/users/me', headers: auth }));
  } else {
    floor = record('floor: bare route, same JSON', await cannon({ path: '/_bench/floor' }));
    // The guard layer by layer: what each check costs a protected request.
    const verified = record('GET + token verification only', await cannon({ path: '/_bench/verify', headers: auth }), floor);
    const denylisted = record('GET + verification + denylist', await cannon({ path: '/_bench/verify-denylist', headers: auth }), floor);
    meIdle = record('GET /users/me (+ user-state check)', await cannon({ path: '/users/me', headers: auth }), floor);
    layers = {
      denylistCost: Number((1 - denylisted.rps / verified.rps).toFixed(3)),
      userStateCost: Number((1 - meIdle.rps / denylisted.rps).toFixed(3)),
    };
    record('GET /posts (first page)', await cannon({ path: '/posts' }), floor);
    record(
      'POST /posts',
      await cannon({
        path: '/posts',
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ title: 'Bench', body: 'Body '.repeat(40) }),
      }),
      floor,
    );
  }

  const hash = await hashFloor();
  record(
    'POST /auth/token (password)',
    await cannon({
      path: '/auth/token',
      method: 'POST',
      connections: LOGIN_CONNECTIONS,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: me, password: PASSWORD }).toString(),
    }),
    hash,
  );

  if (!LOGIN_ONLY) {
    // Refresh: every connection follows its own rotation chain (a shared pool
    // of live refresh tokens: each response puts its successor back).
    const pool: string[] = [];
    for (let i = 0; i < CONNECTIONS * 2; i++) pool.push((await login(me)).refresh_token);
    const chain = refreshRequest(() => pool.shift(), (b) => pool.push(b.refresh_token!));
    record('POST /auth/token (refresh)', await cannon({ requests: [chain] }), floor);
  }

  // /users/me while a login storm hashes: the event loop must stay free.
  const [meStorm, storm] = await Promise.all([
    cannon({ path: '/users/me', headers: auth }),
    cannon({
      path: '/auth/token',
      method: 'POST',
      connections: 64,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: me, password: PASSWORD }).toString(),
    }),
  ]);
  record('GET /users/me during a login storm', meStorm, meIdle, `p99 target < 50 ms`);
  record('POST /auth/token during the storm (64 conns)', storm, hash);

  let memory: Record<string, number> | undefined;
  if (args.memory && WORKERS === 1) memory = await memoryRun(me);

  await stopService();
  const seconds = Math.round((Date.now() - started) / 1000);
  printTable(seconds, memory);
}

/** RSS after 100 000 refreshes and 20 000 logouts against RSS after the first 1 000. */
async function memoryRun(username: string): Promise<Record<string, number>> {
  log('memory: 100 000 refreshes and 20 000 logouts');
  const chains: string[] = [];
  for (let i = 0; i < 20; i++) chains.push((await login(username)).refresh_token);
  const refreshes = async (amount: number) => {
    const r = await autocannon({
      url: base,
      connections: 20,
      amount,
      requests: [refreshRequest(() => chains.shift(), (b) => chains.push(b.refresh_token!))],
    });
    return r.non2xx + r.errors;
  };
  let errors = await refreshes(1000);
  await new Promise((r) => setTimeout(r, 1000));
  const rssFirst = serviceRssKiB();
  errors += await refreshes(99_000);

  // 20 000 sessions made directly in the database (20 000 logins would
  // measure argon2 for seven minutes), each refreshed once over HTTP for an
  // access token, then logged out over HTTP: 20 000 revoked sessions and jtis.
  const userId = (await http.get('/users/me', (await login(username)).access_token)).body.id as string;
  const refreshTokens = await seedSessions(userId, username, 20_000);
  const access: string[] = [];
  const r1 = await autocannon({
    url: base,
    connections: 20,
    amount: refreshTokens.length,
    requests: [refreshRequest(() => refreshTokens.pop(), (b) => access.push(b.access_token!))],
  });
  const r2 = await autocannon({
    url: base,
    connections: 20,
    amount: access.length,
    requests: [
      {
        method: 'POST',
        path: '/auth/logout',
        setupRequest: (req) => ({ ...req, headers: { authorization: `Bearer ${access.pop() ?? ''}` } }),
      },
    ],
  });
  errors += r1.non2xx + r1.errors + r2.non2xx + r2.errors;
  await new Promise((r) => setTimeout(r, 1000));
  const rssEnd = serviceRssKiB();
  const ratio = Number((rssEnd / rssFirst).toFixed(3));
  log(`memory: RSS ${Math.round(rssFirst / 1024)} MiB after 1 000 refreshes → ${Math.round(rssEnd / 1024)} MiB after 100 000 refreshes + 20 000 logouts (×${ratio}, errors ${errors})`);
  return { rssAfter1kMiB: Math.round(rssFirst / 1024), rssAfterAllMiB: Math.round(rssEnd / 1024), ratio, errors };
}

/**
 * n live sessions with known refresh tokens. On the server they are inserted
 * in bulk; the embedded database belongs to the service process, so there
 * they come from real logins (argon2: fewer of them).
 */
async function seedSessions(userId: string, username: string, n: number): Promise<string[]> {
  if (!db) {
    const m = Math.min(n, 1000);
    log(`memory: embedded database: ${m} sessions by login instead of ${n} inserted`);
    const out: string[] = [];
    for (let i = 0; i < m; i++) out.push((await login(username)).refresh_token);
    return out;
  }
  const tokens = Array.from({ length: n }, () => 'ghr_' + randomBytes(32).toString('base64url'));
  const now = new Date();
  const exp = new Date(Date.now() + 86_400_000);
  for (let i = 0; i < n; i += 1000) {
    const chunk = tokens.slice(i, i + 1000);
    const ids = chunk.map(() => randomUUID());
    await db.query(
      `INSERT INTO sessions (id, user_id, scope, created_at, last_used_at, expires_at)
       SELECT unnest($1::uuid[]), $2, 'me posts:write', $3, $3, $4`,
      [ids, userId, now, exp],
    );
    await db.query(
      `INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
       SELECT unnest($1::text[]), unnest($2::uuid[]), $3, $4`,
      [chunk.map((t) => createHash('sha256').update(t).digest('base64url')), ids, now, exp],
    );
  }
  return tokens;
}

function printTable(seconds: number, memory?: Record<string, number>) {
  const header = ['scenario', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'ratio', 'to'];
  const lines = rows.map((r) => [r.name, String(r.rps), String(r.p50), String(r.p99), String(r.errors), r.ratio?.toFixed(2) ?? '', r.floor ?? '']);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  const machine = `${cpus().length} × ${cpus()[0]?.model.trim()}, Node ${process.version}`;
  const seeded = Number(args.seed);
  const db = (process.env.DATABASE_URL ? 'PostgreSQL server' : 'embedded PGlite') + (seeded ? `, seeded with ${seeded} users and ${seeded} posts` : '');
  console.log(`\nGatehouse bench: ${WORKERS} worker(s), ${db}, ${DURATION} s × ${CONNECTIONS} connections per scenario; ${machine}\n`);
  console.log(fmt(header));
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const l of lines) console.log(fmt(l));
  if (layers) {
    console.log(`\nguard layers: the denylist check costs ${(layers.denylistCost * 100).toFixed(1)} % of verified-token throughput; the user-state check (and profile) ${(layers.userStateCost * 100).toFixed(1)} % more`);
  }
  if (memory) {
    console.log(`\nmemory: RSS ${memory.rssAfter1kMiB} MiB after 1 000 refreshes, ${memory.rssAfterAllMiB} MiB after 100 000 refreshes + 20 000 logouts: ×${memory.ratio} (target ≤ 1.5)`);
  }
  const out = args.out ?? join('bench', 'results', `bench-${new Date().toISOString().replace(/[:.]/g, '-')}-w${WORKERS}.json`);
  mkdirSync(join(out, '..'), { recursive: true });
  writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), machine, workers: WORKERS, database: db, duration: DURATION, connections: CONNECTIONS, seconds, rows, layers, memory, plans }, null, 2));
  console.log(`\nwritten: ${out} (whole run ${seconds} s)`);
  // A scenario that answered errors measured the price of an error, and so does every ratio to it.
  const failed = rows.filter((r) => r.errors > 0);
  if (failed.length) {
    console.error(`\nbench: INVALID, errors in: ${failed.map((r) => `${r.name} (${r.errors})`).join(', ')}; their figures and every ratio to them are not the service's`);
    process.exitCode = 1;
  }
}

main().catch(async (err) => {
  console.error(`bench failed: ${(err as Error).stack ?? err}`);
  await stopService().catch(() => {});
  process.exit(1);
});
