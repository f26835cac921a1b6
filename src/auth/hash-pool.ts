// A fixed pool of low-priority password-hashing threads. Each thread lowers
// its own scheduling priority (on Linux, nice applies per thread), so when
// hashing and request handling compete for the cores, the event loop wins: a
// login storm slows logins, not every other request. Callers bound
// concurrency with a WorkQueue of the same size, so a job always finds an
// idle thread.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

export type HashRequest =
  | { op: 'argon2-hash'; password: string; options: object }
  | { op: 'argon2-verify' | 'bcrypt-verify'; password: string; hash: string };

type HashReply = { id: number; ok: true; value: string | boolean } | { id: number; ok: false; error: string };

// The thread's code is inline (the same from source under tsx and built),
// loading the native modules from paths resolved here.
const require = createRequire(import.meta.url);
const MODULES = { argon2: require.resolve('@node-rs/argon2'), bcrypt: require.resolve('bcryptjs') };
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const argon2 = require(workerData.argon2);
const bcrypt = require(workerData.bcrypt);
try { require('node:os').setPriority(10); } catch {}
parentPort.on('message', (job) => {
  try {
    const value = job.op === 'argon2-hash' ? argon2.hashSync(job.password, job.options)
      : job.op === 'argon2-verify' ? argon2.verifySync(job.hash, job.password)
      : bcrypt.compareSync(job.password, job.hash);
    parentPort.postMessage({ id: job.id, ok: true, value });
  } catch (err) {
    parentPort.postMessage({ id: job.id, ok: false, error: String(err && err.message) });
  }
});
`;

type Pending = { resolve: (v: string | boolean) => void; reject: (e: Error) => void; worker: Worker };

export class HashPool {
  private readonly idle: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) this.idle.push(this.spawn());
  }

  private spawn(): Worker {
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: MODULES });
    w.on('message', (reply: HashReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      w.unref();
      this.idle.push(w);
      if (reply.ok) p.resolve(reply.value);
      else p.reject(new Error(reply.error));
    });
    w.on('error', () => this.replace(w));
    w.on('exit', () => this.replace(w));
    // An idle thread never keeps the process alive (a busy one does, until its
    // reply). After the listeners: adding a 'message' listener refs the
    // worker again, which made `npm run cli -- create-user` hang on exit.
    w.unref();
    return w;
  }

  /** A thread died: fail its job and put a fresh thread in its place. */
  private replace(w: Worker): void {
    let busy = false;
    for (const [id, p] of this.pending) {
      if (p.worker !== w) continue;
      busy = true;
      this.pending.delete(id);
      p.reject(new Error('hashing thread exited'));
    }
    const i = this.idle.indexOf(w);
    if (i >= 0) this.idle.splice(i, 1);
    if (!this.closed && (busy || i >= 0)) this.idle.push(this.spawn());
  }

  run(job: HashRequest): Promise<string | boolean> {
    const worker = this.idle.pop();
    if (!worker) return Promise.reject(new Error('no idle hashing thread (callers must bound concurrency)'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker });
      worker.ref();
      worker.postMessage({ ...job, id });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.idle, ...[...this.pending.values()].map((p) => p.worker)];
    await Promise.all(all.map((w) => w.terminate()));
  }
}
