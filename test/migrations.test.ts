// Migrations per owner: the auth core's and the blog's are separate
// sequences, each with its own bookkeeping table and advisory lock. A second
// run applies nothing; a database migrated by the old single-sequence runner
// is taken over without running anything again; nodes that start together
// apply each migration once.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { authMigrations } from '../src/auth/migrations.js';
import { openPglite, openPostgres, type Database, type Queryable } from '../src/db/client.js';
import { bookkeepingTable, loadMigrations, lockKeyOf, migrate, type MigrationSet } from '../src/db/migrate.js';
import { blogMigrations } from '../src/posts/migrations.js';
import { backends, createServerDatabase, hasServer, type BackendName } from './helpers.js';

const SETS = [authMigrations, blogMigrations];
const ALL = SETS.flatMap((s) => loadMigrations(s.dir).map((m) => `${s.owner}/${m.name}`));
const BOOKKEEPING = ['auth_schema_migrations', 'blog_schema_migrations', 'schema_migrations'];

/** The old runner's sequence (before owners), as each file is now named. */
const OLD = [
  { version: 1, name: '001_users.sql', now: 'auth/001_users.sql' },
  { version: 2, name: '002_sessions.sql', now: 'auth/002_sessions.sql' },
  { version: 3, name: '003_posts.sql', now: 'blog/001_posts.sql' },
  { version: 4, name: '004_active_admins_index.sql', now: 'auth/003_active_admins_index.sql' },
];
/** Migrations of the auth set newer than the old runner: applied when it takes over. */
const AFTER_OLD = ALL.filter((n) => n.startsWith('auth/') && !OLD.some((m) => m.now === n));
const MIGRATIONS_ROOT = fileURLToPath(new URL('../migrations/', import.meta.url));
const LONG_AGO = new Date('2024-01-02T03:04:05.000Z');

/** What the old runner left behind after applying its first `upTo` migrations. */
async function migrateTheOldWay(db: Queryable, upTo = OLD.length): Promise<void> {
  await db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
  for (const m of OLD.slice(0, upTo)) {
    const [dir, file] = m.now.split('/') as [string, string];
    const sql = loadMigrations(join(MIGRATIONS_ROOT, dir)).find((x) => x.name === file)!.sql;
    await db.exec(sql);
    await db.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, LONG_AGO]);
  }
}

/** Everything a migration could change, in a stable order (bookkeeping tables apart). */
async function schemaOf(db: Queryable): Promise<string> {
  const columns = await db.query(
    `SELECT table_name, column_name, data_type, is_nullable, column_default
       FROM information_schema.columns WHERE table_schema = 'public' AND NOT table_name = ANY ($1)
      ORDER BY table_name, column_name`,
    [BOOKKEEPING],
  );
  const indexes = await db.query(
    `SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND NOT tablename = ANY ($1) ORDER BY indexname`,
    [BOOKKEEPING],
  );
  const constraints = await db.query(
    `SELECT c.conrelid::regclass::text AS tbl, c.conname, pg_get_constraintdef(c.oid) AS def
       FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
      WHERE n.nspname = 'public' AND NOT c.conrelid::regclass::text = ANY ($1) ORDER BY tbl, c.conname`,
    [BOOKKEEPING],
  );
  return JSON.stringify({ columns: columns.rows, indexes: indexes.rows, constraints: constraints.rows });
}

const tableExists = async (db: Queryable, name: string) =>
  (await db.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [name])).rows[0]!.t !== null;

async function bookkeeping(db: Queryable, owner: string) {
  const r = await db.query<{ version: number; name: string; applied_at: Date }>(
    `SELECT version, name, applied_at FROM ${bookkeepingTable(owner)} ORDER BY version`,
  );
  return r.rows;
}

// A PGlite instance costs seconds to create: one per backend for the whole
// file, emptied before each use. Server databases are cheap: one each.
let pglite: Promise<Database> | undefined;
after(async () => (await pglite)?.close());
async function emptyDatabase(backend: BackendName): Promise<{ db: Database; url?: string; close: () => Promise<void> }> {
  if (backend === 'pglite') {
    const db = await (pglite ??= openPglite('memory://'));
    await db.exec('DROP SCHEMA public CASCADE; CREATE SCHEMA public;');
    return { db, close: async () => {} };
  }
  const server = await createServerDatabase();
  const db = await openPostgres(server.url, 2);
  return {
    db,
    url: server.url,
    close: async () => {
      await db.close();
      await server.drop();
    },
  };
}

