// WebAuthn challenges (W3C WebAuthn §13.4.3): 256 random bits issued by
// the server, kept in PostgreSQL (any node can finish a ceremony another
// began), bound to one purpose, valid 5 minutes and spent by their first
// use, whatever that use's outcome: DELETE … RETURNING lets exactly one
// request have a given challenge, so a response can never be replayed.
import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { Database } from '../db/client.js';

/**
 * What a challenge was issued for. `registration` and `second_factor` are
 * bound (to the user, and to the login's pending second step); a
 * passwordless `authentication` is bound to nothing (the passkey names the user).
 */
export type ChallengePurpose = 'registration' | 'authentication' | 'second_factor';

export const CHALLENGE_TTL_MS = 5 * 60_000;
/** base64url of 32 bytes: anything else is not one of ours (and is never looked up). */
const CHALLENGE_RE = /^[A-Za-z0-9_-]{43}$/;

export class WebAuthnChallenges {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  /** A new challenge (base64url) for `purpose`, bound to `binding` when the purpose needs one. */
  async issue(purpose: ChallengePurpose, binding: string | null = null): Promise<string> {
    const challenge = randomBytes(32).toString('base64url');
    await this.db.query('INSERT INTO webauthn_challenges (challenge, purpose, binding, expires_at) VALUES ($1, $2, $3, $4)', [
      challenge,
      purpose,
      binding,
      new Date(this.clock.now() + CHALLENGE_TTL_MS),
    ]);
    return challenge;
  }

  /**
   * Spends `challenge` (it can never be used again) and says whether it was
   * live and issued for this purpose and binding. A challenge presented for
   * another purpose is spent all the same: it was shown where it does not belong.
   */
  async spend(challenge: string, purpose: ChallengePurpose, binding: string | null = null): Promise<boolean> {
    if (!CHALLENGE_RE.test(challenge)) return false;
    const row = (
      await this.db.query<{ purpose: string; binding: string | null; expires_at: Date }>(
        'DELETE FROM webauthn_challenges WHERE challenge = $1 RETURNING purpose, binding, expires_at',
        [challenge],
      )
    ).rows[0];
    return !!row && row.purpose === purpose && row.binding === binding && row.expires_at.getTime() > this.clock.now();
  }

  /** Deletes expired challenges (never presented); the core's housekeeping calls it. */
  async housekeep(batch = 1000): Promise<number> {
    let total = 0;
    for (;;) {
      const n = (
        await this.db.query(
          `DELETE FROM webauthn_challenges WHERE challenge IN (SELECT challenge FROM webauthn_challenges WHERE expires_at < $1 LIMIT ${batch})`,
          [new Date(this.clock.now())],
        )
      ).rowCount;
      total += n;
      if (n < batch) return total;
    }
  }
}
