// The audit log over HTTP (docs/API.md "Audit log"): every event for an
// administrator, your own for you. Newest first, keyset pages like /posts.
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { noStore } from '../http/render.js';
import { guarded, problem, unavailable } from '../http/openapi.js';
import { AUDIT_TYPES } from '../auth/audit.js';
import type { AuthCore } from '../auth/core.js';
import { principalOf } from '../auth/guard.js';
import { PageQuery, pageRequest } from '../http/pagination.js';

const nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

const Event = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    at: Type.String({ format: 'date-time' }),
    type: Type.Union(AUDIT_TYPES.map((t) => Type.Literal(t))),
    user_id: nullable(Type.String({ format: 'uuid', description: 'null when no account matched' })),
    username: nullable(Type.String({ description: 'The account, or what was typed on a failed login (never a password)' })),
    ip: nullable(Type.String()),
    user_agent: nullable(Type.String()),
    session_id: nullable(Type.String({ format: 'uuid' })),
    detail: Type.Object({}, { additionalProperties: true, description: 'e.g. {"scope": "others"}, {"fields": ["role"]}' }),
  },
  { $id: 'AuditEvent' },
);

const EventPage = Type.Object(
  {
    items: Type.Array(Type.Ref('AuditEvent')),
    next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` for the next page; null on the last page' }),
  },
  { description: 'One page of audit events, newest first' },
);

const answers = (scope: string, invalid: string) => ({
  200: EventPage,
  ...guarded(`The token lacks the ${scope} scope (insufficient_scope)`),
  422: problem(invalid),
  ...unavailable,
});

export const auditRoutes: FastifyPluginAsyncTypebox<{ core: AuthCore }> = async (app, { core }) => {
  const { audit } = core;
  // Personal data: never cached.
  app.addHook('onSend', async (_request, reply) => noStore(reply));
  app.addSchema(Event);

  app.get(
    '/admin/audit',
    {
      config: { auth: { scopes: ['admin'] } },
      schema: {
        tags: ['admin'],
        summary: 'Every security event, newest first; filter by user and type',
        querystring: Type.Object(
          {
            user_id: Type.Optional(Type.String({ format: 'uuid', description: "Only this user's events" })),
            type: Type.Optional(Type.Union(AUDIT_TYPES.map((t) => Type.Literal(t)), { description: 'Only events of this type' })),
            ...PageQuery,
          },
          { additionalProperties: false },
        ),
        response: answers('admin', 'Invalid user_id, type, limit or cursor'),
      },
    },
    async (request) => {
      const { user_id, type } = request.query;
      return audit.list({ userId: user_id, type, ...pageRequest(request.query) });
    },
  );

  app.get(
    '/users/me/audit',
    {
      config: { auth: { scopes: ['me'] } },
      schema: {
        tags: ['users'],
        summary: 'Your own security events (logins, failed logins, sessions ended, password changes…), newest first',
        querystring: Type.Object(PageQuery, { additionalProperties: false }),
        response: answers('me', 'Invalid limit or cursor'),
      },
    },
    async (request) => audit.list({ userId: principalOf(request).userId, ownerView: true, ...pageRequest(request.query) }),
  );
};
