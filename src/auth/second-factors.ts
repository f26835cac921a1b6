// Managing a user's second factors: TOTP enrollment and its confirmation
// (which hands out the recovery codes), the codes a signed-in user must show
// to disable TOTP or get new recovery codes, the status, and an admin's
// reset. Every change goes through users.changeSecondFactors, so the
// user's `mfa` flag (what the password grant reads) moves in the same
// transaction. Codes shown here are counted like sign-in codes (the
// account's second-factor counters): a stolen access token cannot be used
// to guess its way to turning the factor off.
import type { AuditLog } from './audit.js';
import { AuthError } from './errors.js';
import type { MfaChallenges } from './mfa-challenge.js';
import type { Passkeys } from './passkeys.js';
import { secondFactorKey, type AuthRateLimits } from './rate-limit.js';
import type { RecoveryCodes } from './recovery-codes.js';
import type { SessionMeta, Sessions } from './sessions.js';
import { normaliseCode, type TotpEnrollment, type TotpFactor } from './totp.js';
import type { UsersRepository } from './users.js';

export interface MfaStatus {
  totp: boolean;
  recovery_codes_left: number;
  passkeys: number;
}

export interface SecondFactorDeps {
  users: UsersRepository;
  challenges: MfaChallenges;
  totp: TotpFactor;
  recovery: RecoveryCodes;
  passkeys: Pick<Passkeys, 'count'>;
  limits: AuthRateLimits;
  sessions: Sessions;
  audit: AuditLog;
}

const WRONG_CODE = 'The code is wrong, expired or already used';
const wrongCode = () => new AuthError('mfa_code_invalid', WRONG_CODE);

export class SecondFactors {
  constructor(private readonly deps: SecondFactorDeps) {}

  async status(userId: string): Promise<MfaStatus> {
    const [totp, left, passkeys] = await Promise.all([
      this.deps.totp.enabledFor(userId),
      this.deps.recovery.left(userId),
      this.deps.passkeys.count(userId),
    ]);
    return { totp, recovery_codes_left: left, passkeys };
  }

  /** A pending TOTP enrollment (the caller has re-checked the password); 409 when TOTP is on. */
  async enrollTotp(user: { id: string; username: string }): Promise<TotpEnrollment> {
    const enrollment = await this.deps.totp.enroll(user);
    if (!enrollment) throw new AuthError('mfa_already_enabled', 'Two-factor authentication is already on; turn it off first to enroll again');
    return enrollment;
  }

  /** The first code turns TOTP on and returns the recovery codes (shown once). */
  async confirmTotp(user: { id: string; username: string }, code: string, meta: SessionMeta & { sessionId?: string }): Promise<string[]> {
    const { users, totp, recovery, challenges } = this.deps;
    const codes = await users.changeSecondFactors(user.id, async (tx) => {
      const ok = await totp.confirm(user.id, code, tx);
      const result = ok ? await recovery.replace(user.id, tx) : undefined;
      return { result, mfa: (await challenges.methods(user.id, tx)).length > 0 };
    });
    if (!codes) {
      if (await totp.enabledFor(user.id)) throw new AuthError('mfa_already_enabled', 'Two-factor authentication is already on');
      throw wrongCode();
    }
    this.deps.audit.record({ type: 'mfa_enabled', userId: user.id, username: user.username, sessionId: meta.sessionId, meta, detail: { method: 'totp' } });
    return codes;
  }

  /**
   * A current TOTP code or an unused recovery code of the user (used up by
   * this check), under the account's second-factor counters. Returns which it was.
   */
  async checkCode(user: { id: string; username: string }, code: string, meta: SessionMeta): Promise<'totp' | 'recovery_code'> {
    const { limits, totp, recovery } = this.deps;
    if (!(await totp.enabledFor(user.id))) throw new AuthError('mfa_not_enabled', 'Two-factor authentication is not on');
    const key = secondFactorKey(user.id);
    const attempt = await limits.checkLogin(key, meta.ip ?? '');
    const method = /^\d{6}$/.test(normaliseCode(code)) ? 'totp' : 'recovery_code';
    const ok = method === 'totp' ? await totp.verify(user.id, code) : await recovery.use(user.id, code);
    if (!ok) {
      await limits.loginFailed(key, meta.ip ?? '');
      this.deps.audit.record({ type: 'mfa_failed', userId: user.id, username: user.username, meta, detail: { method } });
      throw wrongCode();
    }
    await limits.loginSucceeded(attempt);
    return method;
  }

  /** Turns TOTP off (with a code): its recovery codes go too, and every session but `keepSession` ends. */
  async disableTotp(user: { id: string; username: string }, code: string, meta: SessionMeta, keepSession: string): Promise<void> {
    const { users, totp, recovery, challenges, sessions } = this.deps;
    await this.checkCode(user, code, meta);
    await users.changeSecondFactors(user.id, async (tx) => {
      await totp.remove(user.id, tx);
      await recovery.remove(user.id, tx);
      await challenges.forget(user.id, tx);
      return { result: undefined, mfa: (await challenges.methods(user.id, tx)).length > 0 };
    });
    await sessions.revokeUserSessions(user.id, keepSession);
    this.deps.audit.record({ type: 'mfa_disabled', userId: user.id, username: user.username, sessionId: keepSession, meta, detail: { method: 'totp' } });
  }

  /** A new set of recovery codes (with a code); the old set dies. */
  async newRecoveryCodes(user: { id: string; username: string }, code: string, meta: SessionMeta): Promise<string[]> {
    const { users, recovery, challenges } = this.deps;
    await this.checkCode(user, code, meta);
    return users.changeSecondFactors(user.id, async (tx) => {
      const codes = await recovery.replace(user.id, tx);
      return { result: codes, mfa: (await challenges.methods(user.id, tx)).length > 0 };
    });
  }

  /** An administrator's reset: every second factor of the user goes, and their pending sign-ins. The caller ends their sessions. */
  async reset(userId: string): Promise<void> {
    const { users, challenges } = this.deps;
    await users.changeSecondFactors(userId, async (tx) => {
      await challenges.removeAll(userId, tx);
      return { result: undefined, mfa: false };
    });
  }
}
