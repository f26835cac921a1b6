// `npm start`, `npm run cli` (and `--build` alone): build first if dist/ is
// missing or older than src/, then run the compiled entry point.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

const stamp = join(root, 'dist', 'server.js');
const stale = !existsSync(stamp) || newest(join(root, 'src')) > statSync(stamp).mtimeMs;
if (stale) {
  // Emit only: types are checked by `npm run build`, `npm run typecheck` and
  // `npm test`; skipping the check halves the time to a first start.
  process.stderr.write('gatehouse: compiling (tsc --noCheck)…\n');
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json'), '--noCheck'], {
    stdio: 'inherit',
  });
}

const mode = process.argv[2];
if (mode === '--build') {
  // built above if needed; nothing to run
} else if (mode === '--cli') {
  process.argv.splice(2, 1);
  await import(join(root, 'dist', 'cli.js'));
} else {
  await import(join(root, 'dist', 'server.js'));
}
