// The hashing and strength-scoring threads (piscina): a bounded queue that
// refuses at once, threads at a lower priority, idle threads that never keep
// the process alive, and worker modules that load both from source (tsx) and
// from the build (dist/).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { PasswordHasher } from '../src/auth/passwords.js';
import { PoolClosedError, QueueFullError } from '../src/auth/thread-pool.js';
import { toAuthError } from '../src/http/render.js';
import { ROOT, tempDir } from './process-helpers.js';

const PASSWORD = 'plum-Anchor-47-velvet';
const POLICY = { minLength: 8, maxLength: 128, minScore: 3 };

test('a full hashing queue refuses at once with QueueFullError; the accepted jobs still finish', async () => {
  const hasher = new PasswordHasher(1, 2);
  try {
    // One running and two waiting; the fourth and fifth are refused.
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => hasher.hash(PASSWORD)));
    const refused = results.filter((r) => r.status === 'rejected');
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 3);
    assert.equal(refused.length, 2);
    for (const r of refused) assert.ok((r as PromiseRejectedResult).reason instanceof QueueFullError);
    // The pool is not left broken: a job after the burst runs.
    const hash = await hasher.hash(PASSWORD);
    assert.deepEqual(await hasher.verify(hash, PASSWORD), { ok: true, needsRehash: false });
    assert.deepEqual(await hasher.verify(hash, 'wrong'), { ok: false, needsRehash: false });
    // A corrupt stored hash is a mismatch, not an error.
    assert.deepEqual(await hasher.verify('$argon2id$v=19$m=19456,t=2,p=1$AAAA$BBBB', PASSWORD), { ok: false, needsRehash: false });
  } finally {
    await hasher.close();
  }
});

test('jobs still queued when the pool closes (shutdown; their clients gone) fail as PoolClosedError: a 503 to retry, not a fault to log', async () => {
  const hasher = new PasswordHasher(1, 4);
  const settled = Promise.allSettled(Array.from({ length: 4 }, () => hasher.hash(PASSWORD)));
  await hasher.close();
  const refused = (await settled).filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
  assert.ok(refused.length >= 3, `the queued jobs were dropped (${refused.length})`);
  for (const r of refused) {
    assert.ok(r.reason instanceof PoolClosedError, String(r.reason));
    assert.ok(r.reason.cause instanceof Error, "the pool's own error is kept as the cause");
    const { err, fault } = toAuthError(r.reason);
    assert.equal(err.status, 503);
    assert.equal(err.extra.headers?.['retry-after'], '1');
    assert.equal(fault, undefined, 'not logged as the service failing');
  }
});

/** The nice value of each thread of this process (Linux: field 19 of /proc/self/task/TID/stat). */
function niceThreads(): number {
  let n = 0;
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) > 0) n++;
    } catch {
      // the thread ended while we looked
    }
  }
  return n;
}

test('hashing and scoring run on threads at a lower priority, which close() ends', { skip: process.platform !== 'linux' }, async () => {
  const before = niceThreads();
  const hasher = new PasswordHasher(1, 4);
  await hasher.hash(PASSWORD);
  const hashing = niceThreads();
  assert.ok(hashing > before, `a niced hashing thread: ${before} → ${hashing}`);
  assert.deepEqual(await hasher.checkPolicy(PASSWORD, { username: 'alice' }, POLICY), []);
  const scoring = niceThreads();
  assert.ok(scoring > hashing, `a niced strength thread too: ${hashing} → ${scoring}`);
  await hasher.close();
  assert.equal(niceThreads(), before, 'close() ended both');
});

/**
 * Runs `passwords` (a module URL) in a fresh process that hashes, verifies and
 * scores, and never closes the hasher: it must still exit on its own.
 */
async function runWithoutClose(nodeArgs: string[], passwords: string): Promise<{ code: number | null; out: string; err: string }> {
  const dir = tempDir('gatehouse-threads-');
  const script = join(dir, 'run.mjs');
  writeFileSync(
    script,
    `const { PasswordHasher } = await import(${JSON.stringify(passwords)});
const h = new PasswordHasher(2, 8);
const hash = await h.hash(${JSON.stringify(PASSWORD)});
const { ok } = await h.verify(hash, ${JSON.stringify(PASSWORD)});
const weak = await h.checkPolicy('password1', {}, ${JSON.stringify(POLICY)});
process.stdout.write(JSON.stringify({ ok, weak: weak.map((f) => f.message) }));
`,
  );
  const child = spawn(process.execPath, [...nodeArgs, script], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  return { code, out, err };
}

function assertRan(r: { code: number | null; out: string; err: string }) {
  assert.equal(r.code, 0, `exits by itself with idle threads: ${r.err}`);
  const { ok, weak } = JSON.parse(r.out) as { ok: boolean; weak: string[] };
  assert.equal(ok, true);
  assert.ok(weak.includes('is a commonly used password'), weak.join('; '));
  assert.ok(weak.some((m) => m.startsWith('is too weak')), `scored on the strength thread: ${weak.join('; ')}`);
}

test('from source under tsx the worker threads load the TypeScript modules, and idle threads let the process exit', async () => {
  const tsx = pathToFileURL(join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  assertRan(await runWithoutClose(['--import', tsx], pathToFileURL(join(ROOT, 'src', 'auth', 'passwords.ts')).href));
});

test('from the build (dist/) the worker threads load the compiled modules', async () => {
  // Compiles only when dist/ is missing or older than src/ (as npm start does).
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'start.mjs'), '--build'], { stdio: 'ignore' });
  const built = join(ROOT, 'dist', 'auth', 'passwords.js');
  assert.ok(existsSync(join(ROOT, 'dist', 'auth', 'workers', 'hash.worker.js')));
  assertRan(await runWithoutClose([], pathToFileURL(built).href));
});
