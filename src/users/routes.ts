// The caller's own account: profile, password, sessions. Every answer
// holds personal data: none may be cached (Cache-Control: no-store).
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AuthCore } from '../auth/core.js';
import { notFound, validationFailed } from '../auth/errors.js';
import { principalOf } from '../auth/guard.js';
import { isUuid } from '../auth/ids.js';
import { sessionMeta } from '../auth/routes.js';
import { User } from '../auth/schemas.js';
import { isValidEmail, toPublicUser, type UserRow } from '../auth/users.js';
import { bodyErrors, empty, guarded, limited, problem, unavailable } from '../http/openapi.js';
import { noStore } from '../http/render.js';
import { addressMoved } from './email-routes.js';

const Session = Type.Object({
  id: Type.String({ format: 'uuid' }),
  created_at: Type.String({ format: 'date-time' }),
  last_used_at: Type.String({ format: 'date-time' }),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  current: Type.Boolean(),
});

export const userRoutes: FastifyPluginAsyncTypebox<{ core: AuthCore }> = async (app, { core }) => {
  const { hasher, sessions, users, grants, options, audit } = core;
  const policy = options.passwordPolicy;
  app.addHook('onSend', async (_request, reply) => noStore(reply));

  async function currentUser(id: string): Promise<UserRow> {
    const user = await users.findById(id);
    // The guard checked the user a moment ago; a concurrent delete lands here.
    if (!user) throw notFound('User not found');
    return user;
  }

  app.get(
    '/users/me',
    {
      config: { auth: { scopes: ['me'] } },
      schema: { tags: ['users'], summary: 'Your profile', response: { 200: User, ...guarded(), ...unavailable } },
    },
    // The guard has just loaded the profile with the user's state: no second lookup.
    async (request) => principalOf(request).profile,
  );

  app.patch(
    '/users/me',
    {
      config: { auth: { scopes: ['me'] } },
      schema: {
        tags: ['users'],
        summary: 'Edit your profile; a new email needs current_password',
        body: Type.Object(
          {
            full_name: Type.Optional(Type.Union([Type.String({ maxLength: 200 }), Type.Null()])),
            email: Type.Optional(Type.String({ maxLength: 320 })),
            current_password: Type.Optional(Type.String({ maxLength: 4096, format: 'password', description: 'Required to change the email address' })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: User,
          ...guarded(),
          ...bodyErrors,
          400: problem('The current password is wrong, or the body is malformed'),
          409: problem('That email address is already registered'),
          ...limited,
          ...unavailable,
        },
      },
    },
    async (request) => {
      const me = principalOf(request);
      const { full_name, email, current_password } = request.body;
      if (email !== undefined && !isValidEmail(email)) {
        throw validationFailed([{ path: '/email', message: 'must be a valid email address' }]);
      }
      if (full_name === undefined && email === undefined) return toPublicUser(await currentUser(me.userId));
      const before = me.profile.email;
      const moving = email !== undefined && email.toLowerCase() !== before.toLowerCase();
      if (moving) {
        // Moving the account to another address is a sensitive change: prove it is you (and no
        // enumeration of taken addresses without the password, which is as limited as a login).
        if (current_password === undefined) {
          throw validationFailed([{ path: '/current_password', message: 'is required to change the email address' }]);
        }
        await grants.verifyCurrentPassword(await currentUser(me.userId), current_password, sessionMeta(request));
      }
      const updated = await users.updateProfile(me.userId, { fullName: full_name, email });
      if (!updated) throw notFound('User not found');
      if (moving) await addressMoved(request, updated, before);
      return toPublicUser(updated);
    },
  );

  app.put(
    '/users/me/password',
    {
      config: { auth: { scopes: ['me'] } },
      schema: {
        tags: ['users'],
        summary: 'Change your password; every other session is ended',
        body: Type.Object(
          {
            current_password: Type.String({ maxLength: 4096, format: 'password' }),
            new_password: Type.String({ maxLength: 4096, format: 'password' }),
          },
          { additionalProperties: false },
        ),
        response: {
          204: empty('Changed'),
          ...guarded(),
          ...bodyErrors,
          400: problem('The current password is wrong, or the body is malformed'),
          422: problem('The new password does not meet the policy (errors names each rule)'),
          ...limited,
          ...unavailable,
        },
      },
    },
    async (request, reply) => {
      const me = principalOf(request);
      const { current_password, new_password } = request.body;
      const user = await currentUser(me.userId);
      await grants.verifyCurrentPassword(user, current_password, sessionMeta(request));
      const errors = await hasher.checkPolicy(new_password, { username: user.username, email: user.email }, policy, '/new_password');
      if (errors.length) throw validationFailed(errors, 'The new password does not meet the password policy');
      await users.setPasswordHash(user.id, await hasher.hash(new_password));
      await sessions.revokeUserSessions(user.id, me.sessionId);
      audit.record({ type: 'password_changed', userId: me.userId, username: me.username, sessionId: me.sessionId, meta: sessionMeta(request) });
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/users/me/sessions',
    {
      config: { auth: { scopes: ['me'] } },
      schema: { tags: ['users'], summary: 'Your live sessions', response: { 200: Type.Array(Session), ...guarded(), ...unavailable } },
    },
    async (request) => {
      const me = principalOf(request);
      return (await sessions.list(me.userId)).map((s) => ({ ...s, current: s.id === me.sessionId }));
    },
  );

  app.delete(
    '/users/me/sessions/:id',
    {
      config: { auth: { scopes: ['me'] } },
      schema: {
        tags: ['users'],
        summary: 'End one of your sessions',
        params: Type.Object({ id: Type.String() }),
        response: { 204: empty('Ended'), ...guarded(), 404: problem('No such session of yours'), ...unavailable },
      },
    },
    async (request, reply) => {
      const me = principalOf(request);
      const { id } = request.params;
      if (!isUuid(id) || !(await sessions.revokeSession(me.userId, id))) throw notFound('Session not found');
      audit.record({ type: 'session_deleted', userId: me.userId, username: me.username, sessionId: me.sessionId, meta: sessionMeta(request), detail: { session_id: id } });
      return reply.code(204).send(null);
    },
  );
};
