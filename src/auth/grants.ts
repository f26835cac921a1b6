// The grants: how a login or a refresh becomes tokens. Every endpoint that
// signs someone in (the OAuth token endpoint today; browser sessions and
// second factors later) calls these; route handlers only parse and render.
import type { FastifyBaseLogger } from 'fastify';
import type { AuditLog } from './audit.js';
import { AuthError } from './errors.js';
import { FailureTiming, hashKind } from './failure-timing.js';
import { GrantAnswer } from './grant-dispatch.js';
import { mfaFailed, type MfaChallenge, type MfaChallenges } from './mfa-challenge.js';
import type { PasswordHasher } from './passwords.js';
import { exceedsLength } from './password-length.js';
import { lockoutKey, secondFactorKey, type AuthRateLimits } from './rate-limit.js';
import { parseScope, type ScopeRules } from './scopes.js';
import type { SessionMeta, Sessions } from './sessions.js';
import type { TokenService } from './tokens.js';
import type { UserRow, UsersRepository } from './users.js';

/** When a TokenResponse's refresh token expires (ms): beside the body, never in it (no serializer writes a symbol key). */
export const REFRESH_EXPIRES_AT: unique symbol = Symbol('refreshExpiresAt');

/** The RFC 6749 §5.1 success body. */
export interface TokenResponse {
  access_token: string;
  token_type: 'bearer';
  expires_in: number;
  refresh_token: string;
  scope: string;
  /** For the browser endpoints' cookie lifetime. */
  [REFRESH_EXPIRES_AT]?: number;
}

// Deliberately vague: never says whether the username or the password was wrong.
const BAD_CREDENTIALS = 'Incorrect username or password';
/** RFC 8176: what a password sign-in proved. */
const PASSWORD_AMR = ['pwd'] as const;
/** RFC 8176: added to the first factor's amr when a second one was proved. */
const MFA_AMR = 'mfa';
/** Longest login identifier looked up (an email address is at most 320). */
export const MAX_LOGIN_LENGTH = 320;

/** A second factor refused with a reason for the audit log (a cloned passkey's counters); never shown to the client. */
export interface FactorRefusal {
  detail: Record<string, unknown>;
}

export interface GrantDeps {
  users: UsersRepository;
  hasher: PasswordHasher;
  limits: AuthRateLimits;
  sessions: Sessions;
  tokens: TokenService;
  scopes: ScopeRules;
  passwordMaxLength: number;
  log: FastifyBaseLogger;
  audit: AuditLog;
  /** The second step of sign-ins of accounts with a second factor. */
  challenges: MfaChallenges;
  /** REQUIRE_EMAIL_VERIFICATION: a right password for an unverified address is refused. */
  requireVerifiedEmail?: boolean;
  /** Mails a fresh verification link (rate-limited) to a user refused for that reason. */
  emailUnverified?: (user: UserRow) => Promise<void>;
}


export class Grants {
  /** Pads failed logins to one duration (failure-timing.ts). */
  readonly failureTiming = new FailureTiming();

  constructor(private readonly deps: GrantDeps) {}

  /**
   * One verification of each kind of hash the users table holds (argon2id,
   * and bcrypt at each cost still present), so the first failed login is
   * padded like the rest. A kind that appears later is learnt at its first use.
   */
  async calibrate(): Promise<void> {
    const samples = [await this.deps.hasher.prepare(), ...(await this.deps.users.legacyHashSamples())];
    for (const hash of samples) await this.timedVerify(hash, 'calibration');
  }

  private async timedVerify(storedHash: string, password: string) {
    const t0 = performance.now();
    const result = await this.deps.hasher.verify(storedHash, password);
    this.failureTiming.observe(hashKind(storedHash), performance.now() - t0);
    return result;
  }

  /** A `scope` parameter → the scopes asked for (null: none asked for). Unknown scopes are refused. */
  requestedScope(raw: string | undefined): string[] | null {
    if (raw === undefined) return null;
    const scopes = parseScope(raw);
    if (scopes.length === 0) return null; // "scope=" means none asked for
    const unknown = scopes.filter((s) => !this.deps.scopes.isScope(s));
    if (unknown.length) throw new AuthError('invalid_scope', `Unknown scope: ${unknown.join(' ')}`);
    return scopes;
  }

