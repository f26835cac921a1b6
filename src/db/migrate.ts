// Migrations per owner. Each owner (the auth core, the blog, a host app's
// own) has a folder of NNN_name.sql files, numbered from 001 on its own, a
// bookkeeping table `<owner>_schema_migrations`, and a PostgreSQL advisory
// lock whose key is derived from its name: nodes starting together apply
// each migration exactly once, and one owner's run never waits for
// another's. Each migration runs in its own transaction.
//
// Before owners, one sequence (001_users, 002_sessions, 003_posts,
// 004_active_admins_index) was recorded in `schema_migrations` under the
// lock key 0x6761746568 ("gateh" in ASCII). A set's `legacy` map names the
// rows of that table it takes over: when its own table is created, those
// rows are copied into it (same applied_at), so an existing deployment runs
// nothing again. `schema_migrations` itself is left as it was: a node of the
// previous version started against the database still finds all it knows
// applied, and does nothing.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Database, Queryable } from './client.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export interface MigrationSet {
  /** Names the bookkeeping table and the lock key: lower case letters, digits, `_`. */
  owner: string;
  /** The folder of NNN_name.sql files (a file: URL or a path). */
  dir: string | URL;
  /** Advisory lock key (a signed 64-bit integer); derived from `owner` when absent. */
  lockKey?: bigint;
  /** Sets whose migrations must be applied first (this set's SQL uses their tables). */
  requires?: readonly MigrationSet[];
  /** Rows of the old single `schema_migrations` taken over: old file name → version in this set. */
  legacy?: Readonly<Record<string, number>>;
}

const OWNER_RE = /^[a-z][a-z0-9_]{0,39}$/;
const FILE_RE = /^(\d+)_[\w-]+\.sql$/;

export const bookkeepingTable = (owner: string) => `${owner}_schema_migrations`;

/** The first 8 bytes of SHA-256("gatehouse migrations " + owner), as a signed 64-bit key. */
export function lockKeyOf(owner: string): bigint {
  const digest = createHash('sha256').update(`gatehouse migrations ${owner}`).digest();
  return digest.readBigInt64BE(0);
}

export function loadMigrations(dir: string | URL): Migration[] {
  const path = typeof dir === 'string' ? dir : fileURLToPath(dir);
  return readdirSync(path)
    .filter((f) => FILE_RE.test(f))
    .sort()
    .map((f) => ({ version: Number(FILE_RE.exec(f)![1]), name: f, sql: readFileSync(join(path, f), 'utf8') }));
}

/** `sets` and, before each, the sets it requires; each once, in that order. */
function inOrder(sets: readonly MigrationSet[], out: MigrationSet[] = []): MigrationSet[] {
  for (const set of sets) {
    if (out.includes(set)) continue;
    inOrder(set.requires ?? [], out);
    if (out.some((s) => s.owner === set.owner)) throw new Error(`two migration sets are named ${set.owner}`);
    out.push(set);
  }
  return out;
}

/**
 * Applies what is pending in `sets` (and in the sets they require, first).
 * Returns the migrations this call applied, as `owner/NNN_name.sql`.
 */
export async function migrate(db: Database, sets: MigrationSet | readonly MigrationSet[]): Promise<string[]> {
  const applied: string[] = [];
  for (const set of inOrder(Array.isArray(sets) ? sets : [sets as MigrationSet])) {
    if (!OWNER_RE.test(set.owner)) throw new Error(`migration owner ${JSON.stringify(set.owner)} is not a lower-case identifier`);
    const names = await migrateOne(db, set, loadMigrations(set.dir));
    applied.push(...names.map((n) => `${set.owner}/${n}`));
  }
  return applied;
}

async function migrateOne(db: Database, set: MigrationSet, migrations: Migration[]): Promise<string[]> {
  const table = bookkeepingTable(set.owner);
  const key = String(set.lockKey ?? lockKeyOf(set.owner));
  return db.withConnection(async (conn) => {
    await conn.query('SELECT pg_advisory_lock($1::bigint)', [key]);
    try {
      await createBookkeeping(conn, table, set, migrations);
      const done = new Set((await conn.query<{ version: number }>(`SELECT version FROM ${table}`)).rows.map((r) => r.version));
      const applied: string[] = [];
      for (const m of migrations) {
        if (done.has(m.version)) continue;
        await inTransaction(conn, `migration ${set.owner}/${m.name}`, async () => {
          await conn.exec(m.sql);
          await conn.query(`INSERT INTO ${table} (version, name) VALUES ($1, $2)`, [m.version, m.name]);
        });
        applied.push(m.name);
      }
      return applied;
    } finally {
      await conn.query('SELECT pg_advisory_unlock($1::bigint)', [key]);
    }
  });
}

async function inTransaction(conn: Queryable, what: string, fn: () => Promise<void>): Promise<void> {
  await conn.query('BEGIN');
  try {
    await fn();
    await conn.query('COMMIT');
  } catch (err) {
    await conn.query('ROLLBACK');
    throw new Error(`${what} failed: ${(err as Error).message}`, { cause: err });
  }
}

/** Creates the owner's table if missing, with the rows it takes over from `schema_migrations`. */
async function createBookkeeping(conn: Queryable, table: string, set: MigrationSet, migrations: Migration[]): Promise<void> {
  const exists = await conn.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [table]);
  if (exists.rows[0]!.t !== null) return;
  await inTransaction(conn, `creating ${table}`, async () => {
    await conn.exec(`CREATE TABLE ${table} (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    for (const row of await legacyRows(conn, set, migrations)) {
      await conn.query(`INSERT INTO ${table} (version, name, applied_at) VALUES ($1, $2, $3)`, [row.version, row.name, row.appliedAt]);
    }
  });
}

/** This set's versions recorded as applied in the old `schema_migrations`, if that table is there. */
async function legacyRows(conn: Queryable, set: MigrationSet, migrations: Migration[]) {
  const legacy = set.legacy ?? {};
  if (!Object.keys(legacy).length) return [];
  // Only the table the old runner made (a host's own schema_migrations may have other columns).
  const cols = await conn.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = 'schema_migrations'
        AND column_name IN ('version', 'name', 'applied_at')`,
  );
  if (cols.rows[0]!.n !== 3) return [];
  const old = await conn.query<{ version: number; name: string; applied_at: Date }>('SELECT version, name, applied_at FROM schema_migrations');
  return old.rows
    .filter((r) => Object.hasOwn(legacy, r.name) && Number(FILE_RE.exec(r.name)?.[1]) === r.version)
    .map((r) => {
      const version = legacy[r.name]!;
      const m = migrations.find((x) => x.version === version);
      if (!m) throw new Error(`${set.owner}: legacy ${r.name} maps to version ${version}, which has no file`);
      return { version, name: m.name, appliedAt: r.applied_at };
    });
}
