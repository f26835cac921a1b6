// Account recovery and email (issue 12): password reset, address
// verification and the address-change notices. Tokens are 256 random bits
// mailed once and kept only as their SHA-256 (account_tokens), single-use,
// each tied to the address it was mailed to: once the account's address
// changes, the tokens mailed to the old one stop working. Every mail is
// queued in the transaction that makes its token (outbox.ts).
import { createHash, randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { Database, Queryable } from '../db/client.js';
import type { AuditLog } from './audit.js';
import { AuthError, rateLimited, validationFailed } from './errors.js';
import { exceedsLength } from './password-length.js';
import type { PasswordHasher } from './passwords.js';
import type { SessionMeta, Sessions } from './sessions.js';
import type { UserRow, UsersRepository } from './users.js';
import type { MailOutbox } from './mail/outbox.js';
import { emailChangedMail, passwordResetDoneMail, passwordResetMail, verifyEmailMail, type MailContext, type RenderedMail } from './mail/templates/index.js';

type Purpose = 'password_reset' | 'email_verify';

export interface AccountEmailOptions {
  resetTtlMs: number;
  verifyTtlMs: number;
  /** Mails of one kind per address per hour (beyond: none, or 429 where the caller asked). */
  mailsPerHour: number;
  from: string;
  context: MailContext;
  passwordPolicy: { minLength: number; maxLength: number; minScore: number };
}

interface ResetRequest {
  email: string;
  ip: string | null;
  userAgent: string | null;
}

const HOUR = 3600_000;
/** A token as mailed: 256 random bits, base64url (43 characters). */
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

const sha256 = (token: string) => createHash('sha256').update(token, 'utf8').digest();

export const invalidResetToken = () =>
  new AuthError('reset_token_invalid', 'The reset link is not valid: it is unknown, used or expired; ask for a new one');
export const invalidVerifyToken = () =>
  new AuthError('verify_token_invalid', 'The verification link is not valid: it is unknown, used or expired; ask for a new one');

export class AccountEmail {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly users: UsersRepository,
    private readonly sessions: Sessions,
    private readonly hasher: PasswordHasher,
    private readonly audit: AuditLog,
    readonly outbox: MailOutbox,
    private readonly opts: AccountEmailOptions,
  ) {}

  private now(): Date {
    return new Date(this.clock.now());
  }

  private mail(to: string, m: RenderedMail) {
    return { from: this.opts.from, to, ...m };
  }

  /** A new token for `user`, in `tx`. */
  private async issue(tx: Queryable, user: UserRow, purpose: Purpose, ttlMs: number): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    const now = this.now();
    await tx.query(
      `INSERT INTO account_tokens (token_hash, user_id, purpose, email, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
      [sha256(token), user.id, purpose, user.email, now, new Date(now.getTime() + ttlMs)],
    );
    return token;
  }

  /** When the next mail of `purpose` may go to this user (null: now). */
  private async mailLimit(q: Queryable, userId: string, purpose: Purpose): Promise<number | null> {
    const since = new Date(this.clock.now() - HOUR);
    const r = await q.query<{ n: number; oldest: Date | null }>(
      `SELECT count(*)::int AS n, min(created_at) AS oldest FROM (
         SELECT created_at FROM account_tokens WHERE user_id = $1 AND purpose = $2 AND created_at > $3
         ORDER BY created_at DESC LIMIT $4) recent`,
      [userId, purpose, since, this.opts.mailsPerHour],
    );
    const { n, oldest } = r.rows[0]!;
    return n >= this.opts.mailsPerHour && oldest ? new Date(oldest).getTime() + HOUR - this.clock.now() : null;
  }

  /** Housekeeping: tokens that can neither be used nor count towards an hourly limit any more. */
  async prune(): Promise<void> {
    const now = this.clock.now();
    await this.db.query('DELETE FROM account_tokens WHERE expires_at < $1 AND created_at < $2', [new Date(now), new Date(now - HOUR)]);
  }

  // ---- password reset -------------------------------------------------

  /**
   * The request path: one sealed row in the outbox, whatever the address,
   * so the answer says nothing and takes the same time. The sender looks
   * the address up (expandResetRequest); the caller pokes it once the
   * answer is out, so that work never delays (or times) the answer.
   */
  async requestReset(email: string, meta: SessionMeta): Promise<void> {
    const request: ResetRequest = { email, ip: meta.ip, userAgent: meta.userAgent };
    await this.outbox.enqueueRequest(request);
  }

  /** In the sender's transaction: a token and a mail for a known, enabled address under its hourly limit; else nothing. */
  async expandResetRequest(tx: Queryable, raw: unknown): Promise<void> {
    const req = raw as ResetRequest;
    const meta = { ip: req.ip, userAgent: req.userAgent };
    // Locked: two nodes expanding requests for one address count its mails one after the other.
    const r = await tx.query<UserRow>('SELECT * FROM users WHERE lower(email) = lower($1) FOR UPDATE', [req.email]);
    const user = r.rows[0];
    let outcome: string;
    if (!user) outcome = 'unknown_address';
    else if (user.disabled) outcome = 'disabled';
    else if ((await this.mailLimit(tx, user.id, 'password_reset')) !== null) outcome = 'hourly_limit';
    else {
      const token = await this.issue(tx, user, 'password_reset', this.opts.resetTtlMs);
      const minutes = Math.round(this.opts.resetTtlMs / 60_000);
      await this.outbox.enqueue(tx, this.mail(user.email, passwordResetMail(this.opts.context, { username: user.username, token, minutes })));
      outcome = 'mailed';
    }
    this.audit.record({ type: 'password_reset_requested', userId: user?.id ?? null, username: user?.username ?? null, meta, detail: { outcome } });
  }

  /**
   * A new password with a reset token: the policy first (a failure leaves
   * the token usable), then one transaction that spends the token, kills
   * every other reset token of the user, sets the password and queues the
   * notice; every session ends (before and after it: a crash in between
   * can only end sessions early, never leave an intruder's alive).
   */
  async confirmReset(token: string, newPassword: string, meta: SessionMeta): Promise<void> {
    if (!TOKEN_RE.test(token)) throw invalidResetToken();
    const hash = sha256(token);
    const found = await this.db.query<UserRow & { mailed_to: string }>(
      `SELECT u.*, t.email AS mailed_to FROM account_tokens t JOIN users u ON u.id = t.user_id
       WHERE t.token_hash = $1 AND t.purpose = 'password_reset' AND t.used_at IS NULL AND t.expires_at > $2
         AND lower(t.email) = lower(u.email) AND NOT u.disabled`,
      [hash, this.now()],
    );
    const user = found.rows[0];
    if (!user) throw invalidResetToken();
    const errors = exceedsLength(newPassword, this.opts.passwordPolicy.maxLength)
      ? [{ path: '/new_password', message: `must be at most ${this.opts.passwordPolicy.maxLength} characters` }]
      : await this.hasher.checkPolicy(newPassword, { username: user.username, email: user.email }, this.opts.passwordPolicy, '/new_password');
    if (errors.length) throw validationFailed(errors, 'The new password does not meet the password policy');
    const passwordHash = await this.hasher.hash(newPassword);
    await this.sessions.revokeUserSessions(user.id);
    await this.db.transaction(async (tx) => {
      const now = this.now();
      const spent = await tx.query(
        `UPDATE account_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id`,
        [hash, now],
      );
      if (!spent.rowCount) throw invalidResetToken(); // spent by a concurrent request
      await tx.query(`UPDATE account_tokens SET used_at = $2 WHERE user_id = $1 AND purpose = 'password_reset' AND used_at IS NULL`, [user.id, now]);
      await this.users.resetPassword(tx, user.id, passwordHash, user.mailed_to);
      await this.outbox.enqueue(tx, this.mail(user.email, passwordResetDoneMail(this.opts.context, { username: user.username })));
    });
    await this.users.announce(user.id);
    await this.sessions.revokeUserSessions(user.id);
    this.outbox.poke();
    this.audit.record({ type: 'password_reset', userId: user.id, username: user.username, meta });
  }

  // ---- address verification -----------------------------------------

  /**
   * Mails a verification link to the user's address. Over the hourly limit:
   * `onLimit` 'refuse' answers 429, 'skip' sends nothing (false).
   */
  async sendVerification(user: UserRow, onLimit: 'refuse' | 'skip'): Promise<boolean> {
    const mailed = await this.db.transaction(async (tx) => {
      await tx.query('SELECT 1 FROM users WHERE id = $1 FOR UPDATE', [user.id]);
      const wait = await this.mailLimit(tx, user.id, 'email_verify');
      if (wait !== null) {
        if (onLimit === 'refuse') throw rateLimited('Too many verification mails for this address', wait);
        return false;
      }
      await this.queueVerification(tx, user);
      return true;
    });
    if (mailed) this.outbox.poke();
    return mailed;
  }

  private async queueVerification(tx: Queryable, user: UserRow): Promise<void> {
    const token = await this.issue(tx, user, 'email_verify', this.opts.verifyTtlMs);
    const hours = Math.round(this.opts.verifyTtlMs / HOUR);
    await this.outbox.enqueue(tx, this.mail(user.email, verifyEmailMail(this.opts.context, { username: user.username, token, hours })));
  }

  /** Spends a verification token: the address it was mailed to is verified, if it is still the account's. */
  async verifyEmail(token: string, meta: SessionMeta): Promise<UserRow> {
    if (!TOKEN_RE.test(token)) throw invalidVerifyToken();
    const user = await this.db.transaction(async (tx) => {
      const spent = await tx.query<{ user_id: string; email: string }>(
        `UPDATE account_tokens SET used_at = $2 WHERE token_hash = $1 AND purpose = 'email_verify' AND used_at IS NULL AND expires_at > $2
         RETURNING user_id, email`,
        [sha256(token), this.now()],
      );
      const t = spent.rows[0];
      // Rolled back when the address has changed since: that token can never verify anything.
      const row = t && (await this.users.markEmailVerified(tx, t.user_id, t.email));
      if (!row) throw invalidVerifyToken();
      return row;
    });
    await this.users.announce(user.id);
    this.audit.record({ type: 'email_verified', userId: user.id, username: user.username, meta });
    return user;
  }

  /** After PATCH /users/me moved the account: a link to the new address, a notice to the old one. */
  async addressChanged(user: UserRow, oldEmail: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      await this.queueVerification(tx, user);
      await this.outbox.enqueue(tx, this.mail(oldEmail, emailChangedMail(this.opts.context, { username: user.username, newEmail: user.email })));
    });
    this.outbox.poke();
  }
}
