// The pg client prepares parameterised statements by name; a schema change
// under a prepared `SELECT *` must not turn into errors on running nodes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { migrate } from '../src/db/migrate.js';
import { authMigrations } from '../src/auth/migrations.js';
import { blogMigrations } from '../src/posts/migrations.js';
import { hasServer, openTestDatabase } from './helpers.js';

test('a prepared statement survives a column added under it (rolling migration)', { skip: !hasServer() }, async () => {
  const t = await openTestDatabase('postgres');
  try {
    const { db } = t;
    await migrate(db, [authMigrations, blogMigrations]);
    const id = '00000000-0000-4000-8000-000000000001';
    await db.query(
      `INSERT INTO users (id, username, email, password_hash, created_at, updated_at) VALUES ($1, 'prep', 'prep@example.com', 'x', now(), now())`,
      [id],
    );
    // Run it on every pooled connection so each has it prepared.
    await Promise.all(Array.from({ length: 12 }, () => db.query('SELECT * FROM users WHERE id = $1', [id])));
    await db.exec('ALTER TABLE users ADD COLUMN nickname text');
    const rows = await Promise.all(Array.from({ length: 12 }, () => db.query<{ nickname: unknown }>('SELECT * FROM users WHERE id = $1', [id])));
    for (const r of rows) assert.equal(r.rows.length, 1);
    // Statements stay correct: parameters are still bound, not interpolated.
    const none = await db.query('SELECT * FROM users WHERE username = $1', ["prep' OR '1'='1"]);
    assert.equal(none.rows.length, 0);
  } finally {
    await t.close();
  }
});
