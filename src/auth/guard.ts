// The one guard for protected routes (RFC 6750). A route opts in with
// `config: { auth: { scopes: [...] } }` (or `{ optional: true }`) and finds
// a typed principal on `request.principal`. Verification costs no database
// round trip while nothing changed: signature (cached), denylist and user
// state are all local, kept in step across nodes by the event bus.
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import { HttpProblem } from '../http/problem.js';
import type { Revocations } from './revocations.js';
import { parseScope, roleAllows, type Role, type Scope } from './scopes.js';
import { InvalidTokenError, type TokenService } from './tokens.js';
import type { UserStates } from './user-state.js';
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
  /** The user's public profile, as the guard just checked it. */
  profile: PublicUser;
}

export interface RouteAuth {
  scopes?: readonly Scope[];
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

export const REALM = 'gatehouse';
// RFC 6750 §2.1 b64token.
const BEARER_RE = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

export function unauthorized(description?: string): HttpProblem {
  const header = description
    ? `Bearer realm="${REALM}", error="invalid_token", error_description="${description}"`
    : `Bearer realm="${REALM}"`;
  return new HttpProblem(401, description ?? 'Not authenticated', { headers: { 'www-authenticate': header } });
}

export function insufficientScope(needed: readonly string[]): HttpProblem {
  const scope = needed.join(' ');
  return new HttpProblem(403, `Not enough permissions: this needs the scope "${scope}"`, {
    headers: { 'www-authenticate': `Bearer realm="${REALM}", error="insufficient_scope", scope="${scope}"` },
  });
}

/** The principal of a route declared with required scopes (never null there). */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw unauthorized();
  return request.principal;
}

export interface GuardDeps {
  tokens: TokenService;
  revocations: Revocations;
  userStates: UserStates;
}

/** Bearer token → principal, or a 401 problem. */
export async function authenticate(deps: GuardDeps, token: string): Promise<Principal> {
  let claims;
  try {
    claims = deps.tokens.verify(token);
  } catch (err) {
    if (err instanceof InvalidTokenError) throw unauthorized(err.description);
    throw err;
  }
  if (await deps.revocations.isRevoked(claims.jti, claims.sid)) throw unauthorized('The access token has been revoked');
  const user = await deps.userStates.get(claims.sub);
  if (!user.exists || user.disabled || !user.profile) throw unauthorized('The user is disabled or no longer exists');
  const scopes = parseScope(claims.scope);
  // A demoted user's tokens lose what the new role does not allow.
  if (!roleAllows(user.role, scopes)) throw unauthorized('The access token carries a scope the user no longer holds');
  return {
    userId: claims.sub,
    username: user.username,
    role: user.role,
    scopes,
    sessionId: claims.sid,
    jti: claims.jti,
    exp: claims.exp,
    profile: user.profile,
  };
}

export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header === undefined) return undefined;
  const m = BEARER_RE.exec(header);
  if (m) return m[1];
  // Some other scheme (Basic…) is no Bearer credential at all.
  if (!/^bearer(\s|$)/i.test(header)) return undefined;
  throw unauthorized('The Authorization header is not a valid Bearer token');
}

function guardFor(deps: GuardDeps, auth: RouteAuth): onRequestHookHandler {
  const needed = auth.scopes ?? [];
  return async function guard(request: FastifyRequest, _reply: FastifyReply) {
    const token = bearerToken(request);
    if (token === undefined) {
      if (auth.optional) return;
      throw unauthorized();
    }
    const principal = await authenticate(deps, token);
    request.principal = principal;
    const missing = needed.filter((s) => !principal.scopes.includes(s));
    if (missing.length) throw insufficientScope(needed);
  };
}

/** Registers the guard; must be registered before the routes it protects. */
export const guardPlugin = fp<GuardDeps>(
  async (app: FastifyInstance, deps: GuardDeps) => {
    app.decorateRequest('principal', null);
    app.addHook('onRoute', (route) => {
      const auth = route.config?.auth;
      if (!auth) return;
      const existing = route.onRequest ? (Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest]) : [];
      // The guard runs first, before the body is even read.
      route.onRequest = [guardFor(deps, auth), ...existing];
    });
  },
  { name: 'gatehouse-guard' },
);
