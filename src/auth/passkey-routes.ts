// POST /auth/passkey/options: the challenge of a passkey sign-in. Public and
// limited per address (each call stores a challenge for 5 minutes). Mounted
// with the other /auth routes, in their context (error format, no-store).
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { bodyErrors, limited, unavailable } from '../http/openapi.js';
import type { AuthCore } from './core.js';
import { RequestOptionsJSON } from './passkey-schemas.js';

export const passkeyAuthRoutes: FastifyPluginAsyncTypebox<{ core: AuthCore }> = async (app, { core }) => {
  app.post(
    '/passkey/options',
    {
      schema: {
        tags: ['auth'],
        summary: 'Request options for signing in with a passkey (PublicKeyCredentialRequestOptionsJSON)',
        description:
          'A fresh challenge (single-use, 5 minutes) and no allowCredentials: the passkey names its user. ' +
          'Pass the options to navigator.credentials.get() (or @simplewebauthn/browser startAuthentication), then send the answer ' +
          'to POST /auth/token as `assertion` with grant_type urn:gatehouse:params:oauth:grant-type:webauthn.',
        response: { 200: RequestOptionsJSON, 413: bodyErrors[413], ...limited, ...unavailable },
      },
    },
    async (request) => {
      await core.limits.passkeyOptions(request.ip);
      return core.passkeys.authenticationOptions();
    },
  );
};
