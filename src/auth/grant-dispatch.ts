// The token endpoints' one dispatch: parameters → grant → tokens. Both
// POST /auth/token and POST /auth/browser/token call `dispatchGrant`, so a
// grant added to GRANT_TYPES (second factor, passkey) is served by both,
// under the same rate limit, with no second copy of any login rule.
import type { FastifyReply } from 'fastify';
import type { AuthCore } from './core.js';
import { AuthError } from './errors.js';
import type { TokenResponse } from './grants.js';
import { SECOND_FACTOR_GRANTS } from './mfa-grants.js';
import { WEBAUTHN_GRANT } from './passkey-grants.js';
import type { SessionMeta } from './sessions.js';

export type OAuthParams = Record<string, string | undefined>;

/** RFC 6749 §3.2: parameters are single strings; a repeated one is an error. */
export function oauthParams(body: unknown): OAuthParams {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AuthError('invalid_request', 'The request body must be form-encoded parameters');
  }
  const out: OAuthParams = {};
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (Array.isArray(v)) throw new AuthError('invalid_request', `The parameter "${k}" must not be repeated`);
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') throw new AuthError('invalid_request', `The parameter "${k}" must be a string`);
    out[k] = v;
  }
  return out;
}

/**
 * An answer of a grant that is neither tokens nor an error code, such as a
 * 403 `mfa_required` carrying an `mfa_token`: a grant throws it, and every
 * token endpoint sends its status and body as they are (the same shape on
 * /auth/token and /auth/browser/token).
 */
export class GrantAnswer extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(`grant answer ${status}`);
    this.name = 'GrantAnswer';
  }
}

/** Sends a GrantAnswer as it is: JSON, never shaped by the route's response schemas. */
export function sendGrantAnswer(reply: FastifyReply, answer: GrantAnswer): FastifyReply {
  return reply.code(answer.status).type('application/json').serializer(JSON.stringify).send(answer.body);
}

/** One grant: its parameters checked, then the rule in grants.ts (or a module of its own). */
export type GrantHandler = (core: AuthCore, p: OAuthParams, meta: SessionMeta) => Promise<TokenResponse>;

/** Every grant_type the token endpoints accept. A new grant is one entry here. */
export const GRANT_TYPES: Record<string, GrantHandler> = {
  password: (core, p, meta) => {
    if (!p.username || p.password === undefined) {
      throw new AuthError('invalid_request', 'The username and password parameters are required');
    }
    return core.grants.password({ username: p.username, password: p.password, scope: p.scope }, meta);
  },
  refresh_token: (core, p, meta) => {
    if (!p.refresh_token) throw new AuthError('invalid_request', 'The refresh_token parameter is required');
    return core.grants.refresh({ refreshToken: p.refresh_token, scope: p.scope }, meta);
  },
  [WEBAUTHN_GRANT]: (core, p, meta) => {
    if (!p.assertion) throw new AuthError('invalid_request', 'The assertion parameter is required');
    return core.passkeyGrants.webauthn({ assertion: p.assertion, scope: p.scope }, meta);
  },
  ...SECOND_FACTOR_GRANTS,
};

export interface DispatchOptions {
  /** Grant types this endpoint refuses as unsupported (the browser endpoint: refresh_token, which only its cookie may carry). */
  exclude?: readonly string[];
}

/**
 * Runs the grant the parameters name, after the token endpoint's per-IP
 * limit. A missing grant_type with username and password is `password`
 * (as FastAPI's OAuth2PasswordRequestForm does). Tokens, or a GrantAnswer
 * for the caller to send as it is; errors are thrown.
 */
export async function dispatchGrant(core: AuthCore, p: OAuthParams, meta: SessionMeta, opts: DispatchOptions = {}): Promise<TokenResponse | GrantAnswer> {
  const grant = p.grant_type ?? (p.username !== undefined && p.password !== undefined ? 'password' : undefined);
  if (grant === undefined) throw new AuthError('invalid_request', 'The grant_type parameter is required');
  const supported = Object.keys(GRANT_TYPES).filter((g) => !opts.exclude?.includes(g));
  const handler = Object.hasOwn(GRANT_TYPES, grant) && supported.includes(grant) ? GRANT_TYPES[grant] : undefined;
  if (!handler) throw new AuthError('unsupported_grant_type', `Supported grant types: ${supported.join(', ')}`);
  // A refresh with a live refresh token spends no per-address budget: people behind one NAT (or a
  // carrier's) refresh silently all day, and a neighbour's flood must not sign them all out. A
  // refused refresh spends one, as any other grant does up front; a live session has its own budget.
  const refreshing = grant === 'refresh_token';
  if (!refreshing) await core.limits.tokenRequest(meta.ip ?? '');
  try {
    return await handler(core, p, meta);
  } catch (err) {
    if (err instanceof GrantAnswer) return err;
    if (refreshing && err instanceof AuthError && err.code !== 'rate_limited') await core.limits.tokenRequest(meta.ip ?? '');
    throw err;
  }
}
