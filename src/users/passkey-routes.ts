// The caller's passkeys: creation options, registration, list, rename,
// delete (docs/API.md "Passkeys"). The ceremonies and their rules live in
// the auth core (src/auth/passkeys.ts); these handlers parse, call, render.
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AuthCore } from '../auth/core.js';
import { AuthError, notFound } from '../auth/errors.js';
import { principalOf } from '../auth/guard.js';
import { CreationOptionsJSON, Passkey, PasskeyName, RegistrationResponseJSON } from '../auth/passkey-schemas.js';
import { sessionMeta } from '../auth/routes.js';
import { bodyErrors, empty, guarded, limited, problem, unavailable } from '../http/openapi.js';
import { noStore } from '../http/render.js';

const IdParams = Type.Object({ id: Type.String({ description: 'The passkey id (a UUID)' }) });

/**
 * A passkey is a way into the account on its own, so adding one is as
 * sensitive as changing the password: a sign-in older than this (or a
 * stolen access token of a long session) must show the password again.
 */
export const RECENT_SIGN_IN_S = 10 * 60;

export const passkeyRoutes: FastifyPluginAsyncTypebox<{ core: AuthCore }> = async (app, { core }) => {
  const { passkeys, limits, audit, users, grants } = core;
  app.addHook('onSend', async (_request, reply) => noStore(reply));

  app.post(
    '/users/me/passkeys/options',
    {
      config: { auth: { scopes: ['me'] } },
      schema: {
        tags: ['users'],
        summary: 'Creation options for a new passkey (PublicKeyCredentialCreationOptionsJSON)',
        description:
          'Resident key and user verification required; ES256 (-7) and EdDSA (-8) offered; your passkeys excluded. ' +
          'The challenge is single-use and lives 5 minutes. Pass the options to navigator.credentials.create() ' +
          '(or @simplewebauthn/browser startRegistration), then POST the answer to /users/me/passkeys. ' +
          `A passkey signs in on its own: unless this session signed in within ${RECENT_SIGN_IN_S / 60} minutes, ` +
          'send `{"password"}` (your current password) too, else 403 reauthentication_required.',
        body: Type.Object(
          { password: Type.Optional(Type.String({ maxLength: 4096, format: 'password', description: 'Needed when the sign-in is not recent' })) },
          { additionalProperties: false },
        ),
        response: {
          200: CreationOptionsJSON,
          ...guarded(),
          ...bodyErrors,
          400: problem('The password is wrong, or the body is malformed'),
          403: problem('The token lacks the scope me (insufficient_scope), or the sign-in is not recent and no password was given (reauthentication_required)'),
          409: problem('The account has as many passkeys as it may (passkey_limit)'),
          ...limited,
          ...unavailable,
        },
      },
      // No body at all is fine (a recent sign-in needs none).
      preValidation: async (request) => {
        if (request.body === undefined || request.body === null) request.body = {};
      },
    },
    async (request) => {
      const me = principalOf(request);
      const recent = core.clock.now() / 1000 - me.authTime <= RECENT_SIGN_IN_S;
      if (!recent) {
        const { password } = request.body;
        if (password === undefined) {
          throw new AuthError('reauthentication_required', 'Give your password to add a passkey (your sign-in is not recent)');
        }
        // The login's rules and counters: this cannot be used to guess the password instead.
        const user = await users.findById(me.userId);
        if (!user) throw notFound('User not found');
        await grants.verifyCurrentPassword(user, password, sessionMeta(request));
      } else {
        // Each ceremony stores a challenge: a person adds a few passkeys an hour, never dozens.
        await limits.sensitiveAction(me.userId);
      }
      return passkeys.registrationOptions({ id: me.userId, username: me.username, fullName: me.profile.full_name });
    },
  );

  app.post(
    '/users/me/passkeys',
    {
      config: { auth: { scopes: ['me'] } },
      schema: {
        tags: ['users'],
        summary: 'Register a passkey: the answer of navigator.credentials.create() to the options',
        body: Type.Object({ name: Type.Optional(PasskeyName), response: RegistrationResponseJSON }, { additionalProperties: false }),
        response: {
          201: Passkey,
          ...guarded(),
          ...bodyErrors,
          400: problem('The response does not verify: unknown, spent or expired challenge, wrong origin or RP ID, no user verification (passkey_invalid)'),
          409: problem('This passkey is already registered (passkey_exists), or the account has as many as it may (passkey_limit)'),
          ...unavailable,
        },
      },
    },
    async (request, reply) => {
      const me = principalOf(request);
      const added = await passkeys.register(me.userId, request.body.response as never, request.body.name);
      audit.record({
        type: 'passkey_added',
        userId: me.userId,
        username: me.username,
        sessionId: me.sessionId,
        meta: sessionMeta(request),
        detail: { passkey_id: added.id, name: added.name },
      });
      return reply.code(201).send(added);
    },
  );

  app.get(
    '/users/me/passkeys',
    {
      config: { auth: { scopes: ['me'] } },
      schema: { tags: ['users'], summary: 'Your passkeys, oldest first', response: { 200: Type.Array(Passkey), ...guarded(), ...unavailable } },
    },
    async (request) => passkeys.list(principalOf(request).userId),
  );

  app.patch(
    '/users/me/passkeys/:id',
    {
      config: { auth: { scopes: ['me'] } },
      schema: {
        tags: ['users'],
        summary: 'Rename one of your passkeys',
        params: IdParams,
        body: Type.Object({ name: PasskeyName }, { additionalProperties: false }),
        response: { 200: Passkey, ...guarded(), ...bodyErrors, 404: problem('No such passkey of yours'), ...unavailable },
      },
    },
    async (request) => {
      const renamed = await passkeys.rename(principalOf(request).userId, request.params.id, request.body.name);
      if (!renamed) throw notFound('Passkey not found');
      return renamed;
    },
  );

  app.delete(
    '/users/me/passkeys/:id',
    {
      config: { auth: { scopes: ['me'] } },
      schema: {
        tags: ['users'],
        summary: 'Remove one of your passkeys',
        description:
          'It can no longer sign in, from now on. Always allowed: a passkey is never the only way into an account ' +
          '(the password stays, and two-factor sign-in rests on TOTP, which stays on).',
        params: IdParams,
        response: {
          204: empty('Removed'),
          ...guarded(),
          404: problem('No such passkey of yours'),
          ...unavailable,
        },
      },
    },
    async (request, reply) => {
      const me = principalOf(request);
      const name = await passkeys.remove(me.userId, request.params.id);
      if (name === undefined) throw notFound('Passkey not found');
      audit.record({
        type: 'passkey_removed',
        userId: me.userId,
        username: me.username,
        sessionId: me.sessionId,
        meta: sessionMeta(request),
        detail: { passkey_id: request.params.id, name },
      });
      return reply.code(204).send(null);
    },
  );
};
