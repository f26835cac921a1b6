// Test harness: real HTTP against a listening app, on PGlite (always) and on
// the PostgreSQL server (when DATABASE_URL is set), each run in a database
// of its own that is dropped afterwards.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { buildApp, type BuildDeps, type Gatehouse } from '../src/app.js';
import { MovableClock } from '../src/clock.js';
import { loadConfig, type Config } from '../src/config.js';
import { openPglite, openPostgres, type Database } from '../src/db/client.js';
import { HttpClient } from './http-client.js';
import { migrate } from '../src/db/migrate.js';
import { authMigrations } from '../src/auth/migrations.js';
import { blogMigrations } from '../src/posts/migrations.js';

export type BackendName = 'pglite' | 'postgres';

/** The backends this run can test: PGlite always, the server when DATABASE_URL is set. */
export function backends(): BackendName[] {
  return process.env.DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];
}

export const hasServer = () => !!process.env.DATABASE_URL;
export const hasRedis = () => !!process.env.REDIS_URL;

/** A fresh database on the PostgreSQL server; `drop()` removes it. */
export async function createServerDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const base = process.env.DATABASE_URL;
  if (!base) throw new Error('DATABASE_URL is not set');
  const creator = creatorOf(new Error().stack);
  // scripts/test.mjs names its run, drops what a run left behind and says which file left it.
  const name = `gh_test_${process.env.GH_TEST_RUN ?? 'x'}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.query(`COMMENT ON DATABASE ${name} IS ${pg.escapeLiteral(creator)}`);
  await admin.end();
  const u = new URL(base);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** The test file (and line) that asked for a database, from a stack trace. */
function creatorOf(stack = ''): string {
  const frame = stack.split('\n').find((l) => /\.test\.ts:\d+/.test(l));
  return frame?.match(/(test\/[^/]+\.test\.ts:\d+)/)?.[1] ?? 'unknown';
}

export interface TestDatabase {
  db: Database;
  /** For the server: the URL of this test's own database (other nodes connect to it). */
  url?: string;
  close(): Promise<void>;
}

// Creating a PGlite instance costs seconds; loading a snapshot of a migrated
// one costs a fraction of that. One template per test process.
let template: Promise<Blob | File> | undefined;
function pgliteTemplate(): Promise<Blob | File> {
  template ??= (async () => {
    const db = await openPglite('memory://');
    await migrate(db, [authMigrations, blogMigrations]);
    const snap = await db.dump!();
    await db.close();
    return snap;
  })();
  return template;
}

export async function openTestDatabase(backend: BackendName): Promise<TestDatabase> {
  if (backend === 'pglite') {
    const db = await openPglite('memory://', { loadDataDir: await pgliteTemplate() });
    return { db, close: () => db.close() };
  }
  const { url, drop } = await createServerDatabase();
  const db = await openPostgres(url);
  return {
    db,
    url,
    close: async () => {
      try {
        await db.close();
      } finally {
        await drop();
      }
    },
  };
}

export const TEST_SECRET = 'test-secret-key-that-is-long-enough-0123456789';

/** Config as the service would load it, with test defaults and overrides. */
export function testConfig(env: Record<string, string | undefined> = {}): Config {
  const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-test-'));
  return loadConfig({
    NODE_ENV: 'test',
    SECRET_KEY: TEST_SECRET,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    // Tests running at once share one Redis: keep their keys and channels apart.
    REDIS_PREFIX: `ghtest:${randomBytes(4).toString('hex')}:`,
    // Generous limits: tests of the limits themselves set their own.
    RATE_LIMIT_TOKEN_PER_MINUTE: '100000',
    RATE_LIMIT_REGISTER_PER_HOUR: '100000',
    RATE_LIMIT_FAILED_LOGINS_PER_ACCOUNT: '100000',
    ...env,
  });
}

export { HttpClient, type Res } from './http-client.js';

export interface TestApp extends Gatehouse {
  url: string;
  clock: MovableClock;
  http: HttpClient;
  close(): Promise<void>;
}

/**
 * Starts a listening app. With `db` it joins that database (another node);
 * otherwise it opens a fresh one for `backend` and drops it on close.
 */
export async function startApp(
  opts: {
    backend?: BackendName;
    env?: Record<string, string | undefined>;
    db?: TestDatabase;
    clock?: MovableClock;
    logger?: unknown;
    /** Plugin options over the configuration's (buildApp's `options`). */
    options?: BuildDeps['options'];
    /** Listen on this port (when PUBLIC_URL must name it); default: any free one. */
    port?: number;
  } = {},
): Promise<TestApp> {
  const own = opts.db ? undefined : await openTestDatabase(opts.backend ?? 'pglite');
  const tdb = opts.db ?? own!;
  const env = { ...opts.env };
  if (tdb.url && !('DATABASE_URL' in env)) env.DATABASE_URL = tdb.url;
  // Nodes sharing a database share a Redis namespace; other tests' nodes do not.
  if (tdb.url && !('REDIS_PREFIX' in env)) env.REDIS_PREFIX = `ghtest:${new URL(tdb.url).pathname.slice(1)}:`;
  if (!('REDIS_URL' in env)) env.REDIS_URL = undefined;
  const clock = opts.clock ?? new MovableClock();
  let config: Config;
  let gh: Gatehouse;
  try {
    // A refused configuration too must not leave this test's database open (it would keep the process alive).
    config = testConfig(env);
    gh = await buildApp(config, { db: tdb.db, clock, logger: opts.logger as never, options: opts.options });
  } catch (err) {
    await own?.close();
    throw err;
  }
  const address = await gh.app.listen({ host: '127.0.0.1', port: opts.port ?? 0 });
  return {
    ...gh,
    url: address,
    clock,
    http: new HttpClient(address),
    close: async () => {
      try {
        await gh.app.close();
      } finally {
        await own?.close();
        rmSync(config.dataDir, { recursive: true, force: true });
      }
    },
  };
}

export const STRONG_PASSWORD = 'plum-Anchor-47-velvet';

let counter = 0;
/** A unique, valid username for this process. */
export function uniqueName(prefix = 'user'): string {
  return `${prefix}${process.pid % 10000}_${++counter}`;
}

export interface LoggedIn {
  id: string;
  username: string;
  email: string;
  password: string;
  access: string;
  refresh: string;
  scope: string;
}

export async function registerUser(http: HttpClient, username = uniqueName(), password = STRONG_PASSWORD) {
  const email = `${username}@example.com`;
  const r = await http.post('/auth/register', { username, email, password });
  if (r.status !== 201) throw new Error(`register failed: ${r.status} ${r.text}`);
  return { id: r.body.id as string, username, email, password };
}

export async function login(http: HttpClient, username: string, password = STRONG_PASSWORD, scope?: string) {
  const form: Record<string, string> = { grant_type: 'password', username, password };
  if (scope !== undefined) form.scope = scope;
  const r = await http.token(form);
  if (r.status !== 200) throw new Error(`login failed: ${r.status} ${r.text}`);
  return { access: r.body.access_token as string, refresh: r.body.refresh_token as string, scope: r.body.scope as string };
}

export async function registerAndLogin(http: HttpClient, username = uniqueName(), scope?: string): Promise<LoggedIn> {
  const u = await registerUser(http, username);
  return { ...u, ...(await login(http, username, u.password, scope)) };
}

/** Makes a user an admin directly in the database (as the CLI does) and logs in again. */
export async function makeAdmin(app: TestApp, user: LoggedIn, scope?: string): Promise<LoggedIn> {
  await app.core.db.query(`UPDATE users SET role = 'admin' WHERE id = $1`, [user.id]);
  await app.core.userStates.changed(user.id);
  return { ...user, ...(await login(app.http, user.username, user.password, scope)) };
}

/** Polls until `check` returns true or the time is up. */
export async function eventually(check: () => Promise<boolean>, ms = 1000, step = 20): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, step));
  }
}

/**
 * Waits (up to 10 s) until every node's event bus is healthy. Only then does a
 * node answer from its caches until an event clears them; before, it asks
 * PostgreSQL every time, and a test of event propagation would pass without
 * any event.
 */
export const busesHealthy = (...apps: TestApp[]) => eventually(async () => apps.every((x) => x.core.bus.healthy), 10_000, 25);
