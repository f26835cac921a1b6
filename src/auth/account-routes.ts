// /auth/password-reset, /auth/password-reset/confirm and /auth/verify-email
// (issue 12). Mounted inside the /auth context (its parsers: JSON or form;
// no-store; the 64 KiB body limit). Without mail they answer 503.
import { setTimeout as sleep } from 'node:timers/promises';
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { bodyErrors, empty, limited, problem, unavailable } from '../http/openapi.js';
import type { AccountEmail } from './account-email.js';
import type { AuthCore } from './core.js';
import { AuthError, validationFailed } from './errors.js';
import { sessionMeta } from './routes.js';
import { User } from './schemas.js';
import { isValidEmail, toPublicUser } from './users.js';

/** The mail routes' 503 when no mail is configured (production without SMTP_URL). */
export function mailOf(core: AuthCore): AccountEmail {
  if (!core.accountEmail) {
    throw new AuthError('mail_unavailable', 'Mail is not configured on this server (SMTP_URL is not set), so this is unavailable');
  }
  return core.accountEmail;
}

const AFTER_ANSWER_MS = 20;
/** Every reset request is answered after at least this long. */
const RESET_ANSWER_FLOOR_MS = 100;
const mailOff = { 503: problem('Mail is not configured (mail_unavailable), or the database is unavailable') };
const Token = Type.String({ maxLength: 256, description: 'The token from the mailed link (after #token=)' });

export const accountRoutes: FastifyPluginAsyncTypebox<{ core: AuthCore }> = async (app, { core }) => {
  app.post(
    '/password-reset',
    {
      schema: {
        tags: ['auth'],
        summary: 'Ask for a password-reset link by mail',
        description:
          'Always 202 {} with the same headers and in the same time, whether or not the address has an account. ' +
          'If it has, a link to /reset-password is mailed (at most 3 an hour per address).',
        consumes: ['application/json', 'application/x-www-form-urlencoded'],
        body: Type.Object({ email: Type.String({ maxLength: 320 }) }, { additionalProperties: false }),
        response: { 202: Type.Object({}, { additionalProperties: false, description: '{}' }), ...bodyErrors, ...limited, ...unavailable, ...mailOff },
      },
    },
    async (request, reply) => {
      const startedAt = performance.now();
      const mail = mailOf(core);
      const { email } = request.body;
      if (!isValidEmail(email)) throw validationFailed([{ path: '/email', message: 'must be a valid email address' }]);
      await core.limits.passwordResetRequest(request.ip);
      await mail.requestReset(email, sessionMeta(request));
      // The work is the same for every address already; a floor (a wait, no CPU) also hides the
      // jitter of the database and of whatever else this node is doing.
      await sleep(Math.max(0, RESET_ANSWER_FLOOR_MS - (performance.now() - startedAt)));
      // The sender starts a moment after the answer has left (and been read, by a client in this
      // very process): the lookup behind it cannot show in the answer's timing.
      reply.raw.once('finish', () => mail.outbox.poke(AFTER_ANSWER_MS));
      return reply.code(202).send({});
    },
  );

  app.post(
    '/password-reset/confirm',
    {
      schema: {
        tags: ['auth'],
        summary: 'Set a new password with a mailed reset token',
        description: 'Every session of the user ends, every other reset token dies, and a notice is mailed.',
        consumes: ['application/json', 'application/x-www-form-urlencoded'],
        body: Type.Object({ token: Token, new_password: Type.String({ maxLength: 4096, format: 'password' }) }, { additionalProperties: false }),
        response: {
          204: empty('Password set'),
          ...bodyErrors,
          400: problem('Unknown, used or expired token (reset_token_invalid), or a malformed body'),
          422: problem('The new password does not meet the policy (errors names /new_password); the token stays usable'),
          ...unavailable,
          ...mailOff,
        },
      },
    },
    async (request, reply) => {
      await mailOf(core).confirmReset(request.body.token, request.body.new_password, sessionMeta(request));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/verify-email',
    {
      schema: {
        tags: ['auth'],
        summary: 'Confirm an email address with a mailed token',
        consumes: ['application/json', 'application/x-www-form-urlencoded'],
        body: Type.Object({ token: Token }, { additionalProperties: false }),
        response: {
          200: User,
          ...bodyErrors,
          400: problem('Unknown, used or expired token, or one mailed to an address the account no longer has (verify_token_invalid)'),
          ...unavailable,
          ...mailOff,
        },
      },
    },
    async (request) => toPublicUser(await mailOf(core).verifyEmail(request.body.token, sessionMeta(request))),
  );
};
