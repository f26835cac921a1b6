// Benchmark-only routes (BENCH_ROUTES=true; refused with NODE_ENV=production):
// the same JSON as GET /users/me, behind each layer of the guard in turn, so
// that `npm run bench` can price every layer in one run. They use the
// guard's own functions, read a token and return a constant; they grant
// nothing.
import type { Static } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import type { AuthCore } from '../auth/core.js';
import { invalidToken, notAuthenticated } from '../auth/errors.js';
import { bearerToken, verifyAccessToken } from '../auth/guard.js';
import { User } from '../auth/schemas.js';

// Typed as the User schema: a field added there must be added here, or the build fails (an answer missing
// one is a 500, and every floor figure of the bench would be the price of an error).
const BODY: Static<typeof User> = {
  id: '00000000-0000-4000-8000-000000000000',
  username: 'floor',
  email: 'floor@example.com',
  full_name: null,
  role: 'user',
  disabled: false,
  mfa: false,
  email_verified: false,
  created_at: new Date(0).toISOString(),
};

export async function benchRoutes(app: FastifyInstance, { core }: { core: AuthCore }): Promise<void> {
  const schema = { hide: true, response: { 200: User } };
  const verify = (token: string | undefined) => {
    if (!token) throw notAuthenticated();
    return verifyAccessToken(core, token);
  };

  // The floor: no authentication, no database.
  app.get('/_bench/floor', { schema }, async () => BODY);
  // + signature and claims (fast-jwt, cached).
  app.get('/_bench/verify', { schema }, async (request) => {
    verify(bearerToken(request));
    return BODY;
  });
  // + the revocation check (denylist). GET /users/me adds the user-state check.
  app.get('/_bench/verify-denylist', { schema }, async (request) => {
    const claims = verify(bearerToken(request));
    if (await core.revocations.isRevoked(claims.jti, claims.sid)) throw invalidToken('The access token has been revoked');
    return BODY;
  });
}
