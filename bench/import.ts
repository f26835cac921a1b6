// npm run bench:import [-- --rows 1000000 --small 100000 --format csv,json]
//
// import-users on a generated export of the FastAPI tutorial's users
// (every row the tutorial's bcrypt hash of "secret"; one in ten disabled),
// into a fresh database each time: the PostgreSQL server's when
// DATABASE_URL is set (a database of its own, dropped afterwards), else the
// embedded PGlite under a temporary DATA_DIR. The compiled CLI runs as a
// child under /usr/bin/time, which gives its peak RSS.
//
// Reported, per format: rows/s; the same as a ratio to the baseline measured
// in the same run on the same backend, an INSERT … SELECT generate_series of
// as many rows straight into a fresh users table (PostgreSQL's own floor for
// those rows and indexes, with no file, parsing or client in between); and
// peak RSS at --rows ÷ at --small rows (≈ 1: memory does not grow with the file).
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { openDatabase } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import { authMigrations } from '../src/auth/migrations.js';
import { createServerDatabase } from '../test/helpers.js';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    small: { type: 'string', default: '100000' },
    format: { type: 'string', default: 'csv,json' },
  },
});
const ROWS = Number(args.rows);
const SMALL = Number(args.small);
const FORMATS = args.format.split(',') as Array<'csv' | 'json'>;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HASH = '$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW';
const SECRET = 'bench-secret-key-that-is-long-enough-0123456789';
const log = (msg: string) => process.stderr.write(`bench:import: ${msg}\n`);
const server = !!process.env.DATABASE_URL;

async function generate(path: string, format: 'csv' | 'json', rows: number): Promise<void> {
  const out = createWriteStream(path);
  const write = async (s: string) => {
    if (!out.write(s)) await once(out, 'drain');
  };
  await write(format === 'csv' ? 'username,email,full_name,hashed_password,disabled\n' : '[\n');
  for (let i = 1; i <= rows; i++) {
    const name = `user${String(i).padStart(7, '0')}`;
    const disabled = i % 10 === 0;
    if (format === 'csv') await write(`${name},${name}@example.com,User ${i},${HASH},${disabled}\n`);
    else await write(`${i > 1 ? ',\n' : ''}{"username":"${name}","email":"${name}@example.com","full_name":"User ${i}","hashed_password":"${HASH}","disabled":${disabled}}`);
  }
  await write(format === 'csv' ? '' : '\n]\n');
  out.end();
  await once(out, 'finish');
}

/** A fresh, migrated database: its environment for the CLI, and how to drop it. */
async function freshDatabase(): Promise<{ env: Record<string, string>; url?: string; drop: () => Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-import-'));
  if (server) {
    const { url, drop } = await createServerDatabase();
    return { env: { DATABASE_URL: url, DATA_DIR: dataDir }, url, drop: async () => (await drop(), rmSync(dataDir, { recursive: true, force: true })) };
  }
  return { env: { DATA_DIR: dataDir }, drop: async () => rmSync(dataDir, { recursive: true, force: true }) };
}

/** The compiled CLI under /usr/bin/time: seconds and peak RSS (MB). */
async function runImport(file: string, env: Record<string, string>): Promise<{ seconds: number; rssMb: number; summary: string }> {
  const child = spawn('/usr/bin/time', ['-f', 'maxrss_kb=%M', process.execPath, join(ROOT, 'dist', 'cli.js'), 'import-users', file], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_ENV: 'development', SECRET_KEY: SECRET, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let tail = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (tail = (tail + d.toString()).slice(-4000)));
  const t0 = performance.now();
  const [code] = (await once(child, 'close')) as [number];
  const seconds = (performance.now() - t0) / 1000;
  const rss = /maxrss_kb=(\d+)/.exec(tail);
  if (code !== 0 || !rss) throw new Error(`import-users exited ${code}: ${stdout} ${tail}`);
  return { seconds, rssMb: Number(rss[1]) / 1024, summary: stdout.trim() };
}

/** PostgreSQL's floor: the same number of rows inserted by one statement, generated in the server. */
async function baseline(rows: number): Promise<number> {
  const fresh = await freshDatabase();
  const db = await openDatabase({ databaseUrl: fresh.url, dataDir: fresh.env.DATA_DIR!, poolSize: 1 });
  try {
    await migrate(db, [authMigrations]);
    const t0 = performance.now();
    await db.query(
      `INSERT INTO users (id, username, email, full_name, password_hash, role, disabled, created_at, updated_at)
       SELECT gen_random_uuid(), 'user' || lpad(i::text, 7, '0'), 'user' || lpad(i::text, 7, '0') || '@example.com',
              'User ' || i, $1, 'user', i % 10 = 0, now(), now()
       FROM generate_series(1, $2::int) AS i`,
      [HASH, rows],
    );
    return (performance.now() - t0) / 1000;
  } finally {
    await db.close();
    await fresh.drop();
  }
}

async function measure(format: 'csv' | 'json', rows: number, dir: string) {
  const file = join(dir, `users-${rows}.${format}`);
  await generate(file, format, rows);
  const fresh = await freshDatabase();
  try {
    const r = await runImport(file, fresh.env);
    if (r.summary !== `imported ${rows}, skipped 0, bad 0`) throw new Error(`unexpected summary: ${r.summary}`);
    return { ...r, mb: statSync(file).size / 1e6 };
  } finally {
    await fresh.drop();
    rmSync(file, { force: true });
  }
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-files-'));
  log(`backend: ${server ? 'PostgreSQL server (DATABASE_URL)' : 'embedded PGlite'}; ${ROWS} rows (and ${SMALL} for the memory ratio)`);
  try {
    const base = await baseline(ROWS);
    log(`baseline: INSERT … SELECT generate_series(1, ${ROWS}): ${base.toFixed(1)} s = ${Math.round(ROWS / base)} rows/s`);
    for (const format of FORMATS) {
      const small = await measure(format, SMALL, dir);
      const big = await measure(format, ROWS, dir);
      const rate = ROWS / big.seconds;
      log(
        `${format}: ${ROWS} rows (${big.mb.toFixed(0)} MB) in ${big.seconds.toFixed(1)} s = ${Math.round(rate)} rows/s ` +
          `(${(rate / (ROWS / base)).toFixed(2)} × the baseline); peak RSS ${big.rssMb.toFixed(0)} MB at ${ROWS} rows, ` +
          `${small.rssMb.toFixed(0)} MB at ${SMALL} (ratio ${(big.rssMb / small.rssMb).toFixed(2)})`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
