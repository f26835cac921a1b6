// The caller's own account: profile, password, sessions.
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AuthCore } from '../auth/core.js';
import { AuthError, notFound, validationFailed } from '../auth/errors.js';
import { principalOf } from '../auth/guard.js';
import { sessionMeta } from '../auth/routes.js';
import { isUuid } from '../auth/ids.js';
import { exceedsLength } from '../auth/password-length.js';
import { checkPasswordPolicyAsync } from '../auth/password-policy.js';
import { User } from '../auth/schemas.js';
import { isValidEmail, toPublicUser, type UserRow } from '../auth/users.js';

const Session = Type.Object({
  id: Type.String({ format: 'uuid' }),
  created_at: Type.String({ format: 'date-time' }),
  last_used_at: Type.String({ format: 'date-time' }),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  current: Type.Boolean(),
});

export const userRoutes: FastifyPluginAsyncTypebox<{ core: AuthCore }> = async (app, { core }) => {
  const { hasher, sessions, limits, users, options, audit } = core;
  const policy = options.passwordPolicy;

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
      schema: { tags: ['users'], summary: 'Your profile', response: { 200: User } },
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
        summary: 'Edit your profile',
        body: Type.Object(
          {
            full_name: Type.Optional(Type.Union([Type.String({ maxLength: 200 }), Type.Null()])),
            email: Type.Optional(Type.String({ maxLength: 320 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: User },
      },
    },
    async (request) => {
      const me = principalOf(request);
      const { full_name, email } = request.body;
      if (email !== undefined && !isValidEmail(email)) {
        throw validationFailed([{ path: '/email', message: 'must be a valid email address' }]);
      }
      if (full_name === undefined && email === undefined) return toPublicUser(await currentUser(me.userId));
      const updated = await users.updateProfile(me.userId, { fullName: full_name, email });
      if (!updated) throw notFound('User not found');
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
        body: Type.Object({
          current_password: Type.String({ maxLength: 4096, format: 'password' }),
          new_password: Type.String({ maxLength: 4096, format: 'password' }),
        }),
        response: { 204: Type.Null({ description: 'Changed' }) },
      },
    },
    async (request, reply) => {
      const me = principalOf(request);
      const { current_password, new_password } = request.body;
      const user = await currentUser(me.userId);
      // Guessing the current password here is as rate-limited as logging in.
      await limits.checkLogin(user.username, request.ip);
      const ok =
        !exceedsLength(current_password, policy.maxLength) && (await hasher.verify(user.password_hash, current_password)).ok;
      if (!ok) {
        await limits.loginFailed(user.username, request.ip);
        throw new AuthError('current_password_incorrect', 'The current password is incorrect');
      }
      const errors = await checkPasswordPolicyAsync(new_password, { username: user.username, email: user.email }, policy, '/new_password');
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
      schema: { tags: ['users'], summary: 'Your live sessions', response: { 200: Type.Array(Session) } },
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
        response: { 204: Type.Null({ description: 'Ended' }) },
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
