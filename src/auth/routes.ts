// The /auth endpoints: register, the OAuth 2.0 token endpoint (password and
// refresh_token grants), RFC 7009 revocation, logout. (The /.well-known
// routes are in discovery.ts.)
// Handlers parse and render; the rules live in grants.ts and below.
import formbody from '@fastify/formbody';
import multipart from '@fastify/multipart';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { bodyErrors, empty, guarded, limited, problem, unavailable } from '../http/openapi.js';
import { noStore } from '../http/render.js';
import { accountRoutes } from './account-routes.js';
import { browserRoutes } from './browser-sessions.js';
import type { AuthCore } from './core.js';
import { AuthError, validationFailed, type FieldError } from './errors.js';
import { dispatchGrant, GrantAnswer, oauthParams, sendGrantAnswer } from './grant-dispatch.js';
import { principalOf } from './guard.js';
import { LogoutQuery, MfaRequiredBody, OAuthErrorBody, RegisterRequest, RevokeRequest, TokenRequest, TokenResponse, User } from './schemas.js';
import type { SessionMeta } from './sessions.js';
import { InvalidTokenError } from './tokens.js';
import { isValidEmail, normalizeUsername, toPublicUser, USERNAME_RE } from './users.js';

export function sessionMeta(request: FastifyRequest): SessionMeta {
  const ua = request.headers['user-agent'];
  return { userAgent: typeof ua === 'string' ? ua.slice(0, 512) : null, ip: request.ip ?? null };
}

const AUTH_BODY_LIMIT = 64 * 1024;

/** A token refused (expired, revoked, of a disabled user…) is nothing to revoke; anything else is an error. */
function unlessRefused(err: unknown): undefined {
  if (err instanceof AuthError) return undefined;
  throw err;
}

