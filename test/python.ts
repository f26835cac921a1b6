// Debian's /usr/bin/python3 with python3-jwt (and python3-fastapi,
// python3-uvicorn for the FastAPI example): tests that need them skip with
// a reason when they are absent.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ROOT } from './process-helpers.js';

export const PYTHON = '/usr/bin/python3';

/** Why Python tests cannot run here (undefined: they can). */
export function pythonMissing(modules: string[]): string | undefined {
  const r = spawnSync(PYTHON, ['-c', modules.map((m) => `import ${m}`).join('; ')], { encoding: 'utf8' });
  if (r.error) return `${PYTHON} is not installed`;
  return r.status === 0 ? undefined : `${PYTHON} lacks ${modules.join(', ')} (Debian: python3-jwt python3-fastapi python3-uvicorn)`;
}

/** A long-running Python script answering one JSON line per JSON line sent. */
export class PythonLines {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;
  private stderr = '';

  constructor(script: string, env: Record<string, string>) {
    this.child = spawn(PYTHON, [script], { cwd: ROOT, env: { PATH: '/usr/bin:/bin', ...env } });
    this.child.stderr.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  async ask<T = any>(request: unknown): Promise<T> {
    this.child.stdin.write(JSON.stringify(request) + '\n');
    const next = await this.lines.next();
    if (next.done) throw new Error(`python ended: ${this.stderr}`);
    return JSON.parse(next.value) as T;
  }

  async close(): Promise<void> {
    this.child.stdin.end();
    if (this.child.exitCode === null) await new Promise((r) => this.child.once('close', r));
  }
}
