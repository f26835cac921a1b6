// `npm start`, `npm run cli` (and `--build` alone): build first if dist/ is
// missing or older than src/ (and the web pages if dist/web/ is older than
// web/), then run the compiled entry point.
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildWeb, newest, webStale } from './build-web.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

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
if (mode !== '--cli' && webStale()) {
  process.stderr.write('gatehouse: building the web pages (esbuild)…\n');
  await buildWeb();
}

if (mode === '--build') {
  // built above if needed; nothing to run
} else if (mode === '--cli') {
  process.argv.splice(2, 1);
  await import(join(root, 'dist', 'cli.js'));
} else {
  await import(join(root, 'dist', 'server.js'));
}
