// The second step of a sign-in. After a right password, an account with a
// second factor gets an `mfa_token` instead of tokens: 256 random bits,
// stored only as their SHA-256 in PostgreSQL (so any node can finish the
// login), living 5 minutes, allowing 5 attempts, spent by its first success.
// Each attempt is taken atomically before the code is checked, so parallel
// guesses cannot exceed the limit. Which methods a user may finish with
// (`mfa_methods`) is asked of the registered factors (totp, recovery_code;
// webauthn later): each says whether the user has it.
import { createHash, randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { Database, Queryable } from '../db/client.js';
import { AuthError } from './errors.js';

/** A second factor, as the challenge knows it: its `mfa_methods` name, whether a user has it, and its removal. */
export interface SecondFactorProvider {
  readonly method: string;
  enabledFor(userId: string, q?: Queryable): Promise<boolean>;
  /** Removes the user's factor of this kind (an admin's reset; in the caller's transaction). */
  remove(userId: string, q: Queryable): Promise<void>;
}

/** A live challenge: who signed in with a password, for which scope, with which first-factor amr. */
export interface MfaChallenge {
  tokenHash: string;
  userId: string;
  scope: string;
  amr: string[];
}

export interface MfaChallengeOptions {
  ttlMs: number;
  maxAttempts: number;
}

export const MFA_TOKEN_PREFIX = 'ghm_';
const MFA_TOKEN_RE = /^ghm_[A-Za-z0-9_-]{43}$/;

/** One description for every way an mfa_token or its code fails (no oracle on which part was wrong). */
export const MFA_FAILED = 'The code or the mfa_token is invalid, expired or already used';
export const mfaFailed = () => new AuthError('mfa_failed', MFA_FAILED);

const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url');

export class MfaChallenges {
  private readonly providers: SecondFactorProvider[] = [];

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly opts: MfaChallengeOptions = { ttlMs: 5 * 60_000, maxAttempts: 5 },
  ) {}

  /** Adds a factor; `mfa_methods` lists factors in the order they were registered. */
  register(provider: SecondFactorProvider): void {
    if (this.providers.some((p) => p.method === provider.method)) throw new Error(`second factor ${provider.method} registered twice`);
    this.providers.push(provider);
  }

  /** The methods this user can finish a sign-in with (empty: no second factor). */
  async methods(userId: string, q: Queryable = this.db): Promise<string[]> {
    const has = await Promise.all(this.providers.map((p) => p.enabledFor(userId, q)));
    return this.providers.filter((_, i) => has[i]).map((p) => p.method);
  }

  /** After a right password: the mfa_token and the methods, or undefined when the user has no second factor after all. */
  async issue(userId: string, scope: string, amr: readonly string[]): Promise<{ mfa_token: string; mfa_methods: string[] } | undefined> {
    const methods = await this.methods(userId);
    if (methods.length === 0) return undefined;
    const token = MFA_TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const now = this.clock.now();
    await this.db.query(
      `INSERT INTO mfa_challenges (token_hash, user_id, scope, amr, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
      [sha256(token), userId, scope, [...amr], new Date(now), new Date(now + this.opts.ttlMs)],
    );
    return { mfa_token: token, mfa_methods: methods };
  }

  /** A live challenge, without taking an attempt (to prepare its second step, e.g. passkey options); undefined otherwise. */
  async peek(token: string): Promise<MfaChallenge | undefined> {
    if (!MFA_TOKEN_RE.test(token)) return undefined;
    const r = await this.db.query<{ token_hash: string; user_id: string; scope: string; amr: string[] }>(
      `SELECT token_hash, user_id, scope, amr FROM mfa_challenges
        WHERE token_hash = $1 AND spent_at IS NULL AND expires_at > $2 AND attempts < $3`,
      [sha256(token), new Date(this.clock.now()), this.opts.maxAttempts],
    );
    const row = r.rows[0];
    return row && { tokenHash: row.token_hash, userId: row.user_id, scope: row.scope, amr: row.amr };
  }

  /** Takes one attempt of a live challenge; undefined when it is unknown, expired, spent or out of attempts. */
  async attempt(token: string): Promise<MfaChallenge | undefined> {
    if (!MFA_TOKEN_RE.test(token)) return undefined;
    const r = await this.db.query<{ token_hash: string; user_id: string; scope: string; amr: string[] }>(
      `UPDATE mfa_challenges SET attempts = attempts + 1
        WHERE token_hash = $1 AND spent_at IS NULL AND expires_at > $2 AND attempts < $3
        RETURNING token_hash, user_id, scope, amr`,
      [sha256(token), new Date(this.clock.now()), this.opts.maxAttempts],
    );
    const row = r.rows[0];
    return row && { tokenHash: row.token_hash, userId: row.user_id, scope: row.scope, amr: row.amr };
  }

  /** Spends a challenge after its second factor was proved; false when another request spent it first. */
  async spend(challenge: MfaChallenge): Promise<boolean> {
    const r = await this.db.query('UPDATE mfa_challenges SET spent_at = $2 WHERE token_hash = $1 AND spent_at IS NULL', [
      challenge.tokenHash,
      new Date(this.clock.now()),
    ]);
    return r.rowCount === 1;
  }

  /** Removes every second factor of the user and their pending challenges (in the caller's transaction). */
  async removeAll(userId: string, q: Queryable): Promise<void> {
    for (const p of this.providers) await p.remove(userId, q);
    await this.forget(userId, q);
  }

  /** Kills every pending challenge of a user (their factors changed). */
  async forget(userId: string, q: Queryable = this.db): Promise<void> {
    await q.query('DELETE FROM mfa_challenges WHERE user_id = $1', [userId]);
  }

  /** Deletes challenges that expired (a background task). */
  async housekeep(batch = 1000): Promise<number> {
    let total = 0;
    for (;;) {
      const r = await this.db.query(
        `DELETE FROM mfa_challenges WHERE token_hash IN (SELECT token_hash FROM mfa_challenges WHERE expires_at < $1 LIMIT ${batch})`,
        [new Date(this.clock.now())],
      );
      total += r.rowCount;
      if (r.rowCount < batch) return total;
    }
  }
}
