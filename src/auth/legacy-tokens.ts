// Tokens of the FastAPI app a team is moving from (LEGACY_SECRET_KEY until
// LEGACY_TOKENS_UNTIL), so its users are not all logged out on the day of
// the switch. Such a token is what the tutorials make: HS256 with the old
// app's key, `sub` = the username (or the email, as some tutorials do) and
// `exp`; no typ, iss, aud, jti or sid. Accepted on protected routes as that
// user with the scopes of role `user` (never `admin`, whatever the role);
// a disabled or deleted user is refused at once, as with our own tokens.
//
// The guard tries this only after our own verification failed, and only
// for a token that does not claim to be one of ours (typ at+jwt): a
// Gatehouse token that fails our checks is never read again as a legacy one.
//
// Revocation: a legacy token has no session. Its `jti` here is a UUID
// derived from the token itself, so logout revokes that token on every node
// until it expires. Whatever ends all of a user's sessions (logout global,
// a password change) ends all of the user's legacy tokens too, through a
// per-user denylist entry kept until the window closes (revokeUser); a
// disabled user is refused at once. Every use is counted in the logs (a
// line a minute, and each user's first use) so the team can see when to
// end the window.
import { createHash } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { createVerifier } from 'fast-jwt';
import type { Clock } from '../clock.js';
import { invalidToken } from './errors.js';
import type { Principal } from './guard.js';
import type { Revocations } from './revocations.js';
import type { ScopeRules } from './scopes.js';
import { MAX_TOKEN_BYTES } from './tokens.js';
import type { UserStates } from './user-state.js';
import type { UsersRepository } from './users.js';

/** The session id of a principal that has none (never a real session: ours are random v4 UUIDs). */
export const NO_SESSION = '00000000-0000-0000-0000-000000000000';
const HEADER_MEMBERS = new Set(['alg', 'typ']);
const MINUTE = 60_000;
/** Remembered logins (login → user id) and users already logged as first use: bounded. */
const MAX_REMEMBERED = 100_000;

export interface LegacyTokenOptions {
  secretKey: string;
  /** Until when (ms since the epoch) legacy tokens are accepted. */
  untilMs: number;
  leewaySeconds: number;
  clock: Clock;
  log: FastifyBaseLogger;
}

export type LegacyCore = {
  users: Pick<UsersRepository, 'findForLogin'>;
  userStates: Pick<UserStates, 'get'>;
  revocations: Pick<Revocations, 'isRevoked'>;
  scopes: Pick<ScopeRules, 'allowed'>;
};