async function withEmptyDatabase(backend: BackendName, fn: (db: Database, url?: string) => Promise<void>): Promise<void> {
  const t = await emptyDatabase(backend);
  try {
    await fn(t.db, t.url);
  } finally {
    await t.close();
  }
}

describe('migration sets', () => {
  test('each folder holds numbered SQL files, 1, 2, 3… with no gap', () => {
    for (const set of SETS) {
      const versions = loadMigrations(set.dir).map((m) => m.version);
      assert.deepEqual(versions, versions.map((_, i) => i + 1), set.owner);
    }
  });

  test('the old sequence is taken over whole: each old file by exactly one set, as the file it now is', () => {
    const taken = SETS.flatMap((s) => Object.entries(s.legacy ?? {}).map(([old, v]) => ({ old, now: `${s.owner}/${loadMigrations(s.dir)[v - 1]?.name}` })));
    assert.deepEqual(
      taken.sort((a, b) => a.old.localeCompare(b.old)),
      OLD.map((m) => ({ old: m.name, now: m.now })),
    );
  });

  test('lock keys are derived from the owner name, distinct, and stable across releases', () => {
    assert.notEqual(lockKeyOf('auth'), lockKeyOf('blog'));
    assert.equal(lockKeyOf('auth'), lockKeyOf('auth'));
    // Nodes of two releases must agree on the key: it may never change.
    assert.equal(lockKeyOf('auth'), 1483579508107133306n);
    assert.equal(lockKeyOf('blog'), -3579454915977187612n);
    // Neither is the old single sequence's key.
    assert.ok(![lockKeyOf('auth'), lockKeyOf('blog')].includes(0x6761746568n));
  });

  test('an owner name that is not a plain identifier is refused before any SQL', async () => {
    const db = { withConnection: () => assert.fail('no SQL expected') } as unknown as Database;
    await assert.rejects(migrate(db, { owner: 'auth; DROP TABLE users', dir: authMigrations.dir }), /not a lower-case identifier/);
  });
});

