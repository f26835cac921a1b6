// The /auth endpoints: register, the OAuth 2.0 token endpoint (password and
// refresh_token grants), RFC 7009 revocation, logout, and the JWK set.
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HttpProblem, OAuthError, type FieldError } from '../http/problem.js';
import type { AuthCore } from './core.js';
import { principalOf } from './guard.js';
import { checkPasswordPolicyAsync, policyOf } from './password-policy.js';
import { lockoutKey } from './rate-limit.js';
import { formatScope, isScope, parseScope, ROLE_SCOPES, roleAllows } from './scopes.js';
import {
  Jwks,
  LogoutQuery,
  OAuthErrorBody,
  RegisterRequest,
  RevokeRequest,
  TokenRequest,
  TokenResponse,
  User,
} from './schemas.js';
import { looksLikeRefreshToken, type SessionMeta } from './sessions.js';
import { InvalidTokenError } from './tokens.js';
import {
  createUser,
  findUserForLogin,
  isValidEmail,
  normalizeUsername,
  toPublicUser,
  UniqueViolation,
  updatePasswordHash,
  USERNAME_RE,
} from './users.js';

// Deliberately vague: never says whether the username or the password was wrong.
const BAD_CREDENTIALS = 'Incorrect username or password';

export function sessionMeta(request: FastifyRequest): SessionMeta {
  const ua = request.headers['user-agent'];
  return { userAgent: typeof ua === 'string' ? ua.slice(0, 512) : null, ip: request.ip ?? null };
}

/** RFC 6749 §3.2: parameters are single strings; a repeated one is an error. */
function oauthParams(body: unknown): Record<string, string | undefined> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new OAuthError('invalid_request', 'The request body must be form-encoded parameters');
  }
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (Array.isArray(v)) throw new OAuthError('invalid_request', `The parameter "${k}" must not be repeated`);
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') throw new OAuthError('invalid_request', `The parameter "${k}" must be a string`);
    out[k] = v;
  }
  return out;
}

function requestedScope(raw: string | undefined): string[] | null {
  if (raw === undefined) return null;
  const scopes = parseScope(raw);
  if (scopes.length === 0) return null; // "scope=" means none asked for
  const unknown = scopes.filter((s) => !isScope(s));
  if (unknown.length) throw new OAuthError('invalid_scope', `Unknown scope: ${unknown.join(' ')}`);
  return scopes;
}

function noStore(reply: FastifyReply): void {
  reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
}

