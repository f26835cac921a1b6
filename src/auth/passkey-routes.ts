// POST /auth/passkey/options: the challenge of a passkey sign-in. Public and
// limited per address (each call stores a challenge for 5 minutes). Mounted
// with the other /auth routes, in their context (error format, no-store).
//
// Without a body: passwordless options (no allowCredentials: the passkey
// names its user). With the `mfa_token` of a 403 mfa_required: options for
// the second step of that login (the user's passkeys allowed), whose
// challenge only the mfa-webauthn grant of that same mfa_token accepts.
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { bodyErrors, limited, problem, unavailable } from '../http/openapi.js';
import type { AuthCore } from './core.js';
import { AuthError } from './errors.js';
import { RequestOptionsJSON } from './passkey-schemas.js';

export const passkeyAuthRoutes: FastifyPluginAsyncTypebox<{ core: AuthCore }> = async (app, { core }) => {
  app.post(
    '/passkey/options',
    {
      schema: {
        tags: ['auth'],
        summary: 'Request options for signing in with a passkey (PublicKeyCredentialRequestOptionsJSON)',
        description:
          'A fresh challenge (single-use, 5 minutes), user verification required. No body (or `{}`): no allowCredentials, the passkey ' +
          'names its user; answer with grant_type urn:gatehouse:params:oauth:grant-type:webauthn and `assertion` (the ' +
          'AuthenticationResponseJSON of navigator.credentials.get(), as a string). With `{"mfa_token"}` (from a 403 mfa_required ' +
          'listing `webauthn`): the second step of that login, with the user\'s passkeys in allowCredentials; answer with ' +
          'grant_type urn:gatehouse:params:oauth:grant-type:mfa-webauthn, the mfa_token and `assertion`.',
        body: Type.Object(
          { mfa_token: Type.Optional(Type.String({ maxLength: 128, description: 'The mfa_token of a 403 mfa_required answer' })) },
          { additionalProperties: false },
        ),
        response: {
          200: RequestOptionsJSON,
          ...bodyErrors,
          400: problem('The body is malformed, or the mfa_token is unknown, expired or spent (mfa_token_invalid)'),
          ...limited,
          ...unavailable,
        },
      },
      // No body at all is the passwordless case.
      preValidation: async (request) => {
        if (request.body === undefined || request.body === null) request.body = {};
      },
    },
    async (request) => {
      await core.limits.passkeyOptions(request.ip);
      const { mfa_token } = request.body;
      if (mfa_token === undefined) return core.passkeys.authenticationOptions();
      const pending = await core.challenges.peek(mfa_token);
      if (!pending) throw new AuthError('mfa_token_invalid', 'The mfa_token is invalid, expired or already used; sign in again');
      return core.passkeys.authenticationOptions({ binding: pending.tokenHash, userId: pending.userId });
    },
  );
};