describe('migrations', () => {
  for (const backend of backends()) {
    test(`applied twice: the second run applies none and changes nothing; each owner keeps its own book (${backend})`, () =>
      withEmptyDatabase(backend, async (db) => {
        assert.deepEqual(await migrate(db, SETS), ALL, 'a fresh database gets every migration, auth first');
        const before = await schemaOf(db);
        assert.match(before, /users_username_key/);
        assert.match(before, /refresh_tokens/);
        assert.match(before, /posts_author_created_id_idx/);
        assert.deepEqual(await migrate(db, SETS), []);
        assert.deepEqual(await migrate(db, blogMigrations), []);
        assert.equal(await schemaOf(db), before);
        assert.deepEqual(
          (await bookkeeping(db, 'auth')).map((r) => [r.version, r.name]),
          [
            [1, '001_users.sql'],
            [2, '002_sessions.sql'],
            [3, '003_active_admins_index.sql'],
            [4, '004_audit_events.sql'],
          ],
        );
        assert.deepEqual(
          (await bookkeeping(db, 'blog')).map((r) => [r.version, r.name]),
          [[1, '001_posts.sql']],
        );
        assert.equal(await tableExists(db, 'schema_migrations'), false, 'no table of the old runner on a new database');
      }));

    test(`the auth set alone creates the auth tables and no posts table; the blog set adds it (${backend})`, () =>
      withEmptyDatabase(backend, async (db) => {
        assert.deepEqual(await migrate(db, authMigrations), ALL.filter((n) => n.startsWith('auth/')));
        for (const t of ['users', 'sessions', 'refresh_tokens', 'revoked_access_tokens']) assert.ok(await tableExists(db, t), t);
        assert.equal(await tableExists(db, 'posts'), false);
        assert.equal(await tableExists(db, 'blog_schema_migrations'), false);
        assert.deepEqual(await migrate(db, blogMigrations), ['blog/001_posts.sql']);
        assert.ok(await tableExists(db, 'posts'));
      }));

    test(`the blog set alone applies the auth set first, which posts need (${backend})`, () =>
      withEmptyDatabase(backend, async (db) => {
        assert.deepEqual(await migrate(db, blogMigrations), ALL);
      }));

    test(`a database migrated by the old single-table runner is taken over: nothing runs again (${backend})`, async () => {
      let fresh = '';
      await withEmptyDatabase(backend, async (db) => {
        await migrate(db, SETS);
        fresh = await schemaOf(db);
      });
      await withEmptyDatabase(backend, async (db) => {
        await migrateTheOldWay(db);
        const oldBook = (await db.query('SELECT * FROM schema_migrations ORDER BY version')).rows;
        const userId = '00000000-0000-4000-8000-000000000001';
        await db.query(
          `INSERT INTO users (id, username, email, password_hash, created_at, updated_at) VALUES ($1, 'old', 'old@example.com', 'x', now(), now())`,
          [userId],
        );
        await db.query(`INSERT INTO posts (id, author_id, title, body, created_at, updated_at) VALUES ($1, $2, 't', 'b', now(), now())`, [userId, userId]);

        // Every old migration is known as applied: only what came after the old runner runs.
        assert.deepEqual(await migrate(db, SETS), AFTER_OLD);
        assert.equal(await schemaOf(db), fresh, 'the same schema as a new database');
        assert.deepEqual(
          (await bookkeeping(db, 'auth')).slice(0, 3).map((r) => [r.version, r.name, r.applied_at.toISOString()]),
          [
            [1, '001_users.sql', LONG_AGO.toISOString()],
            [2, '002_sessions.sql', LONG_AGO.toISOString()],
            [3, '003_active_admins_index.sql', LONG_AGO.toISOString()],
          ],
        );
        assert.deepEqual(
          (await bookkeeping(db, 'blog')).map((r) => [r.version, r.name, r.applied_at.toISOString()]),
          [[1, '001_posts.sql', LONG_AGO.toISOString()]],
        );
        // The old table stays as it was: a node of the previous release started now still finds all it knows applied.
        assert.deepEqual((await db.query('SELECT * FROM schema_migrations ORDER BY version')).rows, oldBook);
        assert.equal((await db.query('SELECT 1 FROM posts')).rows.length, 1, 'data kept');
        assert.deepEqual(await migrate(db, SETS), []);
      });
    });

    test(`an old database from before 004 gets exactly the index it lacks (${backend})`, () =>
      withEmptyDatabase(backend, async (db) => {
        await migrateTheOldWay(db, 3);
        assert.deepEqual(await migrate(db, SETS), ['auth/003_active_admins_index.sql', ...AFTER_OLD]);
        assert.deepEqual(
          (await bookkeeping(db, 'auth')).map((r) => r.version),
          [1, 2, 3, 4],
        );
      }));

    test(`another tool's schema_migrations table is not mistaken for the old runner's (${backend})`, () =>
      withEmptyDatabase(backend, async (db) => {
        // golang-migrate's shape, as a host app may have it.
        await db.exec('CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL); INSERT INTO schema_migrations VALUES (4, false);');
        assert.deepEqual(await migrate(db, SETS), ALL);
      }));

    test(`a failing migration rolls back whole, is reported by owner and name, and releases the lock (${backend})`, () =>
      withEmptyDatabase(backend, async (db) => {
        const dir = mkdtempSync(join(tmpdir(), 'gatehouse-migrations-'));
        try {
          cpSync(fileURLToPath(authMigrations.dir as URL), dir, { recursive: true });
          writeFileSync(join(dir, '999_broken.sql'), 'CREATE TABLE half_done (id int); SELECT * FROM no_such_table;');
          const broken: MigrationSet = { ...authMigrations, dir };
          await assert.rejects(migrate(db, broken), /auth\/999_broken\.sql/);
          assert.equal(await tableExists(db, 'half_done'), false, 'the failed migration left nothing behind');
          assert.deepEqual(
            (await bookkeeping(db, 'auth')).map((r) => r.version),
            [1, 2, 3, 4],
          );
          // The earlier ones stay applied, and the lock was released: a correct run proceeds.
          assert.deepEqual(await migrate(db, SETS), ['blog/001_posts.sql']);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }));
  }

  const advisoryLocks = (db: Queryable, granted: boolean) =>
    db.query<{ key: string }>(
      `SELECT ((classid::bigint << 32) | objid::bigint)::text AS key FROM pg_locks
        WHERE locktype = 'advisory' AND objsubid = 1 AND granted = $1
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      [granted],
    );

  test('nodes racing on one fresh server database apply each migration exactly once', { skip: !hasServer() && 'needs DATABASE_URL' }, async () => {
    for (let round = 0; round < 3; round++) {
      await withEmptyDatabase('postgres', async (_db, url) => {
        const pools = await Promise.all([0, 1, 2].map(() => openPostgres(url!, 2)));
        try {
          const results = await Promise.all(pools.map((db) => migrate(db, SETS)));
          // Between them, every migration was applied once: no duplicates, none missing, no error.
          assert.deepEqual(results.flat().sort(), [...ALL].sort(), JSON.stringify(results));
          // Each owner's lock serialises its whole run: the first to get it applies all of that owner's.
          for (const owner of ['auth', 'blog']) {
            const appliers = results.filter((r) => r.some((n) => n.startsWith(`${owner}/`)));
            assert.equal(appliers.length, 1, `${owner}: ${JSON.stringify(results)}`);
          }
          for (const set of SETS) {
            assert.deepEqual(
              (await bookkeeping(pools[0]!, set.owner)).map((r) => r.version),
              loadMigrations(set.dir).map((m) => m.version),
            );
          }
          // No advisory lock is left behind on any connection.
          assert.deepEqual((await advisoryLocks(pools[0]!, true)).rows, []);
        } finally {
          await Promise.all(pools.map((p) => p.close()));
        }
      });
    }
  });

  test('nodes racing to take over an old server database run nothing again and fail nowhere', { skip: !hasServer() && 'needs DATABASE_URL' }, () =>
    withEmptyDatabase('postgres', async (db, url) => {
      await migrateTheOldWay(db);
      const pools = await Promise.all([0, 1, 2].map(() => openPostgres(url!, 2)));
      try {
        // Nothing of the old runner's runs again; what came after it runs exactly once, on one node.
        const runs = await Promise.all(pools.map((p) => migrate(p, SETS)));
        assert.deepEqual(runs.sort((a, b) => b.length - a.length), [AFTER_OLD, [], []]);
        assert.equal((await bookkeeping(db, 'auth')).length, 3 + AFTER_OLD.length);
        assert.equal((await bookkeeping(db, 'blog')).length, 1);
      } finally {
        await Promise.all(pools.map((p) => p.close()));
      }
    }),
  );

  test("each owner has its own lock: a held blog lock stops the blog's run, not the auth core's", { skip: !hasServer() && 'needs DATABASE_URL' }, () =>
    withEmptyDatabase('postgres', async (db, url) => {
      const holder = new pg.Client({ connectionString: url });
      await holder.connect();
      try {
        const blogKey = String(lockKeyOf('blog'));
        await holder.query('SELECT pg_advisory_lock($1::bigint)', [blogKey]);
        // Another node holding the blog's lock does not hold up the auth core.
        assert.deepEqual(await migrate(db, authMigrations), ALL.filter((n) => n.startsWith('auth/')));
        // The blog's run waits for exactly that key...
        let finished = false;
        const run = migrate(db, blogMigrations).finally(() => (finished = true));
        for (let i = 0; ; i++) {
          const waiting = (await advisoryLocks(db, false)).rows.map((r) => r.key);
          if (waiting.length) {
            assert.deepEqual(waiting, [blogKey]);
            break;
          }
          assert.equal(finished, false, 'the blog migrated while another node held its lock');
          assert.ok(i < 500, 'the blog run never asked for its lock');
          await new Promise((r) => setTimeout(r, 10));
        }
        assert.equal(await tableExists(db, 'posts'), false);
        // ...and proceeds once it is released.
        await holder.query('SELECT pg_advisory_unlock($1::bigint)', [blogKey]);
        assert.deepEqual(await run, ['blog/001_posts.sql']);
      } finally {
        await holder.end();
      }
    }),
  );
});
