// The caller's address (issue 12): a new verification link on request, and
// what follows a change of address (PATCH /users/me, routes.ts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { mailOf } from '../auth/account-routes.js';
import type { AuthCore } from '../auth/core.js';
import { notFound } from '../auth/errors.js';
import { principalOf } from '../auth/guard.js';
import { sessionMeta } from '../auth/routes.js';
import type { UserRow } from '../auth/users.js';
import { guarded, limited, problem, unavailable } from '../http/openapi.js';
import { noStore } from '../http/render.js';

/**
 * The account moved to a new address: it is unverified now (the update did
 * that); the new address gets a link and the old one a notice, so nobody
 * moves an account silently. Without mail the change stands, unannounced.
 */
export async function addressMoved(request: FastifyRequest, user: UserRow, oldEmail: string): Promise<void> {
  const core = request.server.gatehouse;
  const me = principalOf(request);
  core.audit.record({ type: 'email_changed', userId: user.id, username: user.username, sessionId: me.sessionId, meta: sessionMeta(request) });
  await core.accountEmail?.addressChanged(user, oldEmail).catch((err: unknown) => request.log.warn({ err: (err as Error).message }, 'could not queue the address-change mails'));
}

export const emailRoutes: FastifyPluginAsyncTypebox<{ core: AuthCore }> = async (app, { core }) => {
  app.addHook('onSend', async (_request, reply) => noStore(reply));
  app.post(
    '/users/me/verify-email',
    {
      config: { auth: { scopes: ['me'] } },
      schema: {
        tags: ['users'],
        summary: 'Mail a new verification link to your address',
        response: {
          202: Type.Object({}, { additionalProperties: false, description: '{}: a link is on its way' }),
          ...guarded(),
          ...limited,
          ...unavailable,
          503: problem('Mail is not configured (mail_unavailable), or the database is unavailable'),
        },
      },
    },
    async (request, reply) => {
      const mail = mailOf(core);
      const user = await core.users.findById(principalOf(request).userId);
      if (!user) throw notFound('User not found');
      await mail.sendVerification(user, 'refuse');
      return reply.code(202).send({});
    },
  );
};
