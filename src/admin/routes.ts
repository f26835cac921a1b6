// User administration (scope admin): list users, disable them, change roles.
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AuthCore } from '../auth/core.js';
import { AuthError, notFound } from '../auth/errors.js';
import { principalOf } from '../auth/guard.js';
import { sessionMeta } from '../auth/routes.js';
import { isUuid } from '../auth/ids.js';
import { User } from '../auth/schemas.js';
import { LastAdminError, toPublicUser } from '../auth/users.js';
import { bodyErrors, guarded as guardAnswers, problem, unavailable } from '../http/openapi.js';
import { PageQuery, pageRequest } from '../http/pagination.js';
import { noStore } from '../http/render.js';
import { listUsers } from './queries.js';

const UserPage = Type.Object(
  {
    items: Type.Array(Type.Ref('User')),
    next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` for the next page; null on the last page' }),
  },
  { description: 'One page of users, oldest first' },
);

const guarded = { ...guardAnswers('The token lacks the admin scope (insufficient_scope)'), ...unavailable };

export const adminRoutes: FastifyPluginAsyncTypebox<{ core: AuthCore }> = async (app, { core }) => {
  const { db, sessions, users, audit, secondFactors } = core;
  // Other users' personal data: never cached.
  app.addHook('onSend', async (_request, reply) => noStore(reply));

  app.get(
    '/admin/users',
    {
      config: { auth: { scopes: ['admin'] } },
      schema: {
        tags: ['admin'],
        summary: 'Every user, oldest first',
        querystring: Type.Object(PageQuery),
        response: { 200: UserPage, ...guarded, 422: problem('Invalid limit or cursor') },
      },
    },
    async (request) => {
      return listUsers(db, pageRequest(request.query));
    },
  );

  app.patch(
    '/admin/users/:id',
    {
      config: { auth: { scopes: ['admin'] } },
      schema: {
        tags: ['admin'],
        summary:
          "Disable or enable a user, change their role, or reset their second factors (mfa_reset: true, which also ends their sessions); a disabled user's tokens fail on their next use",
        params: Type.Object({ id: Type.String({ description: 'The user id (a UUID)' }) }),
        body: Type.Object(
          {
            disabled: Type.Optional(Type.Boolean()),
            role: Type.Optional(Type.Union([Type.Literal('user'), Type.Literal('admin')])),
            mfa_reset: Type.Optional(Type.Boolean({ description: 'true: remove every second factor of the user (a lost phone) and end their sessions' })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: User,
          ...guarded,
          ...bodyErrors,
          404: problem('No such user'),
          409: problem('The change would leave no enabled administrator'),
        },
      },
    },
    async (request) => {
      const me = principalOf(request);
      const { id } = request.params;
      if (!isUuid(id)) throw notFound('User not found');
      let result;
      try {
        // The repository invalidates every node's copy of the user first thing after the commit.
        result = await users.change(id, { disabled: request.body.disabled, role: request.body.role });
      } catch (err) {
        if (err instanceof LastAdminError) {
          const who = id === me.userId ? 'yourself' : 'this user';
          throw new AuthError('last_admin', `Refused: changing ${who} would leave no enabled administrator`);
        }
        throw err;
      }
      if (!result) throw notFound('User not found');
      let { user } = result;
      const { changed } = result;
      if (request.body.mfa_reset === true) {
        // Whoever holds the lost phone's sessions is signed out too; announced like every user change.
        await secondFactors.reset(user.id);
        await sessions.revokeUserSessions(user.id);
        user = (await users.findById(user.id)) ?? user;
        request.log.info({ event: 'admin_mfa_reset', by: me.userId, userId: user.id }, 'second factors reset by an administrator');
        audit.record({
          type: 'mfa_disabled',
          userId: user.id,
          username: user.username,
          actorId: me.userId,
          sessionId: me.sessionId,
          meta: sessionMeta(request),
          detail: { by: me.userId, by_username: me.username, reason: 'admin_reset' },
        });
      }
      // Refresh tokens are refused for a disabled user anyway; their sessions end too. Also when the
      // user was disabled already: the node that disabled them may have died before announcing it.
      if (user.disabled) await sessions.revokeUserSessions(user.id);
      if (changed) {
        request.log.info(
          { event: 'admin_user_changed', by: me.userId, userId: user.id, role: user.role, disabled: user.disabled },
          'user changed by an administrator',
        );
        audit.record({
          type: 'user_updated',
          userId: user.id,
          username: user.username,
          actorId: me.userId,
          sessionId: me.sessionId,
          meta: sessionMeta(request),
          detail: { by: me.userId, by_username: me.username, fields: Object.keys(request.body).sort(), role: user.role, disabled: user.disabled },
        });
      }
      return toPublicUser(user);
    },
  );
};