  /**
   * The password grant: dummy hash for unknown names, verification, lockout
   * bookkeeping, the scope decision, a hash upgrade, then a new session.
   * Every failure of the credentials is the same `invalid_credentials`.
   */
  async password(input: { username: string; password: string; scope?: string }, meta: SessionMeta): Promise<TokenResponse> {
    const { users, hasher, limits, scopes } = this.deps;
    const { username, password } = input;
    const startedAt = performance.now();
    const requested = this.requestedScope(input.scope);
    // The account first: every spelling of it (username, email, NFKC variants) shares one lockout counter.
    const user = username.length > MAX_LOGIN_LENGTH ? undefined : await users.findForLogin(username);
    const loginKey = lockoutKey(username, user?.id);
    const attempt = await limits.checkLogin(loginKey, meta.ip ?? '');
    // Over-long input can never be valid: refused before any hashing.
    const tooLong = exceedsLength(password, this.deps.passwordMaxLength) || username.length > MAX_LOGIN_LENGTH;
    const result = tooLong
      ? { ok: false, needsRehash: false }
      : await this.timedVerify(user ? user.password_hash : await hasher.prepare(), password);
    if (!user || !result.ok || user.disabled) {
      await limits.loginFailed(loginKey, meta.ip ?? '');
      // What was typed as the username (the log truncates it), never the password.
      const reason = tooLong ? 'too_long' : !user ? 'unknown_user' : !result.ok ? 'wrong_password' : 'disabled';
      this.deps.audit.record({ type: 'login_failed', userId: user?.id, username, meta, detail: { reason } });
      // Same duration for every way of failing: no enumeration by timing.
      await this.failureTiming.pad(startedAt);
      throw new AuthError('invalid_credentials', BAD_CREDENTIALS);
    }
    await limits.loginSucceeded(attempt);
    // Only now, after the right password: a wrong one never learns whether the address is verified.
    if (this.deps.requireVerifiedEmail && !user.email_verified) await this.refuseUnverified(user, username, meta);
    if (requested && !scopes.roleAllows(user.role, requested)) {
      this.deps.audit.record({ type: 'login_failed', userId: user.id, username, meta, detail: { reason: 'invalid_scope' } });
      throw new AuthError('invalid_scope', 'The requested scope is not allowed for this account');
    }
    if (result.needsRehash) await this.upgradeHash(user, password);
    const scope = scopes.format(requested ?? scopes.allowed(user.role));
    if (user.mfa) {
      // Only after a right password: a wrong one never learns that the account has a second factor.
      const challenge = await this.deps.challenges.issue(user.id, scope, PASSWORD_AMR);
      if (challenge) {
        throw new GrantAnswer(403, { error: 'mfa_required', error_description: 'A second factor is required: send the mfa_token with a code', ...challenge });
      }
    }
    const { response, sessionId } = await this.openSession(user, scope, meta);
    this.deps.audit.record({ type: 'login', userId: user.id, username: user.username, sessionId, meta, detail: { scope } });
    return response;
  }

  /**
   * A second-factor grant: takes one attempt of the mfa_token, checks the
   * account's second-factor counters (the password's rules, counted apart),
   * then `verify` (the factor's check of what the client sent); a success
   * finishes the login with `amr` (what the factor proves, e.g. ["otp"]).
   * Every failure is the same invalid_grant.
   */
  async secondFactor(
    input: { mfaToken: string; method: string },
    meta: SessionMeta,
    verify: (challenge: MfaChallenge) => Promise<boolean | FactorRefusal>,
    amr: readonly string[],
  ): Promise<TokenResponse> {
    const { challenges, limits, audit } = this.deps;
    const challenge = await challenges.attempt(input.mfaToken);
    if (!challenge) throw mfaFailed();
    const key = secondFactorKey(challenge.userId);
    const attempt = await limits.checkLogin(key, meta.ip ?? '');
    const outcome = await verify(challenge);
    if (outcome !== true) {
      await limits.loginFailed(key, meta.ip ?? '');
      const why = outcome === false ? {} : outcome.detail;
      audit.record({ type: 'mfa_failed', userId: challenge.userId, meta, detail: { method: input.method, ...why } });
      throw mfaFailed();
    }
    await limits.loginSucceeded(attempt);
    return this.completeSecondFactor(challenge, amr, meta);
  }

  /**
   * The end of a sign-in whose second factor was just proved: spends the
   * challenge (once, whichever node), then opens the session with the first
   * factor's amr, the second's, and "mfa".
   */
  async completeSecondFactor(challenge: MfaChallenge, amr: readonly string[], meta: SessionMeta): Promise<TokenResponse> {
    const { users, scopes, challenges } = this.deps;
    if (!(await challenges.spend(challenge))) throw mfaFailed();
    const user = await users.findById(challenge.userId);
    if (!user || user.disabled) throw mfaFailed();
    // The role may have changed in the minutes since the password.
    const held = parseScope(challenge.scope).filter((s) => scopes.roleAllows(user.role, [s]));
    const scope = scopes.format(held);
    const sessionAmr = [...new Set([...challenge.amr, ...amr, MFA_AMR])];
    const { response, sessionId } = await this.openSession(user, scope, meta, sessionAmr);
    this.deps.audit.record({ type: 'login', userId: user.id, username: user.username, sessionId, meta, detail: { scope, amr: sessionAmr } });
    return response;
  }

