// Browser sessions (API.md, "Browser sessions"): the token endpoint for
// pages. The refresh token lives only in an HttpOnly, SameSite=Strict cookie
// scoped to these routes; the access token goes to the page's memory. The
// grants are the token endpoint's own (grant-dispatch.ts), so every login
// rule, limit and audit event is the same; the CSRF gate (csrf.ts) runs
// before anything else. Mounted under the plugin's prefix at /browser.
//
// The refresh_token grant is not accepted in a body here: the refresh token
// never reaches script, so a page could only send one it should not have.
// Refreshing is POST /browser/refresh, which reads the cookie.
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { parse, serialize } from 'cookie';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { bodyErrors, empty, limited, problem, unavailable } from '../http/openapi.js';
import type { AuthCore } from './core.js';
import { assertSameOriginScript, browserOriginsOf } from './csrf.js';
import { AuthError, type ErrorCode } from './errors.js';
import { dispatchGrant, GrantAnswer, oauthParams, sendGrantAnswer } from './grant-dispatch.js';
import { REFRESH_EXPIRES_AT, type TokenResponse } from './grants.js';
import { sessionMeta } from './routes.js';
import { LogoutQuery, MfaRequiredBody, TokenRequest } from './schemas.js';

export const REFRESH_COOKIE = 'gh_refresh';

/** Each occurrence of the cookie's name in a Cookie header. */
const SAME_NAME = new RegExp(`(?:^|;)\\s*${REFRESH_COOKIE}\\s*=`, 'g');

/** The ways a cookie's refresh token can be dead: the page is signed out, and the cookie goes. */
const DEAD: ReadonlySet<ErrorCode> = new Set(['refresh_token_invalid', 'refresh_token_expired', 'refresh_token_reused', 'session_revoked']);

const BrowserTokenResponse = Type.Object({
  access_token: Type.String(),
  token_type: Type.Literal('bearer'),
  expires_in: Type.Integer({ description: 'Seconds the access token lives: refresh before then' }),
  scope: Type.String(),
});

const cookieParam = Type.Object({
  [REFRESH_COOKIE]: Type.Optional(Type.String({ description: 'The refresh token (HttpOnly; set by /browser/token and /browser/refresh)' })),
});

const csrfHeaders = Type.Object({
  'x-requested-with': Type.Optional(Type.String({ description: 'Must be `gatehouse` (CSRF defence)' })),
});

const csrfRefused = problem('csrf_rejected: no `X-Requested-With: gatehouse`, or an Origin that is not PUBLIC_URL’s or one of CORS_ORIGINS');
const noSession = problem('No session cookie, or its refresh token is invalid, expired, reused or revoked; the cookie is cleared');

const SECURITY_NOTE =
  'Needs `X-Requested-With: gatehouse` and an `Origin` equal to PUBLIC_URL’s origin or one of CORS_ORIGINS (else 403 csrf_rejected). ';

