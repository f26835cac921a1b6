// The web pages' build: esbuild bundles web/src/main.tsx (Preact) and its CSS
// into dist/web/assets/ under content-hashed names (cached for a year),
// writes dist/web/index.html naming them (served no-cache) and
// dist/web/pages.json, the page paths the service answers with index.html
// (from web/src/paths.ts, the one list of pages). Every file is written to a
// temporary name and renamed, index.html last, so test files building at
// the same moment never read a half-written file.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { brotliCompressSync, gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const webSrc = join(root, 'web');
export const webOut = join(root, 'dist', 'web');

/** The newest modification time under dir (ms). */
export function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** True when dist/web is missing or older than web/ (or this script). */
export function webStale() {
  const stamp = join(webOut, 'index.html');
  if (!existsSync(stamp)) return true;
  const built = statSync(stamp).mtimeMs;
  return newest(webSrc) > built || statSync(fileURLToPath(import.meta.url)).mtimeMs > built;
}

function writeAtomic(path, data) {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

async function pagePaths(build) {
  const r = await build({ entryPoints: [join(webSrc, 'src', 'paths.ts')], bundle: true, format: 'esm', write: false, logLevel: 'silent' });
  const mod = await import(`data:text/javascript;base64,${Buffer.from(r.outputFiles[0].text).toString('base64')}`);
  return mod.PATHS;
}

/** Builds dist/web; returns the assets with their raw and gzip sizes. */
export async function buildWeb({ minify = true } = {}) {
  // esbuild is a development dependency: loaded only when a build is needed.
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: { app: join(webSrc, 'src', 'main.tsx') },
    bundle: true,
    format: 'esm',
    target: ['chrome109', 'firefox115', 'safari16'],
    minify,
    sourcemap: false,
    jsx: 'automatic',
    jsxImportSource: 'preact',
    entryNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    outdir: join(webOut, 'assets'),
    write: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const assets = [];
  for (const f of result.outputFiles) {
    const name = basename(f.path);
    writeAtomic(f.path, f.contents);
    // Pre-compressed copies: @fastify/static sends them to clients that accept them.
    const gz = gzipSync(f.contents, { level: 9 });
    writeAtomic(`${f.path}.gz`, gz);
    writeAtomic(`${f.path}.br`, brotliCompressSync(f.contents));
    assets.push({ name, bytes: f.contents.length, gzip: gz.length });
  }
  const js = assets.find((a) => a.name.endsWith('.js'));
  const css = assets.find((a) => a.name.endsWith('.css'));
  const html = readFileSync(join(webSrc, 'index.html'), 'utf8')
    .replace('{{app.js}}', `/assets/${js.name}`)
    .replace('{{app.css}}', css ? `/assets/${css.name}` : '');
  writeAtomic(join(webOut, 'pages.json'), JSON.stringify(await pagePaths(build)));
  writeAtomic(join(webOut, 'index.html'), html);
  // Assets of earlier builds go (a page open across a deploy reloads index.html and gets the new ones).
  const keep = new Set(assets.flatMap((a) => [a.name, `${a.name}.gz`, `${a.name}.br`]));
  for (const f of readdirSync(join(webOut, 'assets'))) {
    if (!keep.has(f) && !f.endsWith('.tmp')) rmSync(join(webOut, 'assets', f), { force: true });
  }
  return { assets, html: createHash('sha256').update(html).digest('hex').slice(0, 12) };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const started = performance.now();
  const { assets } = await buildWeb();
  const ms = Math.round(performance.now() - started);
  for (const a of assets) console.log(`dist/web/assets/${a.name}  ${a.bytes} B raw, ${a.gzip} B gzip`);
  const total = assets.reduce((s, a) => ({ bytes: s.bytes + a.bytes, gzip: s.gzip + a.gzip }), { bytes: 0, gzip: 0 });
  console.log(`web pages built in ${ms} ms: ${total.bytes} B raw, ${total.gzip} B gzip`);
}
