// Password hashing: argon2id for every new hash; bcrypt ($2a$/$2b$/$2y$, as
// FastAPI/passlib apps store them) still verifies and is flagged for upgrade,
// as are argon2 hashes with weaker parameters than the current ones. All
// hashing runs on a pool of low-priority threads (thread-pool.ts), never on
// the event loop, through a bounded queue. The hasher also owns the thread
// that scores password strength (checkPolicy).
import type { Options as Argon2Options } from '@node-rs/argon2';
import { randomBytes } from 'node:crypto';
import { StrengthScorer } from './password-policy.js';
import { ThreadPool } from './thread-pool.js';
import type { HashTask } from './workers/hash.worker.js';

// algorithm 2 is Algorithm.Argon2id (an ambient const enum, not importable as a value).
export const ARGON2_PARAMS: Argon2Options = { algorithm: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 };

export interface VerifyResult {
  ok: boolean;
  /** The stored hash is bcrypt or weaker argon2: replace it with a fresh argon2id hash. */
  needsRehash: boolean;
}

const BCRYPT_RE = /^\$2[aby]\$(\d{2})\$[./A-Za-z0-9]{53}$/;
const ARGON2_RE = /^\$argon2(id|i|d)\$v=(\d+)\$m=(\d+),t=(\d+),p=(\d+)\$/;

/** Costs beyond these would tie a hashing thread up for seconds at every login of the account (or exhaust memory). */
const MAX_BCRYPT_COST = 16;
const MAX_ARGON2 = { memoryKib: 1024 * 1024, time: 16, parallelism: 16 };
const ARGON2_FULL_RE = /^\$argon2(id|i|d)\$v=(\d+)\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,}$/;

/**
 * Why a hash brought from elsewhere (import-users) cannot be stored, or
 * undefined: it must be one `verify` understands, at a cost a login can pay.
 * Never quotes the hash.
 */
export function storedHashProblem(hash: string): string | undefined {
  const bcrypt = BCRYPT_RE.exec(hash);
  if (bcrypt) {
    const cost = Number(bcrypt[1]);
    if (cost < 4 || cost > MAX_BCRYPT_COST) return `bcrypt cost ${cost} is outside 4–${MAX_BCRYPT_COST}`;
    return undefined;
  }
  const argon = ARGON2_FULL_RE.exec(hash);
  if (argon) {
    const [, , , m, t, p] = argon.map(Number);
    if (m! > MAX_ARGON2.memoryKib || t! > MAX_ARGON2.time || p! > MAX_ARGON2.parallelism || t! < 1 || p! < 1) return 'argon2 parameters are out of bounds';
    return undefined;
  }
  return 'is not a bcrypt ($2a$/$2b$/$2y$) or argon2 hash';
}

export class PasswordHasher {
  private readonly pool: ThreadPool<HashTask, string | boolean>;
  private readonly strength = new StrengthScorer();
  private dummyHash: Promise<string> | undefined;

  /** `concurrency` hashing threads, and at most `maxQueued` jobs waiting for one. */
  constructor(concurrency: number, maxQueued: number) {
    this.pool = new ThreadPool('hash', { maxThreads: concurrency, maxQueue: maxQueued });
  }

  async hash(password: string): Promise<string> {
    return (await this.pool.run({ op: 'argon2-hash', password, options: ARGON2_PARAMS })) as string;
  }

  /** A corrupt stored hash is a mismatch (the thread answers false). */
  private async check(op: 'argon2-verify' | 'bcrypt-verify', hash: string, password: string): Promise<boolean> {
    return (await this.pool.run({ op, hash, password })) === true;
  }

  async verify(storedHash: string, password: string): Promise<VerifyResult> {
    if (BCRYPT_RE.test(storedHash)) {
      // bcrypt only reads the first 72 bytes, exactly as passlib did.
      const ok = await this.check('bcrypt-verify', storedHash, password);
      return { ok, needsRehash: ok };
    }
    const m = ARGON2_RE.exec(storedHash);
    if (!m) return { ok: false, needsRehash: false };
    const ok = await this.check('argon2-verify', storedHash, password);
    return { ok, needsRehash: ok && isWeakerArgon2(m) };
  }

  /**
   * Makes the dummy hash that an unknown user's login is verified against
   * (grants.ts). The service awaits this before it listens, so the first
   * unknown-user login is not slower (by one hash) than the others.
   */
  prepare(): Promise<string> {
    this.dummyHash ??= this.hash(randomBytes(16).toString('hex'));
    return this.dummyHash;
  }

  /** The password policy, scored on the strength thread (HTTP routes). Throws QueueFullError when it is swamped. */
  checkPolicy(...args: Parameters<StrengthScorer['check']>): ReturnType<StrengthScorer['check']> {
    return this.strength.check(...args);
  }

  async close(): Promise<void> {
    await Promise.all([this.pool.close(), this.strength.close()]);
  }
}

function isWeakerArgon2(m: RegExpExecArray): boolean {
  const [, variant, version, mem, time, par] = m;
  return (
    variant !== 'id' ||
    Number(version) < 19 ||
    Number(mem) < ARGON2_PARAMS.memoryCost! ||
    Number(time) < ARGON2_PARAMS.timeCost! ||
    Number(par) !== ARGON2_PARAMS.parallelism!
  );
}