function decodeHeader(token: string): Record<string, unknown> | undefined {
  try {
    const h = JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString('utf8')) as unknown;
    return h !== null && typeof h === 'object' && !Array.isArray(h) ? (h as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A UUID naming `what` (the denylist and its events carry UUIDs). */
function uuidOf(label: string, what: string): string {
  const h = createHash('sha256').update(label).update('\0').update(what).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
/** The denylist key of one legacy token. */
const tokenId = (token: string) => uuidOf('gatehouse-legacy-token', token);
/** The denylist key of every legacy token of a user. */
const userKey = (userId: string) => uuidOf('gatehouse-legacy-user', userId);

export class LegacyTokens {
  private readonly verifySignature: (token: string) => { header: Record<string, unknown>; payload: Record<string, unknown> };
  private readonly ids = new Map<string, string>();
  private readonly seen = new Set<string>();
  private accepted = 0;
  private refusedLate = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: LegacyTokenOptions) {
    this.verifySignature = createVerifier({
      key: Buffer.from(opts.secretKey, 'utf8'),
      // HS256 and nothing else: no `none`, no key confusion with another algorithm.
      algorithms: ['HS256'],
      requiredClaims: ['sub', 'exp'],
      complete: true,
      // exp/nbf are checked against the movable clock below.
      ignoreExpiration: true,
      ignoreNotBefore: true,
    });
  }

  get untilMs(): number {
    return this.opts.untilMs;
  }

  /**
   * Whether to try this token as a legacy one: it does not claim to be ours.
   * Cheap, and decides only which error a refused token gets.
   */
  applies(token: string): boolean {
    if (token.length > MAX_TOKEN_BYTES) return false;
    const header = decodeHeader(token);
    return header !== undefined && !(typeof header.typ === 'string' && /^(application\/)?at\+jwt$/i.test(header.typ));
  }

  /** Signature, header and time: the login the token names. Throws the 401 AuthError. */
  private verify(token: string): { login: string; exp: number } {
    let decoded;
    try {
      decoded = this.verifySignature(token);
    } catch {
      throw invalidToken('The access token is invalid');
    }
    const { header, payload } = decoded;
    if (header.alg !== 'HS256' || Object.keys(header).some((k) => !HEADER_MEMBERS.has(k))) throw invalidToken('The access token is invalid');
    const { sub, exp, nbf } = payload;
    if (typeof sub !== 'string' || sub.length === 0 || sub.length > 320 || typeof exp !== 'number' || (nbf !== undefined && typeof nbf !== 'number')) {
      throw invalidToken('The access token is invalid');
    }
    const now = this.opts.clock.now();
    const leewayMs = this.opts.leewaySeconds * 1000;
    if (exp * 1000 + leewayMs <= now) throw invalidToken('The access token expired');
    if (typeof nbf === 'number' && nbf * 1000 - leewayMs > now) throw invalidToken('The access token is not yet valid');
    if (now >= this.opts.untilMs) {
      this.refusedLate++;
      throw invalidToken('Tokens of the previous application are no longer accepted: sign in again');
    }
    return { login: sub, exp };
  }

  /** A legacy token → the principal it stands for, or the 401 AuthError. */
  async authenticate(token: string, core: LegacyCore): Promise<Principal> {
    const { login, exp } = this.verify(token);
    const jti = tokenId(token);
    if (await core.revocations.isRevoked(jti, NO_SESSION)) throw invalidToken('The access token has been revoked');
    let userId = await this.userIdOf(login, core, false);
    let user = userId ? await core.userStates.get(userId) : undefined;
    if (userId && !user?.exists) {
      // Deleted since we remembered it: the name may belong to someone new now.
      userId = await this.userIdOf(login, core, true);
      user = userId ? await core.userStates.get(userId) : undefined;
    }
    if (!userId || !user || !user.exists || user.disabled || !user.profile) throw invalidToken('The user is disabled or no longer exists');
    if (await core.revocations.isRevoked(userKey(userId), NO_SESSION)) throw invalidToken('The access token has been revoked');
    this.count(userId, user.username);
    return {
      userId,
      username: user.username,
      role: user.role,
      // What the old app's users could do here: role user's scopes, never admin.
      scopes: core.scopes.allowed('user'),
      sessionId: NO_SESSION,
      jti,
      exp,
      // No sign-in of ours is known: never "recent" (adding a passkey asks for the password).
      authTime: 0,
      profile: user.profile,
    };
  }

  /**
   * Ends every legacy token of the user, on every node, until the window
   * closes: called whenever all of a user's sessions end (logout global,
   * password change, and the like). Not for "every session but the caller's"
   * when the caller is a legacy token (`keep` = NO_SESSION): that would end
   * the caller too.
   */
  async revokeUser(userId: string, keep: string | undefined, revocations: Pick<Revocations, 'revokeAccessToken'>): Promise<void> {
    if (keep === NO_SESSION || this.opts.clock.now() >= this.opts.untilMs) return;
    await revocations.revokeAccessToken(userKey(userId), Math.ceil(this.opts.untilMs / 1000));
  }

  private async userIdOf(login: string, core: LegacyCore, fresh: boolean): Promise<string | undefined> {
    if (!fresh) {
      const known = this.ids.get(login);
      if (known) return known;
    }
    const row = await core.users.findForLogin(login);
    this.ids.delete(login);
    if (!row) return undefined;
    if (this.ids.size >= MAX_REMEMBERED) this.ids.delete(this.ids.keys().next().value as string);
    this.ids.set(login, row.id);
    return row.id;
  }

  private count(userId: string, username: string): void {
    this.accepted++;
    if (this.seen.has(userId) || this.seen.size >= MAX_REMEMBERED) return;
    this.seen.add(userId);
    this.opts.log.info({ event: 'legacy_token_first_use', userId, username }, 'legacy token: first use by this user');
  }

  /** One line with the counts since the last one (nothing when nothing happened). */
  report(): void {
    if (this.accepted === 0 && this.refusedLate === 0) return;
    this.opts.log.info(
      { event: 'legacy_tokens', accepted: this.accepted, refusedAfterWindow: this.refusedLate, until: new Date(this.opts.untilMs).toISOString() },
      `legacy tokens: ${this.accepted} accepted, ${this.refusedLate} refused after the window`,
    );
    this.accepted = 0;
    this.refusedLate = 0;
  }

  start(): void {
    const until = new Date(this.opts.untilMs).toISOString();
    const open = this.opts.clock.now() < this.opts.untilMs;
    this.opts.log.info({ event: 'legacy_tokens_window', until, open }, open ? `legacy tokens accepted until ${until}` : `legacy token window ended at ${until}`);
    this.timer = setInterval(() => this.report(), MINUTE);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.report();
  }
}
