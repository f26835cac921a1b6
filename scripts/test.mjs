// Runs every test file with node's test runner (TypeScript through tsx).
// Files needing the PostgreSQL server or Redis skip those parts unless
// DATABASE_URL / REDIS_URL are set (.ci/run sets both).
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import pg from 'pg';

const only = process.argv.slice(2);
const files = only.length
  ? only
  : readdirSync('test')
      .filter((f) => f.endsWith('.test.ts'))
      .sort()
      .map((f) => `test/${f}`);
// Test databases on the server are named after this run (test/helpers.ts), so the sweep below finds only its own.
const run = randomBytes(4).toString('hex');
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { ...process.env, NODE_ENV: 'test', GH_TEST_RUN: run },
});
await dropLeftovers();
process.exit(r.status ?? 1);

/** A test that dies (or forgets) leaves its database: drop it, and say which test file made it. */
async function dropLeftovers() {
  if (!process.env.DATABASE_URL) return;
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
  try {
    await client.connect();
    const { rows } = await client.query(
      `SELECT datname, shobj_description(oid, 'pg_database') AS creator FROM pg_database WHERE datname LIKE $1`,
      [`gh_test_${run}_%`],
    );
    for (const { datname, creator } of rows) {
      console.warn(`left behind by ${creator ?? 'an unknown test'}: database ${datname}, dropped`);
      await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(datname)} WITH (FORCE)`);
    }
  } catch (err) {
    console.warn(`could not check for test databases left behind: ${err.message}`);
  } finally {
    await client.end().catch(() => {});
  }
}
