// The one guard for protected routes (RFC 6750). A route opts in with
// `config: { auth: { scopes: [...] } }` (or `{ optional: true }`) and finds
// a typed principal on `request.principal`. Verification costs no database
// round trip while nothing changed: signature (cached), denylist and user
// state are all local, kept in step across nodes by the event bus.
//
// It fails closed: the guard is one onRequest hook on the root instance, so
// it runs for every route of the app, whenever and wherever the route was
// registered; the plugin refuses to be registered anywhere else (a route
// outside the guard's context could otherwise declare `auth` and be open).
// It answers its 401 and 403 itself, so a host's error handler cannot turn
// them into something else.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AuthError, insufficientScope, invalidToken, notAuthenticated } from './errors.js';
import { sendProblem } from '../http/render.js';
import type { AuthCore } from './core.js';
import { parseScope, type Role } from './scopes.js';
import { InvalidTokenError } from './tokens.js';
import type { PublicUser } from './users.js';

export interface Principal {
  userId: string;
  username: string;
  role: Role;
  scopes: readonly string[];
  sessionId: string;
  jti: string;
  /** Access token expiry, seconds since the epoch. */
  exp: number;
  /** When the session's sign-in happened (the token's auth_time), seconds since the epoch. */
  authTime: number;
  /** The user's public profile, as the guard just checked it. */
  profile: PublicUser;
}

export interface RouteAuth {
  scopes?: readonly string[];
  /** Anonymous callers pass through with `principal` null; a presented token must still be valid. */
  optional?: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

// RFC 6750 §2.1 b64token.
const BEARER_RE = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** The principal of a route declared with required scopes (never null there). */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw notAuthenticated();
  return request.principal;
}

export type GuardCore = Pick<AuthCore, 'tokens' | 'revocations' | 'userStates' | 'scopes' | 'users' | 'legacyTokens'>;

/** Signature and claims only: throws the 401 AuthError. */
export function verifyAccessToken(core: Pick<AuthCore, 'tokens'>, token: string) {
  try {
    return core.tokens.verify(token);
  } catch (err) {
    if (err instanceof InvalidTokenError) throw invalidToken(err.description);
    throw err;
  }
}

/** Bearer token → principal, or a 401 AuthError. */
export async function authenticate(core: GuardCore, token: string): Promise<Principal> {
  let claims;
  try {
    claims = verifyAccessToken(core, token);
  } catch (err) {
    // Not one of ours: during the move, perhaps one of the previous app's (legacy-tokens.ts; the only caller).
    if (core.legacyTokens?.applies(token)) return core.legacyTokens.authenticate(token, core);
    throw err;
  }
  if (await core.revocations.isRevoked(claims.jti, claims.sid)) throw invalidToken('The access token has been revoked');
  const user = await core.userStates.get(claims.sub);
  if (!user.exists || user.disabled || !user.profile) throw invalidToken('The user is disabled or no longer exists');
  const scopes = parseScope(claims.scope);
  // A demoted user's tokens lose what the new role does not allow.
  if (!core.scopes.roleAllows(user.role, scopes)) throw invalidToken('The access token carries a scope the user no longer holds');
  return {
    userId: claims.sub,
    username: user.username,
    role: user.role,
    scopes,
    sessionId: claims.sid,
    jti: claims.jti,
    exp: claims.exp,
    authTime: claims.auth_time,
    profile: user.profile,
  };
}

/** How many Authorization headers came (Node keeps only the first in `headers`). */
function authorizationCount(request: FastifyRequest): number {
  const raw = request.raw.rawHeaders;
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 13 && raw[i]!.toLowerCase() === 'authorization') n++;
  return n;
}

export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header === undefined) return undefined;
  // Which one is meant? Refuse rather than guess (a proxy and the app could each pick another).
  if (authorizationCount(request) > 1) throw new AuthError('invalid_request', 'Send one Authorization header, not several');
  const m = BEARER_RE.exec(header);
  if (m) return m[1];
  // Some other scheme (Basic…) is no Bearer credential at all.
  if (!/^bearer(\s|$)/i.test(header)) return undefined;
  throw invalidToken('The Authorization header is not a valid Bearer token');
}

/** Checks the request against a route's rule; sets `request.principal`. */
async function check(core: GuardCore, auth: RouteAuth, request: FastifyRequest): Promise<void> {
  const token = bearerToken(request);
  if (token === undefined) {
    if (auth.optional) return;
    throw notAuthenticated();
  }
  const principal = await authenticate(core, token);
  request.principal = principal;
  const needed = auth.scopes ?? [];
  if (needed.some((s) => !principal.scopes.includes(s))) throw insufficientScope(needed);
}

/** Whether `app` is the root instance (encapsulated contexts inherit `server`; only the root owns it). */
function isRoot(app: FastifyInstance): boolean {
  return Object.prototype.hasOwnProperty.call(app, 'server');
}

/** Installs the guard on the root instance `app` (the plugin calls this; see plugin.ts). */
export function installGuard(app: FastifyInstance, core: GuardCore, realm: string): void {
  if (!isRoot(app)) {
    throw new Error(
      'gatehouse must be registered on the root Fastify instance: inside an encapsulated context its guard could not see every route that declares config.auth',
    );
  }
  app.decorateRequest('principal', null);
  // Routes registered from here on are checked at start-up: a scope nobody can hold is a typo, not a rule.
  app.addHook('onRoute', (route) => {
    for (const s of route.config?.auth?.scopes ?? []) {
      if (!core.scopes.isScope(s)) {
        throw new Error(`route ${route.method} ${route.url} requires the unknown scope "${s}"; declare it in the gatehouse options`);
      }
    }
  });
  app.addHook('onRequest', async function gatehouseGuard(request: FastifyRequest, reply: FastifyReply) {
    const auth = request.routeOptions.config?.auth;
    if (!auth) return;
    try {
      await check(core, auth, request);
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      return sendProblem(reply, err, realm);
    }
  });
}
