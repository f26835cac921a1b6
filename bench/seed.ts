// npm run seed -- [--users N] [--posts N] [--explain]
//
// Fills the PostgreSQL database at DATABASE_URL (migrating it first) with N
// users and N posts in bulk (generate_series: a million of each takes
// minutes, not hours), then prints the plans of the queries on the hot paths
// so that you can see they use indexes at that size. Every seeded user's
// password is SEED_PASSWORD.
import { parseArgs } from 'node:util';
import pg from 'pg';
import { ARGON2_PARAMS } from '../src/auth/passwords.js';
import { hash } from '@node-rs/argon2';
import { openPostgres } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import { authMigrations } from '../src/auth/migrations.js';
import { blogMigrations } from '../src/posts/migrations.js';

export const SEED_PASSWORD = 'seed-Anchor-47-velvet';
const BATCH = 100_000;

export async function seed(pool: pg.Pool, users: number, posts: number, log = (m: string) => console.error(m)): Promise<void> {
  const passwordHash = await hash(SEED_PASSWORD, ARGON2_PARAMS);
  const base = Date.now() - (users + posts) * 1000;
  const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM users');
  const first = (rows[0]?.n ?? 0) + 1;
  for (let from = first; from < first + users; from += BATCH) {
    const to = Math.min(from + BATCH - 1, first + users - 1);
    await pool.query(
      `INSERT INTO users (id, username, email, full_name, password_hash, role, disabled, created_at, updated_at)
       SELECT gen_random_uuid(), 'seed' || g, 'seed' || g || '@example.com', 'Seed User ' || g, $1, 'user', false,
              to_timestamp(($2::bigint + g * 1000) / 1000.0), to_timestamp(($2::bigint + g * 1000) / 1000.0)
         FROM generate_series($3::int, $4::int) g`,
      [passwordHash, base, from, to],
    );
    log(`seed: users ${to - first + 1}/${users}`);
  }
  if (posts > 0) {
    // Authors spread over every user, numbered once.
    await pool.query('CREATE TEMP TABLE seed_authors AS SELECT id, row_number() OVER (ORDER BY created_at, id) AS rn FROM users');
    await pool.query('CREATE INDEX ON seed_authors (rn)');
    const { rows: c } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM seed_authors');
    const authors = c[0]!.n;
    for (let from = 1; from <= posts; from += BATCH) {
      const to = Math.min(from + BATCH - 1, posts);
      await pool.query(
        `INSERT INTO posts (id, author_id, title, body, published, created_at, updated_at)
         SELECT gen_random_uuid(), a.id, 'Seeded post ' || g, repeat('Lorem ipsum dolor sit amet. ', 20), g % 10 <> 0,
                to_timestamp(($1::bigint + ($2::bigint + g) * 1000) / 1000.0), to_timestamp(($1::bigint + ($2::bigint + g) * 1000) / 1000.0)
           FROM generate_series($3::int, $4::int) g
           JOIN seed_authors a ON a.rn = (g % $5) + 1`,
        [base, users, from, to, authors],
      );
      log(`seed: posts ${to}/${posts}`);
    }
    await pool.query('DROP TABLE seed_authors');
  }
  await pool.query('ANALYZE users');
  await pool.query('ANALYZE posts');
}

/** The hot-path queries, as the service sends them, with representative parameters. */
export async function explain(pool: pg.Pool): Promise<string> {
  const { rows } = await pool.query<{ id: string; username: string; created_at: Date }>(
    'SELECT id, username, created_at FROM users ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET 1000',
  );
  const u = rows[0]!;
  const { rows: p } = await pool.query<{ created_at: Date; id: string }>(
    'SELECT created_at, id FROM posts WHERE published ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET 5000',
  );
  const cursor = p[0]!;
  const cases: Array<[string, string, unknown[]]> = [
    ['login by username', 'SELECT * FROM users WHERE lower(username) = $1', [u.username]],
    ['login by email', 'SELECT * FROM users WHERE lower(email) = lower($1)', [`${u.username}@example.com`]],
    ['user state (guard, cache miss)', 'SELECT id, username, email, full_name, role, disabled, created_at FROM users WHERE id = $1', [u.id]],
    [
      'GET /posts first page',
      `SELECT p.*, u.username FROM posts p JOIN users u ON u.id = p.author_id WHERE p.published
        ORDER BY p.created_at DESC, p.id DESC LIMIT 21`,
      [],
    ],
    [
      'GET /posts deep page (keyset)',
      `SELECT p.*, u.username FROM posts p JOIN users u ON u.id = p.author_id
        WHERE p.published AND (p.created_at, p.id) < ($1::timestamptz, $2::uuid)
        ORDER BY p.created_at DESC, p.id DESC LIMIT 21`,
      [cursor.created_at, cursor.id],
    ],
    [
      'GET /posts?author=',
      `SELECT p.*, u.username FROM posts p JOIN users u ON u.id = p.author_id WHERE p.published AND p.author_id = $1
        ORDER BY p.created_at DESC, p.id DESC LIMIT 21`,
      [u.id],
    ],
    [
      'GET /admin/users deep page (keyset)',
      'SELECT * FROM users WHERE (created_at, id) > ($1::timestamptz, $2::uuid) ORDER BY created_at, id LIMIT 21',
      [u.created_at, u.id],
    ],
    [
      'PATCH /admin/users last-admin lock',
      `SELECT id, role, disabled FROM users WHERE id = $1 OR (role = 'admin' AND NOT disabled) ORDER BY id`,
      [u.id],
    ],
    [
      'refresh token lookup',
      `SELECT t.used_at, s.id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id
        WHERE t.token_hash = $1`,
      ['x'],
    ],
  ];
  const out: string[] = [];
  for (const [name, sql, params] of cases) {
    const r = await pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) ${sql}`, params);
    out.push(`-- ${name}\n${r.rows.map((x) => x['QUERY PLAN']).join('\n')}`);
  }
  return out.join('\n\n');
}

async function main() {
  const { values } = parseArgs({
    options: {
      users: { type: 'string', default: '1000000' },
      posts: { type: 'string', default: '1000000' },
      explain: { type: 'boolean', default: true },
    },
  });
  const url = process.env.DATABASE_URL;
  if (!url) {
    console.error('seed: set DATABASE_URL to the PostgreSQL database to fill');
    process.exit(2);
  }
  const db = await openPostgres(url, 2);
  await migrate(db, [authMigrations, blogMigrations]);
  await db.close();
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  const t = Date.now();
  await seed(pool, Number(values.users), Number(values.posts));
  console.error(`seed: done in ${Math.round((Date.now() - t) / 1000)} s`);
  if (values.explain) console.log(await explain(pool));
  await pool.end();
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
