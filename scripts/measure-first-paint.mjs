// Time from `npm start` (already built) to the first page painted: spawns
// `node scripts/start.mjs` on a free port with a fresh data directory, polls
// until it answers, opens / in Chromium (/usr/bin/chromium through
// playwright-core) and reads the page's first-contentful-paint. Prints each
// run and the median; also the bundle's size.
//   node scripts/measure-first-paint.mjs [runs=5] [--warm]
// Cold (default): a fresh data directory each run, so every start creates its
// embedded database. --warm: one data directory, created by an untimed first
// start, as every later `npm start` finds it.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';

/* global PerformanceObserver -- in the page */

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const warm = args.includes('--warm');
const runs = Number(args.find((a) => /^\d+$/.test(a)) ?? 5);
const sharedDir = warm ? mkdtempSync(join(tmpdir(), 'gatehouse-fcp-')) : undefined;

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function once(browser) {
  const port = await freePort();
  const dataDir = sharedDir ?? mkdtempSync(join(tmpdir(), 'gatehouse-fcp-'));
  const url = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  const child = spawn(process.execPath, [join(root, 'scripts', 'start.mjs')], {
    cwd: root,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn', NODE_ENV: 'development' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    let listening = 0;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the service exited (${child.exitCode})`);
      try {
        if ((await fetch(`${url}/health`)).ok) {
          listening = Date.now() - t0;
          break;
        }
      } catch {
        // not listening yet
      }
      await sleep(5);
    }
    const page = await browser.newPage();
    await page.goto(url);
    const fcp = await page.evaluate(
      () =>
        new Promise((resolve) => {
          new PerformanceObserver((list) => {
            const e = list.getEntries().find((x) => x.name === 'first-contentful-paint');
            if (e) resolve(performance.timeOrigin + e.startTime);
          }).observe({ type: 'paint', buffered: true });
        }),
    );
    // The page drew the blog, not only the shell's "Loading…".
    await page.getByRole('heading', { name: 'Blog' }).waitFor();
    const drawn = Date.now() - t0;
    await page.close();
    return { listening, fcp: Math.round(fcp - t0), drawn };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
    if (!sharedDir) rmSync(dataDir, { recursive: true, force: true });
  }
}

// Build first (not timed): `npm start` on a built checkout is what is measured.
await new Promise((resolve, reject) => {
  const b = spawn(process.execPath, [join(root, 'scripts', 'start.mjs'), '--build'], { cwd: root, stdio: 'inherit' });
  b.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`build failed (${code})`))));
});

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const results = [];
try {
  if (warm) await once(browser);
  for (let i = 0; i < runs; i++) {
    const r = await once(browser);
    results.push(r);
    console.log(`run ${i + 1}: listening after ${r.listening} ms, first contentful paint ${r.fcp} ms, blog drawn ${r.drawn} ms`);
  }
} finally {
  await browser.close();
  if (sharedDir) rmSync(sharedDir, { recursive: true, force: true });
}
const median = (k) => results.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(results.length / 2)];
console.log(`median of ${runs} (${warm ? 'warm: existing data directory' : 'cold: new data directory'}): npm start → listening ${median('listening')} ms, → first contentful paint ${median('fcp')} ms, → blog drawn ${median('drawn')} ms`);

const assets = join(root, 'dist', 'web', 'assets');
let raw = 0;
let gz = 0;
for (const f of readdirSync(assets).filter((n) => /\.(js|css)$/.test(n))) {
  raw += statSync(join(assets, f)).size;
  gz += gzipSync(readFileSync(join(assets, f)), { level: 9 }).length;
}
console.log(`bundle (js + css): ${raw} B raw, ${gz} B gzip`);
