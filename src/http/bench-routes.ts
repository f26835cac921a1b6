// Benchmark-only routes (BENCH_ROUTES=true, never in a normal deployment):
// the same JSON as GET /users/me, behind each layer of the guard in turn, so
// that `npm run bench` can price every layer in one run. They read a token
// and return a constant; they grant nothing.
import type { FastifyInstance } from 'fastify';
import type { AuthCore } from '../auth/core.js';
import { bearerToken, unauthorized } from '../auth/guard.js';
import { User } from '../auth/schemas.js';
import { InvalidTokenError } from '../auth/tokens.js';

const BODY = {
  id: '00000000-0000-4000-8000-000000000000',
  username: 'floor',
  email: 'floor@example.com',
  full_name: null,
  role: 'user' as const,
  disabled: false,
  created_at: new Date(0).toISOString(),
};

export async function benchRoutes(app: FastifyInstance, { core }: { core: AuthCore }): Promise<void> {
  const schema = { hide: true, response: { 200: User } };
  const verify = (token: string | undefined) => {
    if (!token) throw unauthorized();
    try {
      return core.tokens.verify(token);
    } catch (err) {
      if (err instanceof InvalidTokenError) throw unauthorized(err.description);
      throw err;
    }
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
    if (await core.revocations.isRevoked(claims.jti, claims.sid)) throw unauthorized('The access token has been revoked');
    return BODY;
  });
}
