// Recovery codes: 10 per set, each 80 random bits written as 16 base32
// characters in groups of four. Shown once; stored only as SHA-256 (enough
// for random codes of this size: nothing to brute-force offline), compared
// in constant time, each usable once; a new set replaces the old one.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { Database, Queryable } from '../db/client.js';
import type { SecondFactorProvider } from './mfa-challenge.js';

export const RECOVERY_CODE_COUNT = 10;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const CODE_RE = /^[a-z2-7]{16}$/;

/** A code as stored and compared: lower case, without the dashes and spaces people type. */
const normalise = (code: string) => code.toLowerCase().replace(/[\s-]/g, '');
const digest = (code: string) => createHash('sha256').update(`gatehouse recovery code:${code}`).digest();

function newCode(): string {
  const bytes = randomBytes(10); // 80 bits = 16 base32 characters
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out.match(/.{4}/g)!.join('-');
}

export class RecoveryCodes implements SecondFactorProvider {
  readonly method = 'recovery_code';

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  async enabledFor(userId: string, q: Queryable = this.db): Promise<boolean> {
    return (await this.left(userId, q)) > 0;
  }

  async left(userId: string, q: Queryable = this.db): Promise<number> {
    const r = await q.query<{ n: number }>('SELECT count(*)::int AS n FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL', [userId]);
    return Number(r.rows[0]?.n ?? 0);
  }

  /** A new set: the old one dies. Returns the codes, to be shown this once. */
  async replace(userId: string, q: Queryable): Promise<string[]> {
    const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newCode);
    await this.remove(userId, q);
    await q.query(
      'INSERT INTO mfa_recovery_codes (user_id, code_hash) SELECT $1, unnest($2::text[])',
      [userId, codes.map((c) => digest(normalise(c)).toString('base64url'))],
    );
    return codes;
  }

  /** Uses a code up; false when it is not one of the user's unused codes (or a concurrent use won). */
  async use(userId: string, code: string): Promise<boolean> {
    const typed = normalise(code);
    if (!CODE_RE.test(typed)) return false;
    const wanted = digest(typed);
    const r = await this.db.query<{ code_hash: string }>('SELECT code_hash FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL', [userId]);
    // Every stored hash compared in constant time, none skipped: no timing on which one matched.
    let match: string | undefined;
    for (const { code_hash } of r.rows) {
      if (timingSafeEqual(Buffer.from(code_hash, 'base64url'), wanted)) match = code_hash;
    }
    if (!match) return false;
    const used = await this.db.query('UPDATE mfa_recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL', [
      userId,
      match,
      new Date(this.clock.now()),
    ]);
    return used.rowCount === 1;
  }

  async remove(userId: string, q: Queryable = this.db): Promise<void> {
    await q.query('DELETE FROM mfa_recovery_codes WHERE user_id = $1', [userId]);
  }
}
