// The password policy of API.md: length bounds, not a common password, not
// containing the username or the email's local part, and a zxcvbn strength
// score at or above the configured minimum. Returns every failed rule.
//
// zxcvbn is synchronous and its cost grows faster than the password's
// length: about 50 ms of CPU for 32 characters and 300 ms or more for 128
// here. The HTTP routes therefore score on a thread of their own
// (checkPasswordPolicyAsync): one registration with a long password must not
// stall every other request on the event loop. The CLI scores in-line.
import { ZxcvbnFactory } from '@zxcvbn-ts/core';
import * as common from '@zxcvbn-ts/language-common';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Config } from '../config.js';
import { WorkQueue } from './work-queue.js';

export interface PolicyOptions {
  minLength: number;
  maxLength: number;
  minScore: number;
}

/** The policy the configuration asks for. */
export function policyOf(config: Pick<Config, 'passwordMinLength' | 'passwordMaxLength' | 'passwordMinScore'>): PolicyOptions {
  return { minLength: config.passwordMinLength, maxLength: config.passwordMaxLength, minScore: config.passwordMinScore };
}

export interface PolicyFailure {
  path: string;
  message: string;
}

/** zxcvbn scores at most this many characters (a longer prefix is strong or it is not). */
const SCORED_LENGTH = 128;

const commonPasswords = new Set<string>(common.dictionary['passwords-common'] as string[]);
let zxcvbn: ZxcvbnFactory | undefined;

interface Pending {
  failures: PolicyFailure[];
  /** What zxcvbn still has to score, when the cheap rules leave it anything to do. */
  score?: { password: string; inputs: string[]; message: (score: number) => PolicyFailure | undefined };
}

/** Every rule but the strength score, which is returned as work to do. */
function cheapRules(password: string, context: { username?: string; email?: string }, opts: PolicyOptions, path: string): Pending {
  const failures: PolicyFailure[] = [];
  const length = [...password].length;
  if (length < opts.minLength) failures.push({ path, message: `must be at least ${opts.minLength} characters` });
  if (length > opts.maxLength) {
    // Nothing more is computed on an over-long password (zxcvbn cost grows with length).
    failures.push({ path, message: `must be at most ${opts.maxLength} characters` });
    return { failures };
  }
  const lower = password.toLowerCase();
  if (commonPasswords.has(lower)) failures.push({ path, message: 'is a commonly used password' });
  const username = context.username?.toLowerCase();
  if (username && username.length >= 3 && lower.includes(username)) {
    failures.push({ path, message: 'must not contain the username' });
  }
  const local = context.email?.split('@')[0]?.toLowerCase();
  if (local && local.length >= 3 && lower.includes(local)) {
    failures.push({ path, message: 'must not contain the email address' });
  }
  if (length === 0 || opts.minScore <= 0) return { failures };
  return {
    failures,
    score: {
      password,
      inputs: [username, local].filter((s): s is string => !!s),
      message: (score) =>
        score < opts.minScore ? { path, message: `is too weak (strength ${score} of 4, needs ${opts.minScore})` } : undefined,
    },
  };
}

function finish(p: Pending, score: number | undefined): PolicyFailure[] {
  const weak = p.score && score !== undefined ? p.score.message(score) : undefined;
  return weak ? [...p.failures, weak] : p.failures;
}

/** The policy, scored on the calling thread (the CLI). */
export function checkPasswordPolicy(
  password: string,
  context: { username?: string; email?: string },
  opts: PolicyOptions,
  path = '/password',
): PolicyFailure[] {
  const p = cheapRules(password, context, opts, path);
  if (!p.score) return p.failures;
  zxcvbn ??= new ZxcvbnFactory({ dictionary: common.dictionary, graphs: common.adjacencyGraphs, maxLength: SCORED_LENGTH });
  return finish(p, zxcvbn.check(p.score.password, p.score.inputs).score);
}

/** The policy, scored on the strength thread (HTTP routes). Throws QueueFullError when it is swamped. */
export async function checkPasswordPolicyAsync(
  password: string,
  context: { username?: string; email?: string },
  opts: PolicyOptions,
  path = '/password',
): Promise<PolicyFailure[]> {
  const p = cheapRules(password, context, opts, path);
  if (!p.score) return p.failures;
  return finish(p, await strength.score(p.score.password, p.score.inputs));
}

// The strength thread: inline CommonJS (the same under tsx and built), loading
// zxcvbn from paths resolved here, at a lower priority than the event loop.
const require = createRequire(import.meta.url);
const MODULES = { core: require.resolve('@zxcvbn-ts/core'), common: require.resolve('@zxcvbn-ts/language-common') };
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
try { require('node:os').setPriority(10); } catch {}
const { ZxcvbnFactory } = require(workerData.core);
const common = require(workerData.common);
const zxcvbn = new ZxcvbnFactory({ dictionary: common.dictionary, graphs: common.adjacencyGraphs, maxLength: workerData.maxLength });
parentPort.on('message', (job) => {
  try {
    parentPort.postMessage({ id: job.id, ok: true, score: zxcvbn.check(job.password, job.inputs).score });
  } catch (err) {
    parentPort.postMessage({ id: job.id, ok: false, error: String(err && err.message) });
  }
});
`;

type Reply = { id: number; ok: true; score: number } | { id: number; ok: false; error: string };

class StrengthThread {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, { resolve: (score: number) => void; reject: (err: Error) => void }>();
  private nextId = 1;
  // One password at a time; a bounded line behind it (beyond it: 503, as for hashing).
  private readonly queue = new WorkQueue(1, 64);

  score(password: string, inputs: string[]): Promise<number> {
    return this.queue.run(() => this.send(password, inputs));
  }

  private send(password: string, inputs: string[]): Promise<number> {
    const worker = (this.worker ??= this.spawn());
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ id, password, inputs });
    });
  }

  private spawn(): Worker {
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { ...MODULES, maxLength: SCORED_LENGTH } });
    w.on('message', (reply: Reply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) w.unref();
      if (reply.ok) p.resolve(reply.score);
      else p.reject(new Error(reply.error));
    });
    const died = () => {
      if (this.worker === w) this.worker = undefined; // the next job starts a fresh one
      for (const p of this.pending.values()) p.reject(new Error('password strength thread exited'));
      this.pending.clear();
    };
    w.on('error', died);
    w.on('exit', died);
    // Idle, the thread never keeps the process alive (after the listeners, which ref it).
    w.unref();
    return w;
  }
}

const strength = new StrengthThread();