export const browserRoutes: FastifyPluginAsyncTypebox<{ core: AuthCore }> = async (app, { core }) => {
  const { options, sessions, limits, audit, clock } = core;
  const allowed = browserOriginsOf(options.publicUrl, options.browserOrigins);
  const cookieBase = {
    httpOnly: true,
    sameSite: 'strict' as const,
    path: `${options.prefix}/browser`,
    secure: new URL(options.publicUrl).protocol === 'https:',
  };

  // Before the body is read and before any limit counts (csrf.ts).
  app.addHook('onRequest', async (request) => assertSameOriginScript(request.headers, allowed));

  const clearCookie = (reply: FastifyReply) => reply.header('set-cookie', serialize(REFRESH_COOKIE, '', { ...cookieBase, maxAge: 0 }));

  /** Tokens → the cookie (its lifetime: the refresh token's) and the body without the refresh token. */
  const answer = (reply: FastifyReply, t: TokenResponse) => {
    const expiresAt = t[REFRESH_EXPIRES_AT] ?? clock.now() + Math.min(options.refreshTokenTtlSeconds, options.sessionMaxSeconds) * 1000;
    const maxAge = Math.max(0, Math.floor((expiresAt - clock.now()) / 1000));
    reply.header('set-cookie', serialize(REFRESH_COOKIE, t.refresh_token, { ...cookieBase, maxAge }));
    return { access_token: t.access_token, token_type: t.token_type, expires_in: t.expires_in, scope: t.scope };
  };

  /**
   * No live cookie: 401, and the header that clears whatever the browser
   * holds. RFC 9110 §15.5.2 wants a challenge on every 401: this one names
   * the cookie (no browser prompts for an unknown scheme).
   */
  const signedOut = (reply: FastifyReply, code: ErrorCode = 'browser_session_missing', detail = 'No browser session: sign in') => {
    clearCookie(reply);
    reply.header('www-authenticate', `Cookie realm="${options.realm}", cookie-name="${REFRESH_COOKIE}"`);
    return new AuthError(code, detail, { status: 401 });
  };

  /**
   * The session cookie. Several of that name (a sibling subdomain can set one
   * for the parent domain, and the browser sends both) cannot be told apart:
   * none is used, rather than sign the page in to someone else's session.
   */
  const cookieOf = (request: FastifyRequest, reply: FastifyReply): string | undefined => {
    const header = request.headers.cookie;
    if (!header) return undefined;
    if ((header.match(SAME_NAME) ?? []).length > 1) {
      throw signedOut(reply, 'browser_session_missing', 'Several session cookies were sent; sign in again');
    }
    return parse(header)[REFRESH_COOKIE];
  };

  app.post(
    '/token',
    {
      schema: {
        tags: ['auth'],
        summary: 'Browser sign-in: the token endpoint’s grants, the refresh token in an HttpOnly cookie',
        description:
          SECURITY_NOTE +
          'The same grants and fields as /auth/token except refresh_token (use /browser/refresh). The refresh token is set as the ' +
          '`gh_refresh` cookie (HttpOnly; SameSite=Strict; Path=<prefix>/browser; Secure behind https) and is never in the body. ' +
          'Errors are problem+json.',
        consumes: ['application/x-www-form-urlencoded', 'multipart/form-data', 'application/json'],
        headers: csrfHeaders,
        body: TokenRequest,
        response: {
          200: BrowserTokenResponse,
          ...bodyErrors,
          400: problem('Wrong credentials (invalid_credentials), unknown scope, missing parameter or unsupported grant'),
          403: Type.Union([csrfRefused, MfaRequiredBody], { description: 'Refused by the CSRF check (problem csrf_rejected), or mfa_required (a right password; the second step is due)' }),
          ...limited,
          ...unavailable,
        },
      },
    },
    async (request, reply) => {
      const out = await dispatchGrant(core, oauthParams(request.body), sessionMeta(request), { exclude: ['refresh_token'] });
      // A grant's own answer (e.g. 403 mfa_required) goes out as /auth/token sends it.
      return out instanceof GrantAnswer ? sendGrantAnswer(reply, out) : answer(reply, out);
    },
  );

  app.post(
    '/refresh',
    {
      schema: {
        tags: ['auth'],
        summary: 'Browser refresh: a new access token and a rotated cookie',
        description:
          SECURITY_NOTE +
          'No body: the `gh_refresh` cookie is the refresh token, under the grace and reuse rules of /auth/token (a retry within the ' +
          'grace window gets the same successor; reuse after it ends the session).',
        headers: csrfHeaders,
        cookies: cookieParam,
        response: { 200: BrowserTokenResponse, 401: noSession, 403: csrfRefused, ...limited, ...unavailable },
      },
    },
    async (request, reply) => {
      const token = cookieOf(request, reply);
      if (!token) throw signedOut(reply);
      try {
        // The token endpoint's refresh grant and its limit: one rule for both.
        const out = await dispatchGrant(core, { grant_type: 'refresh_token', refresh_token: token }, sessionMeta(request));
        return out instanceof GrantAnswer ? sendGrantAnswer(reply, out) : answer(reply, out);
      } catch (err) {
        if (err instanceof AuthError && DEAD.has(err.code)) throw signedOut(reply, err.code, err.detail);
        throw err; // 429, 503: the cookie is still good
      }
    },
  );

  app.post(
    '/logout',
    {
      schema: {
        tags: ['auth'],
        summary: 'Browser logout: this session (local), every other one (others), or all (global); the cookie names the session',
        description: SECURITY_NOTE + 'The cookie is cleared (Max-Age=0) unless the scope is `others`.',
        headers: csrfHeaders,
        cookies: cookieParam,
        querystring: LogoutQuery,
        response: {
          204: empty('Logged out'),
          401: noSession,
          403: csrfRefused,
          422: problem('Unknown scope'),
          ...limited,
          ...unavailable,
        },
      },
    },
    async (request, reply) => {
      const scope = request.query.scope ?? 'local';
      const token = cookieOf(request, reply);
      if (!token) throw signedOut(reply);
      // As /revoke: signing out of a live session spends no per-address budget; a dead cookie spends one.
      const session = await sessions.sessionOf(token);
      if (!session) {
        await limits.tokenRequest(request.ip);
        throw signedOut(reply, 'refresh_token_invalid', 'The session cookie is invalid, expired or revoked');
      }
      await sessions.logout(session.userId, session.sessionId, scope);
      audit.record({ type: 'logout', ...session, meta: sessionMeta(request), detail: { scope, via: 'cookie' } });
      if (scope !== 'others') clearCookie(reply);
      return reply.code(204).send(null);
    },
  );
};
