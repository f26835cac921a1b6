// Gatehouse as a Fastify plugin: `app.register(gatehouse, options)`.
//
// - decorates `app.gatehouse` (the AuthCore: tokens, sessions, revocations,
//   users, grants…) and `request.principal`;
// - installs the guard on the root instance (guard.ts): every route that
//   declares `config: { auth }` is protected, wherever it was registered;
// - mounts /auth/* under `prefix` (and /.well-known/*: discovery.ts) in contexts
//   of their own, with their own error handler (RFC 6749 / RFC 6750 /
//   problem+json), body parsers and validator: the host's error handler,
//   validator, 404 handler and content-type parsers are left alone;
// - applies the auth core's migrations, starts timers and listeners on
//   onReady and stops them on onClose (closing the database only if it
//   opened it).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { openPostgres, type Database } from '../db/client.js';
import { migrate } from '../db/migrate.js';
import { authMigrations } from './migrations.js';
import { errorHandler } from '../http/render.js';
import { buildValidator, registerRequestChecks } from '../http/validation.js';
import { createAuthCore, type AuthCore } from './core.js';
import { installGuard } from './guard.js';
import { resolveOptions, type GatehouseOptions } from './options.js';
import { wellKnownRoutes } from './discovery.js';
import { authRoutes, sessionMeta } from './routes.js';
import { passkeyAuthRoutes } from './passkey-routes.js';
import { AuthError } from './errors.js';
import type { AuditRecord } from './audit.js';

declare module 'fastify' {
  interface FastifyInstance {
    gatehouse: AuthCore;
  }
}

/** A context of the plugin's own: its error format, its parsers and its validation. */
async function ownContext(app: FastifyInstance, realm: string): Promise<void> {
  app.setErrorHandler(errorHandler(realm));
  // Bodies are never type-coerced (see validation.ts), whatever the host chose.
  const compile = buildValidator!({}, { customOptions: { allErrors: true, removeAdditional: false } } as never) as unknown as Parameters<FastifyInstance['setValidatorCompiler']>[0];
  app.setValidatorCompiler(compile);
  registerRequestChecks(app);
}

/** A 429: who, when known (the caller's token, or the name typed at login or registration), and where. */
function rateLimitedEvent(request: FastifyRequest): AuditRecord {
  const typed = (request.body as { username?: unknown } | undefined)?.username;
  return {
    type: 'rate_limited',
    userId: request.principal?.userId,
    username: request.principal?.username ?? (typeof typed === 'string' ? typed : null),
    sessionId: request.principal?.sessionId,
    meta: sessionMeta(request),
    detail: { route: `${request.method} ${request.routeOptions.url ?? request.url}` },
  };
}

async function gatehousePlugin(app: FastifyInstance, raw: GatehouseOptions): Promise<void> {
  const options = resolveOptions(raw);
  const ownDb = typeof options.database === 'string';
  const db: Database = typeof options.database === 'string' ? await openPostgres(options.database) : options.database;
  let core: AuthCore;
  try {
    if (options.migrate) await migrate(db, authMigrations);
    core = await createAuthCore(options, db, app.log);
    installGuard(app, core, options.realm);
  } catch (err) {
    if (ownDb) await db.close();
    throw err;
  }
  app.decorate('gatehouse', core);
  // Every 429, on any route (the plugin's and the host's): one audit event.
  app.addHook('onError', async (request, _reply, err) => {
    if (err instanceof AuthError && err.code === 'rate_limited') core.audit.record(rateLimitedEvent(request));
  });
  app.addHook('onReady', () => core.start());
  app.addHook('onClose', async () => {
    await core.close();
    if (ownDb) await db.close();
  });

  await app.register(
    async (auth) => {
      await ownContext(auth, options.realm);
      await auth.register(authRoutes, { core });
      await auth.register(passkeyAuthRoutes, { core });
    },
    { prefix: options.prefix },
  );
  await app.register(async (wellKnown) => {
    await ownContext(wellKnown, options.realm);
    await wellKnown.register(wellKnownRoutes, { core });
  });
}

export const gatehouse = fp(gatehousePlugin, { fastify: '5.x', name: 'gatehouse' });
export default gatehouse;

export type { GatehouseOptions } from './options.js';
export type { AuthCore } from './core.js';
export type { Principal, RouteAuth } from './guard.js';
export { principalOf } from './guard.js';
export { AuthError };
// Mail for a host: SMTP as the service sends it, or its own transport (any object with send(mail)).
export { MailRejected, smtpTransport } from './mail/transport.js';
export type { MailTransport, OutgoingMail } from './mail/transport.js';
