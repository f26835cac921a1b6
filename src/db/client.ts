// One small interface over the PostgreSQL server (pg pool) and embedded
// PostgreSQL (PGlite): same SQL, same migrations, same parameters ($1…).
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

export interface Queryable {
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<QueryResult<R>>;
  /** Runs a script of several statements (migrations); no parameters. */
  exec(script: string): Promise<void>;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** PostgreSQL only: the server's URL, for connections of their own (LISTEN). */
  readonly url?: string;
  /** PGlite only: a snapshot of the whole data directory (tests clone a migrated template). */
  dump?(): Promise<Blob | File>;
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Runs fn on one dedicated connection (needed for session-level advisory locks). */
  withConnection<T>(fn: (conn: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export class DataDirLockedError extends Error {
  constructor(readonly dataDir: string, readonly pid: number) {
    super(
      `The embedded database in ${dataDir} is in use by process ${pid} (one process at a time); stop it, or set DATABASE_URL to use a PostgreSQL server.`,
    );
    this.name = 'DataDirLockedError';
  }
}

// pg returns int8 as a string; counts here fit in a double. Our pools only:
// pg's global parsers belong to whoever else uses pg in the process.
const INT8 = 20;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8 && format !== 'binary' ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

// Parameterised statements are prepared once per connection under a name
// derived from their text: PostgreSQL then plans them once instead of on
// every call (planning was most of the database time of the hot queries).
const statementNames = new Map<string, string>();
function statementName(text: string): string {
  let name = statementNames.get(text);
  if (!name) {
    name = 'gh_' + createHash('sha1').update(text).digest('hex').slice(0, 20);
    statementNames.set(text, name);
  }
  return name;
}

// A prepared statement whose result shape changed under it (a migration
// added a column to a table it reads with *): run it unprepared instead.
const isStalePlan = (err: unknown) => (err as { code?: string }).code === '0A000';

async function run(client: pg.Pool | pg.PoolClient, text: string, params?: unknown[]) {
  if (!params?.length) return client.query(text);
  try {
    return await client.query({ name: statementName(text), text, values: params });
  } catch (err) {
    if (!isStalePlan(err)) throw err;
    return client.query(text, params);
  }
}

export async function openPostgres(url: string, max = 10): Promise<Database> {
  const pool = new pg.Pool({ connectionString: url, max, idleTimeoutMillis: 30_000, connectionTimeoutMillis: 5_000, types });
  // An idle client losing its connection must not crash the process.
  pool.on('error', () => {});
  const db: Database = {
    kind: 'postgres',
    url,
    async query<R>(text: string, params?: unknown[]) {
      const r = await run(pool, text, params);
      return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
    },
    async exec(script: string) {
      await pool.query(script);
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>) {
      return db.withConnection(async (conn) => {
        await conn.query('BEGIN');
        try {
          const out = await fn(conn);
          await conn.query('COMMIT');
          return out;
        } catch (err) {
          await conn.query('ROLLBACK').catch(() => {});
          throw err;
        }
      });
    },
    async withConnection<T>(fn: (conn: Queryable) => Promise<T>) {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        return await fn({
          async query<R>(text: string, params?: unknown[]) {
            const r = await run(client, text, params);
            return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
          },
          async exec(script: string) {
            await client.query(script);
          },
        });
      } catch (err) {
        broken = err as Error;
        throw err;
      } finally {
        // Only an error without a `code` discards the connection: pg's own
        // "Connection terminated…", or any error thrown by fn itself. An error
        // with a code goes back to the pool with its connection: a PostgreSQL
        // error (SQLSTATE; transaction() has rolled back, and a session lock
        // is its holder's to release, as migrate() does in a finally) and a
        // socket error (ECONNRESET…), whose dead client pg-pool drops anyway
        // because it is no longer queryable.
        client.release(broken && !(broken as { code?: string }).code ? broken : undefined);
      }
    },
    async close() {
      await pool.end();
    },
  };
  return db;
}

/**
 * Embedded PostgreSQL. `dataDir` of 'memory://' keeps everything in memory
 * (tests). A directory is locked with a pid file, because two processes
 * opening the same PGlite directory would corrupt it.
 */
/**
 * The embedded database holds every password hash and address: its folder
 * is the owner's alone. Created 0700 (others cannot even traverse it, so
 * the 0666 files PGlite's file system layer makes inside stay private);
 * refused when group or others may write it (someone could have planted or
 * swapped files); what others could read or write already is closed; and
 * the process's new files default to 0600 (umask 077).
 */
export function secureDataDir(dataDir: string): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const mode = statSync(dataDir).mode & 0o777;
  if (mode & 0o022) {
    throw new Error(`DATA_DIR ${dataDir} is writable by other users (mode ${mode.toString(8)}); run: chmod 700 ${dataDir}`);
  }
  process.umask(0o077);
  closeToOthers(dataDir);
}

function closeToOthers(path: string): void {
  const st = statSync(path);
  if (st.mode & 0o077) chmodSync(path, st.mode & 0o700);
  if (st.isDirectory()) for (const name of readdirSync(path)) closeToOthers(join(path, name));
}

export async function openPglite(dataDir: string, opts: { loadDataDir?: Blob | File } = {}): Promise<Database> {
  const { PGlite } = await import('@electric-sql/pglite');
  let release = () => {};
  let dbPath = dataDir;
  if (!dataDir.startsWith('memory://')) {
    secureDataDir(dataDir);
    release = lockDataDir(dataDir);
    dbPath = join(dataDir, 'pgdata');
  }
  let lite: InstanceType<typeof PGlite>;
  try {
    lite = await PGlite.create(dbPath, opts.loadDataDir ? { loadDataDir: opts.loadDataDir } : {});
    // PGlite makes its files 0666 whatever the umask: close the ones it just made.
    if (!dataDir.startsWith('memory://')) closeToOthers(dataDir);
  } catch (err) {
    release();
    throw err;
  }
  const wrap = (q: Pick<typeof lite, 'query' | 'exec'>): Queryable => ({
    async query<R>(text: string, params?: unknown[]) {
      const r = await q.query<R>(text, params);
      return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
    },
    async exec(script: string) {
      await q.exec(script);
    },
  });
  const base = wrap(lite);
  return {
    kind: 'pglite',
    dump: () => lite.dumpDataDir('none'),
    query: base.query,
    exec: base.exec,
    transaction: (fn) => lite.transaction((tx) => fn(wrap(tx))),
    // PGlite is a single connection: session state is shared by construction.
    withConnection: (fn) => fn(base),
    async close() {
      await lite.close();
      release();
    },
  };
}

function lockDataDir(dataDir: string): () => void {
  const file = join(dataDir, 'gatehouse.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (pid && pid !== process.pid && isAlive(pid)) throw new DataDirLockedError(dataDir, pid);
      rmSync(file, { force: true }); // stale lock from a process that died
    }
  }
  throw new DataDirLockedError(dataDir, 0);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function openDatabase(opts: { databaseUrl?: string; dataDir: string; poolSize?: number }): Promise<Database> {
  return opts.databaseUrl ? openPostgres(opts.databaseUrl, opts.poolSize) : openPglite(opts.dataDir);
}