/** Mounted under the plugin's prefix (default /auth), in a context of its own. */
export const authRoutes: FastifyPluginAsyncTypebox<{ core: AuthCore }> = async (app, { core }) => {
  const { sessions, tokens, revocations, users, hasher, limits, options, audit } = core;
  // Form bodies for the OAuth endpoints, parsed here only: the host's parsers are its own.
  // multipart/form-data too (a browser's FormData; FastAPI's forms take it): fields only, small.
  await app.register(formbody);
  await app.register(multipart, {
    attachFieldsToBody: 'keyValues',
    limits: { files: 0, fields: 32, parts: 32, fieldSize: 8 * 1024, fieldNameSize: 100 },
  });
  // Every /auth answer carries a token or personal data: never cached.
  app.addHook('onSend', async (_request, reply) => noStore(reply));
  // Every /auth body is small: refused past 64 KiB, before it is read whole.
  const limit = Math.min(AUTH_BODY_LIMIT, app.initialConfig.bodyLimit ?? AUTH_BODY_LIMIT);
  app.addHook('onRoute', (route) => {
    route.bodyLimit ??= limit;
  });

  app.post(
    '/register',
    {
      schema: {
        tags: ['auth'],
        summary: 'Create an account',
        body: RegisterRequest,
        response: {
          201: User,
          ...bodyErrors,
          409: problem('That username or email address is already taken'),
          422: problem('A field is not valid, or the password fails the policy (errors names each rule)'),
          ...limited,
          ...unavailable,
        },
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
      errors.push(...(await hasher.checkPolicy(password, { username, email }, options.passwordPolicy)));
      if (errors.length) throw validationFailed(errors);
      await users.assertAvailable(username, email);
      const user = await users.create({
        username,
        email,
        fullName: request.body.full_name ?? null,
        passwordHash: await hasher.hash(password),
        role: 'user',
      });
      audit.record({ type: 'register', userId: user.id, username: user.username, meta: sessionMeta(request) });
      // The account exists whatever happens to its mail: a failure here is logged, and a new link can be asked for.
      await core.accountEmail?.sendVerification(user, 'skip').catch((err: unknown) => request.log.warn({ err: (err as Error).message }, 'could not queue the verification mail'));
      return reply.code(201).send(toPublicUser(user));
    },
  );

  app.post(
    '/token',
    {
      config: { oauth: true },
      schema: {
        tags: ['auth'],
        summary: 'OAuth 2.0 token endpoint (password, refresh_token and second-factor grants)',
        description:
          'Form-encoded (RFC 6749 §4.3 and §6); JSON is accepted too. Errors are RFC 6749 §5.2 JSON. ' +
          'A refresh token is single-use: each use returns a new one. ' +
          'A right password for an account with two-factor authentication answers 403 `mfa_required` with an `mfa_token`: ' +
          'send it back with `grant_type=urn:gatehouse:params:oauth:grant-type:mfa-otp` and `otp` (a TOTP code), ' +
          '`grant_type=urn:gatehouse:params:oauth:grant-type:mfa-recovery-code` and `recovery_code`, or ' +
          '`grant_type=urn:gatehouse:params:oauth:grant-type:mfa-webauthn` and `assertion` (options from POST /auth/passkey/options with the mfa_token). ' +
          '`grant_type=urn:gatehouse:params:oauth:grant-type:webauthn` with `assertion` (an AuthenticationResponseJSON as a string, answering ' +
          'options from POST /auth/passkey/options) signs in with a passkey alone: amr ["hwk", "user", "mfa"].',
        consumes: ['application/x-www-form-urlencoded', 'multipart/form-data', 'application/json'],
        body: TokenRequest,
        response: { 200: TokenResponse, 400: OAuthErrorBody, 403: MfaRequiredBody, 413: bodyErrors[413], ...limited, ...unavailable },
      },
    },
    async (request, reply) => {
      const out = await dispatchGrant(core, oauthParams(request.body), sessionMeta(request));
      // A grant's own answer (e.g. 403 mfa_required) goes out as it is.
      return out instanceof GrantAnswer ? sendGrantAnswer(reply, out) : out;
    },
  );

  /**
   * Ends what `token` names. The token's own shape says what it is (the hint is only a hint). A token that
   * names nothing live calls `spend` (the per-address budget, which may refuse) before anything is written:
   * revoking one's own live token must work behind a flooded NAT, and a dead one must not buy writes.
   */
  async function revoke(token: string, meta: SessionMeta, spend: () => Promise<void>): Promise<void> {
    if (sessions.looksLikeRefreshToken(token)) {
      if (!(await sessions.sessionOf(token))) await spend();
      const ended = await sessions.revokeByRefreshToken(token);
      if (ended) audit.record({ type: 'revoke', ...ended, meta, detail: { token_type: 'refresh_token' } });
      return;
    }
    let claims;
    try {
      claims = tokens.verify(token, { ignoreExpiration: true });
    } catch (err) {
      if (!(err instanceof InvalidTokenError)) throw err;
    }
    if (claims) {
      if (tokens.usableUntilMs(claims.exp) <= core.clock.now()) return spend();
      // Revoked already: announced again (a node may have died before saying so), after paying for it.
      const already = await revocations.isRevoked(claims.jti, claims.sid);
      if (already) await spend();
      await revocations.revokeAccessToken(claims.jti, claims.exp);
      if (!already) audit.record({ type: 'revoke', userId: claims.sub, sessionId: claims.sid, meta, detail: { token_type: 'access_token' } });
      return;
    }
    // Not one of ours: during a move, perhaps one of the previous app's (it has no session: that token alone ends).
    const legacy = core.legacyTokens?.applies(token) ? await core.legacyTokens.authenticate(token, core).catch(unlessRefused) : undefined;
    if (!legacy) return spend();
    await revocations.revokeAccessToken(legacy.jti, legacy.exp);
    audit.record({ type: 'revoke', userId: legacy.userId, username: legacy.username, meta, detail: { token_type: 'legacy_access_token' } });
  }

  app.post(
    '/revoke',
    {
      config: { oauth: true },
      schema: {
        tags: ['auth'],
        summary: 'Revoke a refresh or access token (RFC 7009)',
        description:
          'Answers 200 for any well-formed request, whether or not the token was valid. Revoking a refresh token ends its session; ' +
          'revoking an access token invalidates that token only.',
        consumes: ['application/x-www-form-urlencoded', 'multipart/form-data', 'application/json'],
        body: RevokeRequest,
        response: {
          200: Type.Object({}, { additionalProperties: false, description: '{} (RFC 7009 §2.2: clients may ignore it)' }),
          400: OAuthErrorBody,
          413: bodyErrors[413],
          ...limited,
          ...unavailable,
        },
      },
    },
    async (request) => {
      const { token } = oauthParams(request.body);
      if (!token) throw new AuthError('invalid_request', 'The token parameter is required');
      await revoke(token, sessionMeta(request), () => limits.tokenRequest(request.ip));
      // RFC 7009 §2.2: 200; `{}` as JSON, since some client libraries insist on a JSON body.
      return {};
    },
  );

  // Password reset and address verification (account-routes.ts).
  await app.register(accountRoutes, { core });

  app.post(
    '/logout',
    {
      config: { auth: {} },
      schema: {
        tags: ['auth'],
        summary: 'Log out: end this session (local), every other one (others: this one keeps working), or all (global)',
        querystring: LogoutQuery,
        response: { 204: empty('Logged out'), 401: guarded()[401], 422: problem('Unknown scope'), ...unavailable },
      },
    },
    async (request, reply) => {
      const me = principalOf(request);
      const scope = request.query.scope ?? 'local';
      // With `others` the calling session, its access token and its refresh token keep working.
      await sessions.logout(me.userId, me.sessionId, scope);
      // Its own session is over: the token used is refused at once, even where an event is late.
      if (scope !== 'others') await revocations.revokeAccessToken(me.jti, me.exp);
      audit.record({ type: 'logout', userId: me.userId, username: me.username, sessionId: me.sessionId, meta: sessionMeta(request), detail: { scope } });
      return reply.code(204).send(null);
    },
  );

  // The cookie-mode endpoints for pages: this context's parsers, body limit and no-store apply to them too.
  await app.register(browserRoutes, { core, prefix: '/browser' });
};
