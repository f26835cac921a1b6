// Pools of low-priority threads (piscina) running one worker module of
// ./workers/ each. The threads run at a higher nice value (Linux applies it
// per thread), so when they and request handling compete for the cores the
// event loop wins. At most `maxThreads` jobs run and `maxQueue` wait; beyond
// that callers get QueueFullError at once (→ 503 with Retry-After) instead of
// piling up and timing out. Idle threads never keep the process alive.
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';

export class QueueFullError extends Error {
  constructor() {
    super('work queue full');
    this.name = 'QueueFullError';
  }
}

/** The pool closed (the process is shutting down) before this job ran: a 503, not a fault. */
export class PoolClosedError extends Error {
  constructor(cause?: unknown) {
    super('work pool closed', { cause });
    this.name = 'PoolClosedError';
  }
}

export interface ThreadPoolOptions {
  maxThreads: number;
  /** Threads kept even when idle (default: all of them, started at once). */
  minThreads?: number;
  maxQueue: number;
  /** How long a thread above minThreads may stay idle before it exits. */
  idleTimeoutMs?: number;
}

// From source (tsx) the workers are .ts next to this file; built, .js in dist/.
const EXT = extname(fileURLToPath(import.meta.url));

/** Piscina's own errors for a full queue (it has no error codes). */
const QUEUE_FULL = new Set(['Task queue is at limit', 'No task queue available and all Workers are busy']);

export class ThreadPool<T, R> {
  private readonly pool: Piscina<T, R>;
  private closing = false;

  constructor(worker: 'hash' | 'strength', opts: ThreadPoolOptions) {
    this.pool = new Piscina({
      filename: new URL(`./workers/${worker}.worker${EXT}`, import.meta.url).href,
      maxThreads: opts.maxThreads,
      minThreads: opts.minThreads ?? opts.maxThreads,
      maxQueue: opts.maxQueue,
      idleTimeout: opts.idleTimeoutMs ?? 0,
      concurrentTasksPerWorker: 1,
      niceIncrement: 10,
    });
  }

  async run(task: T): Promise<R> {
    try {
      return await this.pool.run(task);
    } catch (err) {
      if (this.closing) throw new PoolClosedError(err); // aborted by close(): a request its client left behind
      throw err instanceof Error && QUEUE_FULL.has(err.message) ? new QueueFullError() : err;
    }
  }

  /** Lets running jobs finish, drops the queued ones, and ends the threads. */
  close(): Promise<void> {
    this.closing = true;
    return this.pool.close({ force: true });
  }
}
