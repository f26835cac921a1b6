// TOTP authenticators (RFC 6238: SHA-1, 6 digits, 30 s steps) with the
// otpauth library. The seed (160 random bits, RFC 4226 §4) is sealed at rest
// (secret-box.ts). A code is accepted in its step or one step either side
// (clock drift), and at most once: the last accepted step is stored per
// user and moved forward atomically, so a code of that step or an earlier
// one (a replay, or an older code seen over a shoulder) is refused.
import QRCode from 'qrcode';
import { Secret, TOTP } from 'otpauth';
import type { Clock } from '../clock.js';
import type { Database, Queryable } from '../db/client.js';
import type { SecondFactorProvider } from './mfa-challenge.js';
import type { SecretBox } from './secret-box.js';

export const TOTP_PERIOD_S = 30;
export const TOTP_DIGITS = 6;
const DRIFT_STEPS = 1;
const CODE_RE = /^\d{6}$/;

export interface TotpEnrollment {
  secret: string;
  otpauth_uri: string;
  qr_svg: string;
}

/** A code as people type it: spaces and dashes dropped ("123 456"). */
export const normaliseCode = (code: string) => code.replace(/[\s-]/g, '');

export class TotpFactor implements SecondFactorProvider {
  readonly method = 'totp';

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly box: SecretBox,
    /** The issuer name authenticator apps show next to the account. */
    private readonly issuer: string,
    /** Told when a stored secret cannot be opened (SECRET_KEY changed without PREVIOUS_SECRET_KEYS). */
    private readonly warn: (msg: string, err?: unknown) => void = () => undefined,
  ) {}

  async enabledFor(userId: string, q: Queryable = this.db): Promise<boolean> {
    const r = await q.query('SELECT 1 FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL', [userId]);
    return r.rows.length > 0;
  }

  /**
   * A new pending enrollment (replacing an earlier pending one); undefined
   * when TOTP is on already. Login is unchanged until `confirm`.
   */
  async enroll(user: { id: string; username: string }): Promise<TotpEnrollment | undefined> {
    const secret = new Secret({ size: 20 });
    const r = await this.db.query(
      `INSERT INTO mfa_totp (user_id, secret, created_at) VALUES ($1, $2, $3)
       ON CONFLICT (user_id) DO UPDATE SET secret = EXCLUDED.secret, created_at = EXCLUDED.created_at, last_step = NULL
        WHERE mfa_totp.confirmed_at IS NULL`,
      [user.id, this.box.seal(secret.base32, user.id), new Date(this.clock.now())],
    );
    if (r.rowCount !== 1) return undefined;
    const uri = this.totp(secret, user.username).toString();
    const svg = await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    return { secret: secret.base32, otpauth_uri: uri, qr_svg: svg };
  }

  /** Turns a pending enrollment on with its first code; false: wrong code, or nothing pending. */
  async confirm(userId: string, code: string, q: Queryable = this.db): Promise<boolean> {
    const row = (await q.query<{ secret: string }>('SELECT secret FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NULL', [userId])).rows[0];
    const step = row && this.matchingStep(row.secret, userId, code);
    if (step === undefined) return false;
    // The same sealed secret: an enrollment restarted meanwhile is not confirmed by the old one's code.
    const r = await q.query(
      'UPDATE mfa_totp SET confirmed_at = $3, last_step = $4 WHERE user_id = $1 AND secret = $2 AND confirmed_at IS NULL',
      [userId, row!.secret, new Date(this.clock.now()), step],
    );
    return r.rowCount === 1;
  }

  /** A sign-in or management code: right, in the drift window, and of a later step than any accepted before. */
  async verify(userId: string, code: string): Promise<boolean> {
    const row = (await this.db.query<{ secret: string }>('SELECT secret FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL', [userId])).rows[0];
    const step = row && this.matchingStep(row.secret, userId, code);
    if (step === undefined) return false;
    // Compare-and-set: of two requests with codes of the same step, exactly one wins.
    const r = await this.db.query(
      `UPDATE mfa_totp SET last_step = $2 WHERE user_id = $1 AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $2)`,
      [userId, step],
    );
    if (r.rowCount === 1 && this.box.stale(row!.secret)) {
      // Sealed under a previous SECRET_KEY: reseal under the current one.
      const plain = this.box.open(row!.secret, userId);
      await this.db.query('UPDATE mfa_totp SET secret = $3 WHERE user_id = $1 AND secret = $2', [userId, row!.secret, this.box.seal(plain, userId)]);
    }
    return r.rowCount === 1;
  }

  /** Removes the authenticator (pending or confirmed). */
  async remove(userId: string, q: Queryable = this.db): Promise<void> {
    await q.query('DELETE FROM mfa_totp WHERE user_id = $1', [userId]);
  }

  /** The time step the code belongs to (within the drift window), or undefined. */
  private matchingStep(sealed: string, userId: string, code: string): number | undefined {
    const token = normaliseCode(code);
    if (!CODE_RE.test(token)) return undefined;
    let secret: string;
    try {
      secret = this.box.open(sealed, userId);
    } catch (err) {
      // No code can be checked against a secret we cannot read: a failed code, not a 500.
      this.warn('a TOTP secret cannot be opened: was SECRET_KEY changed without listing the old one in PREVIOUS_SECRET_KEYS?', err);
      return undefined;
    }
    const totp = this.totp(Secret.fromBase32(secret), '');
    const timestamp = this.clock.now();
    const delta = totp.validate({ token, timestamp, window: DRIFT_STEPS });
    if (delta === null) return undefined;
    return TOTP.counter({ period: TOTP_PERIOD_S, timestamp }) + delta;
  }

  private totp(secret: Secret, label: string): TOTP {
    return new TOTP({ issuer: this.issuer, label, secret, algorithm: 'SHA1', digits: TOTP_DIGITS, period: TOTP_PERIOD_S });
  }
}