export const authRoutes: FastifyPluginAsyncTypebox<{ core: AuthCore }> = async (app, { core }) => {
  const { config, db, hasher, tokens, sessions, limits, revocations, clock } = core;
  const policy = policyOf(config);

  app.post(
    '/auth/register',
    {
      schema: {
        tags: ['auth'],
        summary: 'Create an account',
        body: RegisterRequest,
        response: { 201: User },
      },
    },
    async (request, reply) => {
      await limits.registration(request.ip);
      const { email, password } = request.body;
      const username = normalizeUsername(request.body.username);
      const errors: FieldError[] = [];
      if (!USERNAME_RE.test(username)) {
        errors.push({ path: '/username', message: 'must be 3–32 characters of a-z, 0-9, _ . -' });
      }
      if (!isValidEmail(email)) errors.push({ path: '/email', message: 'must be a valid email address' });
      errors.push(...(await checkPasswordPolicyAsync(password, { username, email }, policy)));
      if (errors.length) throw new HttpProblem(422, 'The request is not valid', { errors });

      const taken = await db.query<{ username_taken: boolean; email_taken: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM users WHERE lower(username) = $1) AS username_taken,
                EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($2)) AS email_taken`,
        [username, email],
      );
      if (taken.rows[0]?.username_taken) throw new HttpProblem(409, 'That username is already taken');
      if (taken.rows[0]?.email_taken) throw new HttpProblem(409, 'That email address is already registered');
      const passwordHash = await hasher.hash(password);
      try {
        const user = await createUser(db, {
          username,
          email,
          fullName: request.body.full_name ?? null,
          passwordHash,
          role: 'user',
          now: new Date(clock.now()),
        });
        return reply.code(201).send(toPublicUser(user));
      } catch (err) {
        if (err instanceof UniqueViolation) {
          throw new HttpProblem(409, err.field === 'email' ? 'That email address is already registered' : 'That username is already taken');
        }
        throw err;
      }
    },
  );

  app.post(
    '/auth/token',
    {
      config: { oauth: true },
      schema: {
        tags: ['auth'],
        summary: 'OAuth 2.0 token endpoint (password and refresh_token grants)',
        description:
          'Form-encoded (RFC 6749 §4.3 and §6); JSON is accepted too. Errors are RFC 6749 §5.2 JSON. ' +
          'A refresh token is single-use: each use returns a new one.',
        consumes: ['application/x-www-form-urlencoded', 'application/json'],
        body: TokenRequest,
        response: { 200: TokenResponse, 400: OAuthErrorBody },
      },
    },
    async (request, reply) => {
      noStore(reply);
      const p = oauthParams(request.body);
      const grant = p.grant_type ?? (p.username !== undefined && p.password !== undefined ? 'password' : undefined);
      if (grant === undefined) throw new OAuthError('invalid_request', 'The grant_type parameter is required');
      if (grant !== 'password' && grant !== 'refresh_token') {
        throw new OAuthError('unsupported_grant_type', 'Supported grant types: password, refresh_token');
      }
      await limits.tokenRequest(request.ip);
      const meta = sessionMeta(request);

      if (grant === 'password') {
        const { username, password } = p;
        if (!username || password === undefined) {
          throw new OAuthError('invalid_request', 'The username and password parameters are required');
        }
        const requested = requestedScope(p.scope);
        // The account first: every spelling of it shares one lockout counter.
        const user = username.length > 320 ? undefined : await findUserForLogin(db, username);
        const loginKey = lockoutKey(username, user?.id);
        await limits.checkLogin(loginKey, request.ip);
        // Over-long passwords can never be valid: refuse before any hashing.
        const tooLong = password.length > config.passwordMaxLength;
        const result = tooLong
          ? { ok: false, needsRehash: false }
          : user
            ? await hasher.verify(user.password_hash, password)
            : await hasher.verifyDummy(password);
        if (!user || !result.ok || user.disabled) {
          await limits.loginFailed(loginKey, request.ip);
          throw new OAuthError('invalid_grant', BAD_CREDENTIALS);
        }
        await limits.loginSucceeded(loginKey, request.ip);
        const allowed = ROLE_SCOPES[user.role];
        if (requested && !roleAllows(user.role, requested)) {
          throw new OAuthError('invalid_scope', 'The requested scope is not allowed for this account');
        }
        if (result.needsRehash) {
          await updatePasswordHash(db, user.id, await hasher.hash(password), new Date(clock.now()));
        }
        const scope = formatScope(requested ?? allowed);
        const { sessionId, refreshToken } = await sessions.open(user.id, scope, meta);
        const access = tokens.issue({ sub: user.id, sid: sessionId, scope, username: user.username });
        return {
          access_token: access.token,
          token_type: 'bearer' as const,
          expires_in: access.expiresIn,
          refresh_token: refreshToken,
          scope,
        };
      }

      if (!p.refresh_token) throw new OAuthError('invalid_request', 'The refresh_token parameter is required');
      const requested = requestedScope(p.scope);
      const r = await sessions.refresh(p.refresh_token, meta, (ctx) => {
        // The session's first grant, less anything the user's role no longer allows.
        const held = parseScope(ctx.sessionScope).filter((s) => roleAllows(ctx.role, [s]));
        if (!requested) return formatScope(held);
        if (!requested.every((s) => held.includes(s))) {
          throw new OAuthError('invalid_scope', 'The requested scope exceeds the scope of the session');
        }
        return formatScope(requested);
      });
      const access = tokens.issue({ sub: r.userId, sid: r.sessionId, scope: r.grantedScope, username: r.username });
      return {
        access_token: access.token,
        token_type: 'bearer' as const,
        expires_in: access.expiresIn,
        refresh_token: r.refreshToken,
        scope: r.grantedScope,
      };
    },
  );

  app.post(
    '/auth/revoke',
    {
      config: { oauth: true },
      schema: {
        tags: ['auth'],
        summary: 'Revoke a refresh or access token (RFC 7009)',
        description:
          'Answers 200 for any well-formed request, whether or not the token was valid. Revoking a refresh token ends its session; ' +
          'revoking an access token invalidates that token only.',
        consumes: ['application/x-www-form-urlencoded', 'application/json'],
        body: RevokeRequest,
        response: { 200: Type.Null({ description: 'Empty body' }), 400: OAuthErrorBody },
      },
    },
    async (request, reply) => {
      noStore(reply);
      const { token } = oauthParams(request.body);
      if (!token) throw new OAuthError('invalid_request', 'The token parameter is required');
      // The hint is only a hint: the token's own shape says what it is.
      if (looksLikeRefreshToken(token)) {
        await sessions.revokeByRefreshToken(token);
      } else {
        try {
          const claims = tokens.verify(token, { ignoreExpiration: true });
          if (claims.exp * 1000 + config.jwtLeewaySeconds * 1000 > clock.now()) {
            await revocations.revokeAccessToken(claims.jti, claims.exp);
          }
        } catch (err) {
          if (!(err instanceof InvalidTokenError)) throw err;
        }
      }
      // RFC 7009 §2.2: 200, empty body.
      // An undefined payload skips serialization: no body at all.
      return (reply as FastifyReply).code(200).send();
    },
  );

  app.post(
    '/auth/logout',
    {
      config: { auth: {} },
      schema: {
        tags: ['auth'],
        summary: 'Log out: end this session, the others, or all',
        querystring: LogoutQuery,
        response: { 204: Type.Null({ description: 'Logged out' }) },
      },
    },
    async (request, reply) => {
      const me = principalOf(request);
      const scope = request.query.scope ?? 'local';
      if (scope === 'local') await sessions.revokeSession(me.userId, me.sessionId);
      else await sessions.revokeUserSessions(me.userId, scope === 'others' ? me.sessionId : undefined);
      // The access token used is rejected afterwards whatever the scope.
      await revocations.revokeAccessToken(me.jti, me.exp);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        tags: ['auth'],
        summary: 'The public keys that verify access tokens (RFC 7517)',
        response: { 200: Jwks },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', 'public, max-age=300');
      return { keys: core.keys.jwks };
    },
  );
};
