// `npm run cli -- import-users FILE` (API.md "Moving over from a FastAPI
// app"), run as a real process: JSON and CSV exports of the FastAPI
// tutorial's users with their bcrypt hashes of "secret" ($2a$, $2b$, $2y$)
// and an argon2 one, disabled rows, bad rows among good ones (reported by
// line, never echoing a hash), a second run that imports nothing twice;
// then the service signs them in with "secret" and upgrades the hash.
import { hash as argon2Hash } from '@node-rs/argon2';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { openPglite } from '../src/db/client.js';
import { backends, openTestDatabase, startApp, TEST_SECRET, type TestApp, type TestDatabase } from './helpers.js';
import { ROOT, runCli, tempDir } from './process-helpers.js';

/** The tutorial's fake_users_db hash of "secret" (passlib, bcrypt $2b$, cost 12). */
const TUTORIAL_HASH = '$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW';
// The same bcrypt computation under the other prefixes libraries write ($2a$: older ones; $2y$: PHP).
const HASH_2A = TUTORIAL_HASH.replace('$2b$', '$2a$');
const HASH_2Y = TUTORIAL_HASH.replace('$2b$', '$2y$');

const csv = (rows: string[][]) => rows.map((r) => r.join(',')).join('\n') + '\n';

describe('import-users', () => {
  let dir: string;
  let argonHash: string;
  before(async () => {
    dir = tempDir('gatehouse-import-');
    // argon2id with weaker parameters than ours (as passlib's argon2 writes them): kept, upgraded at login.
    argonHash = await argon2Hash('secret', { algorithm: 2, memoryCost: 8192, timeCost: 2, parallelism: 2 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const backend of backends()) {
    describe(backend, () => {
      let dataDir: string;
      let server: TestDatabase | undefined;
      let env: Record<string, string>;
      const run = (file: string) => runCli(['import-users', file], env, undefined, 120_000);

      before(async () => {
        dataDir = tempDir('gatehouse-import-data-');
        env = { SECRET_KEY: TEST_SECRET, DATA_DIR: dataDir };
        if (backend === 'postgres') {
          server = await openTestDatabase('postgres');
          env.DATABASE_URL = server.url!;
        }
      });
      after(async () => {
        await server?.close();
        rmSync(dataDir, { recursive: true, force: true });
      });

      /** The imported database, served: the CLI has exited, so the embedded one can be opened. */
      async function serve(fn: (app: TestApp) => Promise<void>): Promise<void> {
        const tdb = server ?? { db: await openPglite(dataDir), close: async () => {} };
        const app = await startApp({ db: tdb });
        try {
          await fn(app);
        } finally {
          await app.close();
          if (!server) await tdb.db.close();
        }
      }

      test('CSV: good rows imported, bad ones reported by line and skipped, exit 1; a second run imports nothing twice', async () => {
        const file = join(dir, `${backend}-users.csv`);
        writeFileSync(
          file,
          csv([
            ['username', 'email', 'full_name', 'hashed_password', 'disabled', 'id'],
            ['johndoe', 'johndoe@example.com', 'John Doe', TUTORIAL_HASH, 'false', '1'],
            ['Alice', 'alice@example.com', '"Alice\nWonderson"', HASH_2A, 'False', '2'], // lines 3-4
            ['x', 'x@example.com', '', TUTORIAL_HASH, '0', '3'], // line 5: username too short
            ['carol', 'carol@example.com', '', HASH_2Y, '0', '4'],
            ['mallory', 'not-an-address', '', TUTORIAL_HASH, '0', '5'], // line 7
            ['trent', 'trent@example.com', '', 'secret', '0', '6'], // line 8: a password, not a hash
            ['dave', 'dave@example.com', '', TUTORIAL_HASH, 'TRUE', '7'],
            ['erin', 'erin@example.com', '', `"${argonHash}"`, '1', '8'], // quoted: an argon2 hash holds commas
            ['frank', 'frank@example.com', '', TUTORIAL_HASH, 'maybe', '9'], // line 11
            ['grace', 'JohnDoe@Example.com', '', TUTORIAL_HASH, '0', '10'], // line 12: email taken (case)
            ['short', 'row'], // line 13
            ['CAROL', 'carol2@example.com', '', TUTORIAL_HASH, '0', '11'], // line 14: carol again, in the same batch
          ]),
        );
        const first = await run(file);
        assert.equal(first.code, 1, first.stderr);
        assert.equal(first.stdout.trim(), 'imported 5, skipped 2, bad 5', first.stderr);
        const lines = first.stderr.split('\n');
        for (const [n, why] of [
          [5, /username must be 3–32/],
          [7, /email is not a valid address/],
          [8, /hashed_password is not a bcrypt/],
          [11, /disabled must be true, false, 1 or 0/],
          [13, /has 2 fields where the header has 6/],
        ] as const) {
          assert.ok(lines.some((l) => l.startsWith(`line ${n}: bad: `) && why.test(l)), `line ${n}: ${first.stderr}`);
        }
        assert.ok(lines.some((l) => /^line 12: skipped: email JohnDoe@Example.com already exists/.test(l)), first.stderr);
        assert.ok(lines.includes('line 14: skipped: username carol already exists'), first.stderr);
        assert.ok(!first.stderr.includes(TUTORIAL_HASH.slice(7)) && !first.stderr.includes(argonHash.slice(-20)), 'no hash echoed');
        assert.ok(!first.stderr.includes('secret'), 'no password echoed');
        assert.ok(!first.stderr.includes('\r'), 'no progress line when stderr is not a terminal');

        const second = await run(file);
        assert.equal(second.code, 1);
        assert.equal(second.stdout.trim(), 'imported 0, skipped 7, bad 5');
        assert.ok(second.stderr.includes('line 2: skipped: username johndoe already exists'), second.stderr);
        assert.ok(second.stderr.includes('line 3: skipped: username alice already exists'), second.stderr);
      });

      test('JSON: booleans, 1/0 and strings; a non-object element and a bad hash cost reported by line; clean file exits 0', async () => {
        const file = join(dir, `${backend}-users.json`);
        const text = [
          '[',
          `  {"username": "heidi", "email": "heidi@example.com", "full_name": null, "hashed_password": "${TUTORIAL_HASH}", "disabled": false},`,
          `  {"username": "ivan", "email": "ivan@example.com",`,
          `   "full_name": "Ivan \\"the\\" [Terrible], {x}", "hashed_password": "${HASH_2Y}", "disabled": 1, "email_verified": "true"},`,
          '  "judy",',
          `  {"username": "ken", "email": "ken@example.com", "hashed_password": "$2b$31$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW"},`,
          `  {"username": "leo", "email": "leo@example.com", "hashed_password": "${HASH_2A}", "disabled": "FALSE", "email_verified": "false"}`,
          ']',
        ].join('\n');
        writeFileSync(file, text);
        const r = await run(file);
        assert.equal(r.code, 1, r.stderr);
        assert.equal(r.stdout.trim(), 'imported 3, skipped 0, bad 2');
        assert.match(r.stderr, /^line 5: bad: the row is not an object$/m);
        assert.match(r.stderr, /^line 6: bad: hashed_password bcrypt cost 31 is outside 4–16$/m);

        const clean = join(dir, `${backend}-clean.json`);
        writeFileSync(clean, JSON.stringify([{ username: 'mike', email: 'mike@example.com', hashed_password: TUTORIAL_HASH, disabled: 0 }]));
        const ok = await run(clean);
        assert.equal(ok.code, 0, ok.stderr);
        assert.equal(ok.stdout.trim(), 'imported 1, skipped 0, bad 0');
        // Detected by content when the name says nothing.
        const noExt = join(dir, `${backend}-export`);
        writeFileSync(noExt, `  ${JSON.stringify([{ username: 'nina', email: 'nina@example.com', hashed_password: HASH_2A }])}`);
        assert.equal((await run(noExt)).stdout.trim(), 'imported 1, skipped 0, bad 0');
        const broken = join(dir, `${backend}-broken.json`);
        writeFileSync(broken, `[\n{"username": "oscar", "email": "oscar@example.com", "hashed_password": "${HASH_2A}"},\n{"username": `);
        const b = await run(broken);
        assert.equal(b.code, 1);
        assert.match(b.stderr, /not a JSON array of objects/);
        assert.equal(b.stdout.trim(), 'imported 1, skipped 0, bad 0 (stopped early: see above)');
        const missing = await run(join(dir, 'nope.csv'));
        assert.equal(missing.code, 1);
        assert.match(missing.stderr, /cannot read .*nope\.csv \(ENOENT\)/);
        assert.equal((await runCli(['import-users'], env)).code, 1);
      });

      test('the service signs them in with "secret", upgrades each hash to argon2id; disabled rows stay out', async () => {
        await serve(async (app) => {
          for (const name of ['johndoe', 'alice', 'carol', 'erin', 'heidi', 'leo', 'JohnDoe', 'CAROL']) {
            const r = await app.http.token({ grant_type: 'password', username: name, password: 'secret' });
            if (name === 'erin') {
              assert.equal(r.status, 400, 'erin is disabled');
              continue;
            }
            assert.equal(r.status, 200, `${name}: ${r.text}`);
            assert.equal(r.body.scope, 'me posts:write');
            const me = await app.http.get('/users/me', r.body.access_token);
            assert.equal(me.body.username, name.toLowerCase());
          }
          const rows = await app.core.db.query<{ username: string; password_hash: string; disabled: boolean; full_name: string | null; email_verified: boolean }>(
            'SELECT username, password_hash, disabled, full_name, email_verified FROM users ORDER BY username',
          );
          const by = Object.fromEntries(rows.rows.map((r) => [r.username, r]));
          for (const name of ['johndoe', 'alice', 'carol', 'heidi', 'leo']) assert.match(by[name]!.password_hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, name);
          assert.equal(by.erin!.password_hash, argonHash, 'not signed in: kept as imported');
          assert.equal(by.mike!.password_hash, TUTORIAL_HASH);
          assert.deepEqual(
            rows.rows.filter((r) => r.disabled).map((r) => r.username),
            ['dave', 'erin', 'ivan'],
          );
          assert.equal(by.alice!.full_name, 'Alice\nWonderson');
          assert.equal(by.ivan!.full_name, 'Ivan "the" [Terrible], {x}');
          // Imported addresses count as verified unless the file says otherwise.
          assert.deepEqual(
            rows.rows.filter((r) => !r.email_verified).map((r) => r.username),
            ['leo'],
          );
          assert.equal((await app.http.token({ grant_type: 'password', username: 'dave', password: 'secret' })).status, 400);
          assert.equal((await app.http.token({ grant_type: 'password', username: 'johndoe', password: 'wrong' })).status, 400);
        });
      });
    });
  }

  test('on a terminal, a progress line that rewrites itself, then the summary', { skip: existsSync('/usr/bin/script') ? false : 'needs script(1) from util-linux for a pseudo-terminal' }, async () => {
    const dataDir = tempDir('gatehouse-import-tty-');
    const file = join(dir, 'many.csv');
    const rows = ['username,email,hashed_password'];
    for (let i = 0; i < 30_000; i++) rows.push(`tty${i},tty${i}@example.com,${TUTORIAL_HASH}`);
    writeFileSync(file, rows.join('\n') + '\n');
    try {
      const cli = join(ROOT, 'src', 'cli.ts');
      const loader = pathToFileURL(join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
      // script(1) runs the CLI on a pseudo-terminal; its output comes back on stdout.
      const r = spawnSync('/usr/bin/script', ['-qec', `${process.execPath} --import ${loader} ${cli} import-users ${file}`, '/dev/null'], {
        env: { PATH: process.env.PATH, NODE_ENV: 'test', SECRET_KEY: TEST_SECRET, DATA_DIR: dataDir, LOG_LEVEL: 'silent' },
        encoding: 'utf8',
        timeout: 180_000,
      });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      // Each progress line starts by going back and erasing the line (CR, ESC [K).
      const lines = r.stdout.split('\r\u001b[K');
      assert.ok(lines.some((l) => /^\d+ rows read: \d+ imported, 0 skipped, 0 bad \(\d+ rows\/s\)$/.test(l)), JSON.stringify(r.stdout.slice(0, 500)));
      assert.match(lines.at(-1)!, /^imported 30000, skipped 0, bad 0\r?\n/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