  private async refuseUnverified(user: UserRow, username: string, meta: SessionMeta): Promise<never> {
    try {
      await this.deps.emailUnverified?.(user);
    } catch (err) {
      this.deps.log.warn({ userId: user.id, err: (err as Error).message }, 'could not queue a verification mail');
    }
    this.deps.audit.record({ type: 'login_failed', userId: user.id, username, meta, detail: { reason: 'email_not_verified' } });
    throw new AuthError('email_not_verified', 'The email address of this account is not verified: follow the link just mailed to it');
  }

  /** The refresh grant: rotation with the grace window and reuse detection (sessions.ts); may narrow, never widen. */
  async refresh(input: { refreshToken: string; scope?: string }, meta: SessionMeta): Promise<TokenResponse> {
    const { scopes, sessions, tokens, limits } = this.deps;
    const requested = this.requestedScope(input.scope);
    const r = await sessions.refresh(input.refreshToken, meta, async (ctx) => {
      // A live session's refreshes are limited per session, not per address (grant-dispatch.ts).
      await limits.sessionRefresh(ctx.sessionId);
      // The session's first grant, less anything the user's role no longer allows.
      const held = parseScope(ctx.sessionScope).filter((s) => scopes.roleAllows(ctx.role, [s]));
      if (!requested) return scopes.format(held);
      if (!requested.every((s) => held.includes(s))) {
        throw new AuthError('invalid_scope', 'The requested scope exceeds the scope of the session');
      }
      return scopes.format(requested);
    });
    const access = tokens.issue({
      sub: r.userId,
      sid: r.sessionId,
      scope: r.grantedScope,
      username: r.username,
      authTime: r.authTime,
      amr: r.amr,
    });
    this.deps.audit.record({ type: 'refresh', userId: r.userId, username: r.username, sessionId: r.sessionId, meta, detail: { scope: r.grantedScope } });
    return tokenResponse(access.token, access.expiresIn, r.refreshToken, r.grantedScope, r.refreshExpiresAt);
  }

  /** A new session for a user who has just proved who they are (`amr`: how, RFC 8176). */
  async openSession(
    user: Pick<UserRow, 'id' | 'username'>,
    scope: string,
    meta: SessionMeta,
    amr: readonly string[] = PASSWORD_AMR,
  ): Promise<{ response: TokenResponse; sessionId: string }> {
    const { sessionId, refreshToken, createdAt, refreshExpiresAt } = await this.deps.sessions.open(user.id, scope, meta, amr);
    const access = this.deps.tokens.issue({ sub: user.id, sid: sessionId, scope, username: user.username, authTime: createdAt, amr });
    return { response: tokenResponse(access.token, access.expiresIn, refreshToken, scope, refreshExpiresAt), sessionId };
  }

  /**
   * A signed-in user re-proving who they are before a sensitive change
   * (password, email): as rate-limited as a login, on the same account
   * counter, so it cannot be used to guess the password instead.
   */
  async verifyCurrentPassword(user: UserRow, password: string, meta: SessionMeta): Promise<void> {
    const { limits, hasher } = this.deps;
    // At most a few such changes an hour, whatever their outcome (each costs shared hashing threads).
    await limits.sensitiveAction(user.id);
    // The login's counter for this account: guesses here and failed logins lock it together.
    const key = lockoutKey(user.username, user.id);
    await limits.checkLogin(key, meta.ip ?? '');
    const ok = !exceedsLength(password, this.deps.passwordMaxLength) && (await hasher.verify(user.password_hash, password)).ok;
    if (!ok) {
      await limits.loginFailed(key, meta.ip ?? '');
      throw new AuthError('current_password_incorrect', 'The current password is incorrect');
    }
  }

  /** A better hash for a right password. Never turns the login into an error: a busy pool postpones it to the next login. */
  private async upgradeHash(user: UserRow, password: string): Promise<void> {
    try {
      await this.deps.users.setPasswordHash(user.id, await this.deps.hasher.hash(password));
    } catch (err) {
      this.deps.log.warn({ userId: user.id, err: (err as Error).message }, 'password hash upgrade postponed');
    }
  }
}

export function tokenResponse(accessToken: string, expiresIn: number, refreshToken: string, scope: string, refreshExpiresAt?: number): TokenResponse {
  return { access_token: accessToken, token_type: 'bearer', expires_in: expiresIn, refresh_token: refreshToken, scope, [REFRESH_EXPIRES_AT]: refreshExpiresAt };
}
