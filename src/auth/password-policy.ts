// The password policy of API.md: length bounds, not a common password, not
// containing the username or the email's local part, and a zxcvbn strength
// score at or above the configured minimum. Returns every failed rule.
//
// zxcvbn is synchronous and its cost grows faster than the password's
// length: about 50 ms of CPU for 32 characters and 300 ms or more for 128
// here. The HTTP routes therefore score on a thread of their own
// (StrengthScorer, owned by the PasswordHasher): one registration with a long
// password must not stall every other request on the event loop. The CLI
// scores in-line, with the same function (workers/strength.worker.ts).
import * as common from '@zxcvbn-ts/language-common';
import { ThreadPool } from './thread-pool.js';
import strengthScore, { type StrengthTask } from './workers/strength.worker.js';

export interface PolicyOptions {
  minLength: number;
  maxLength: number;
  minScore: number;
}

export interface PolicyFailure {
  path: string;
  message: string;
}

const commonPasswords = new Set<string>(common.dictionary['passwords-common'] as string[]);

interface Pending {
  failures: PolicyFailure[];
  /** What zxcvbn still has to score, when the cheap rules leave it anything to do. */
  score?: StrengthTask & { message: (score: number) => PolicyFailure | undefined };
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
  return p.score ? finish(p, strengthScore(p.score)) : p.failures;
}

/** The strength thread: started on the first score, ended after a minute idle or by close(). */
export class StrengthScorer {
  // One password at a time; a bounded line behind it (beyond it: 503, as for hashing).
  private readonly pool = new ThreadPool<StrengthTask, number>('strength', {
    maxThreads: 1,
    minThreads: 0,
    maxQueue: 64,
    idleTimeoutMs: 60_000,
  });

  /** The policy, scored on the strength thread (HTTP routes). Throws QueueFullError when it is swamped. */
  async check(
    password: string,
    context: { username?: string; email?: string },
    opts: PolicyOptions,
    path = '/password',
  ): Promise<PolicyFailure[]> {
    const p = cheapRules(password, context, opts, path);
    if (!p.score) return p.failures;
    return finish(p, await this.pool.run({ password: p.score.password, inputs: p.score.inputs }));
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
