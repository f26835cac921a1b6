// Migrations: a second run applies nothing and changes nothing; nodes that
// start together on one fresh server database apply each migration once.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { openPglite, openPostgres, type Queryable } from '../src/db/client.js';
import { loadMigrations, migrate } from '../src/db/migrate.js';
import { backends, createServerDatabase, hasServer } from './helpers.js';

/** Everything a migration could change, in a stable order. */
async function schemaOf(db: Queryable): Promise<string> {
  const columns = await db.query(
    `SELECT table_name, column_name, data_type, is_nullable, column_default
       FROM information_schema.columns WHERE table_schema = 'public'
      ORDER BY table_name, column_name`,
  );
  const indexes = await db.query(`SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname`);
  const constraints = await db.query(
    `SELECT c.conrelid::regclass::text AS tbl, c.conname, pg_get_constraintdef(c.oid) AS def
       FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
      WHERE n.nspname = 'public' ORDER BY tbl, c.conname`,
  );
  const applied = await db.query('SELECT version, name, applied_at FROM schema_migrations ORDER BY version');
  return JSON.stringify({ columns: columns.rows, indexes: indexes.rows, constraints: constraints.rows, applied: applied.rows });
}

const all = loadMigrations().map((m) => m.name);

describe('migrations', () => {
  test('the migrations directory holds numbered SQL files with distinct versions', () => {
    const ms = loadMigrations();
    assert.ok(ms.length >= 2);
    assert.equal(new Set(ms.map((m) => m.version)).size, ms.length);
    assert.deepEqual(
      ms.map((m) => m.version),
      [...ms.map((m) => m.version)].sort((a, b) => a - b),
    );
  });

  for (const backend of backends()) {
    test(`applied twice: the second run applies none and changes nothing (${backend})`, async () => {
      const server = backend === 'postgres' ? await createServerDatabase() : undefined;
      const db = server ? await openPostgres(server.url) : await openPglite('memory://');
      try {
        assert.deepEqual(await migrate(db), all, 'a fresh database gets every migration, in order');
        const before = await schemaOf(db);
        assert.match(before, /users_username_key/);
        assert.match(before, /refresh_tokens/);
        assert.deepEqual(await migrate(db), []);
        assert.deepEqual(await migrate(db), []);
        assert.equal(await schemaOf(db), before);
        const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations');
        assert.equal(rows.rows[0]!.n, all.length);
      } finally {
        await db.close();
        await server?.drop();
      }
    });
  }

  test('nodes racing on one fresh server database apply each migration exactly once', { skip: !hasServer() && 'needs DATABASE_URL' }, async () => {
    for (let round = 0; round < 3; round++) {
      const server = await createServerDatabase();
      const pools = await Promise.all([0, 1, 2].map(() => openPostgres(server.url, 2)));
      try {
        const results = await Promise.all(pools.map((db) => migrate(db)));
        // Between them, every migration was applied once: no duplicates, none missing, no error.
        assert.deepEqual(results.flat().sort(), [...all].sort(), JSON.stringify(results));
        // The lock serialises whole runs: the first to get it applies everything.
        assert.equal(results.filter((r) => r.length > 0).length, 1, JSON.stringify(results));
        const rows = await pools[0]!.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
        assert.deepEqual(
          rows.rows.map((r) => r.version),
          loadMigrations().map((m) => m.version),
        );
        // No advisory lock is left behind on any connection.
        const locks = await pools[0]!.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`);
        assert.equal(locks.rows[0]!.n, 0);
      } finally {
        await Promise.all(pools.map((p) => p.close()));
        await server.drop();
      }
    }
  });

  test('a failing migration rolls back whole and is reported by name', { skip: !hasServer() && 'needs DATABASE_URL' }, async () => {
    const server = await createServerDatabase();
    const db = await openPostgres(server.url, 2);
    try {
      const broken = [
        ...loadMigrations(),
        { version: 999, name: '999_broken.sql', sql: 'CREATE TABLE half_done (id int); SELECT * FROM no_such_table;' },
      ];
      await assert.rejects(migrate(db, broken), /999_broken\.sql/);
      const t = await db.query(`SELECT to_regclass('public.half_done') AS t`);
      assert.equal(t.rows[0]!.t, null, 'the failed migration left nothing behind');
      const v = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations WHERE version = 999');
      assert.equal(v.rows[0]!.n, 0);
      // The earlier ones stay applied, and the lock was released: a correct run proceeds.
      assert.deepEqual(await migrate(db), []);
    } finally {
      await db.close();
      await server.drop();
    }
  });
});
