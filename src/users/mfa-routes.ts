// The caller's second factors (API.md, "Two-factor authentication"):
// status, TOTP enrollment and its confirmation, disabling, new recovery
// codes. The rules live in src/auth/second-factors.ts; these only parse and
// render. Secrets and codes are in the answers: never cached.
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AuthCore } from '../auth/core.js';
import { notFound } from '../auth/errors.js';
import { principalOf } from '../auth/guard.js';
import { sessionMeta } from '../auth/routes.js';
import { bodyErrors, empty, guarded, limited, problem, unavailable } from '../http/openapi.js';
import { noStore } from '../http/render.js';

const Code = Type.Object(
  { code: Type.String({ maxLength: 64, description: 'A current TOTP code, or an unused recovery code' }) },
  { additionalProperties: false },
);
const RecoveryCodesAnswer = Type.Object({
  recovery_codes: Type.Array(Type.String(), { minItems: 10, maxItems: 10, description: 'Shown this once; each works once' }),
});
const wrongCode = problem('The code is wrong, expired or already used (mfa_code_invalid), or the body is malformed');
const notOn = problem('Two-factor authentication is not on (mfa_not_enabled)');

export const mfaRoutes: FastifyPluginAsyncTypebox<{ core: AuthCore }> = async (app, { core }) => {
  const { users, grants, secondFactors } = core;
  app.addHook('onSend', async (_request, reply) => noStore(reply));
  const auth = { auth: { scopes: ['me'] } };

  async function me(request: Parameters<typeof principalOf>[0]) {
    const p = principalOf(request);
    const user = await users.findById(p.userId);
    if (!user) throw notFound('User not found');
    return { user, sessionId: p.sessionId, meta: { ...sessionMeta(request), sessionId: p.sessionId } };
  }

  app.get(
    '/users/me/mfa',
    {
      config: auth,
      schema: {
        tags: ['users'],
        summary: 'Your second factors',
        response: {
          200: Type.Object({ totp: Type.Boolean(), recovery_codes_left: Type.Integer(), passkeys: Type.Integer() }),
          ...guarded(),
          ...unavailable,
        },
      },
    },
    async (request) => secondFactors.status(principalOf(request).userId),
  );

  app.post(
    '/users/me/mfa/totp',
    {
      config: auth,
      schema: {
        tags: ['users'],
        summary: 'Start a TOTP enrollment (needs your password); sign-in is unchanged until confirmed',
        body: Type.Object({ password: Type.String({ maxLength: 4096, format: 'password' }) }, { additionalProperties: false }),
        response: {
          200: Type.Object({
            secret: Type.String({ description: 'The TOTP secret, base32 (for typing into an authenticator app)' }),
            otpauth_uri: Type.String({ description: 'otpauth://totp/… (SHA-1, 6 digits, 30 s)' }),
            qr_svg: Type.String({ description: 'The otpauth URI as a QR code, SVG markup' }),
          }),
          ...guarded(),
          ...bodyErrors,
          400: problem('The password is wrong, or the body is malformed'),
          409: problem('TOTP is already on (mfa_already_enabled)'),
          ...limited,
          ...unavailable,
        },
      },
    },
    async (request) => {
      const { user, meta } = await me(request);
      await grants.verifyCurrentPassword(user, request.body.password, meta);
      return secondFactors.enrollTotp(user);
    },
  );

  app.post(
    '/users/me/mfa/totp/confirm',
    {
      config: auth,
      schema: {
        tags: ['users'],
        summary: 'Turn TOTP on with a first code; answers the recovery codes, shown this once',
        body: Type.Object({ code: Type.String({ maxLength: 64, description: 'A code of the authenticator app' }) }, { additionalProperties: false }),
        response: {
          200: RecoveryCodesAnswer,
          ...guarded(),
          ...bodyErrors,
          400: wrongCode,
          409: problem('TOTP is already on (mfa_already_enabled)'),
          ...unavailable,
        },
      },
    },
    async (request) => {
      const { user, meta } = await me(request);
      return { recovery_codes: await secondFactors.confirmTotp(user, request.body.code, meta) };
    },
  );

  app.delete(
    '/users/me/mfa/totp',
    {
      config: auth,
      schema: {
        tags: ['users'],
        summary: 'Turn TOTP off (with a code); the recovery codes go too and every other session ends',
        body: Code,
        response: { 204: empty('Turned off'), ...guarded(), ...bodyErrors, 400: wrongCode, 409: notOn, ...limited, ...unavailable },
      },
    },
    async (request, reply) => {
      const { user, sessionId, meta } = await me(request);
      await secondFactors.disableTotp(user, request.body.code, meta, sessionId);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/users/me/mfa/recovery-codes',
    {
      config: auth,
      schema: {
        tags: ['users'],
        summary: 'A new set of recovery codes (with a code); the old set dies',
        body: Code,
        response: { 200: RecoveryCodesAnswer, ...guarded(), ...bodyErrors, 400: wrongCode, 409: notOn, ...limited, ...unavailable },
      },
    },
    async (request) => {
      const { user, meta } = await me(request);
      return { recovery_codes: await secondFactors.newRecoveryCodes(user, request.body.code, meta) };
    },
  );
};
