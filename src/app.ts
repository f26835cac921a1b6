// buildApp(config, deps): the whole service as a Fastify instance, ready to
// listen. Tests call it with their own database and clock.
import cors, { type FastifyCorsOptions } from '@fastify/cors';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { AuthCore } from './auth/core.js';
import { gatehouse, type GatehouseOptions } from './auth/plugin.js';
import { Problem, User } from './auth/schemas.js';
import { ScopeRules } from './auth/scopes.js';
import { systemClock, type Clock } from './clock.js';
import { policyOf, type Config } from './config.js';
import { openDatabase, type Database } from './db/client.js';
import { registerErrorHandling } from './http/errors.js';
import { clientErrors, frameworkErrors, problemBody } from './http/render.js';
import { securityHeadersPlugin } from './http/security-headers.js';
import { buildValidator, registerRequestChecks } from './http/validation.js';
import { benchRoutes } from './http/bench-routes.js';
import { opsRoutes } from './http/ops.js';
import { mailOption } from './mail-setup.js';
import { userRoutes } from './users/routes.js';
import { passkeyRoutes } from './users/passkey-routes.js';
import { mfaRoutes } from './users/mfa-routes.js';
import { emailRoutes } from './users/email-routes.js';
import { blog, BLOG_AUTH } from './posts/plugin.js';
import { adminRoutes } from './admin/routes.js';
import { auditRoutes } from './audit/routes.js';
import { pagesBuilt, webPages } from './pages/plugin.js';

export interface BuildDeps {
  /** An open database; buildApp opens (and later closes) its own when absent. */
  db?: Database;
  clock?: Clock;
  /** Override the logger (tests pass a destination to read what was logged). */
  logger?: FastifyServerOptions['logger'];
  /** Plugin options over those the configuration gives (tests, benchmarks: `{ audit: false }`). */
  options?: Partial<GatehouseOptions>;
}

export interface Gatehouse {
  app: FastifyInstance;
  core: AuthCore;
  config: Config;
}

const REALM = 'gatehouse';
const DAY = 24 * 3600;

/** The service's configuration → the plugin's options, plus the blog's scope. */
export function pluginOptions(config: Config, db: Database, clock: Clock): GatehouseOptions {
  return {
    database: db,
    clock,
    secretKey: config.secretKey,
    algorithm: config.algorithm,
    privateKey: config.jwtPrivateKey,
    keyDir: config.dataDir,
    previousSecretKeys: config.previousSecretKeys,
    keyPublishDelaySeconds: config.keyPublishDelaySeconds,
    publicUrl: config.publicUrl,
    // `*` lets any page read the API without credentials; it never lets one use the session cookie.
    browserOrigins: config.corsOrigins.filter((o) => o !== '*'),
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    accessTokenTtlSeconds: config.accessTokenExpireMinutes * 60,
    refreshTokenTtlSeconds: config.refreshTokenExpireDays * DAY,
    sessionMaxSeconds: config.sessionMaxDays * DAY,
    refreshGraceSeconds: config.refreshReuseGraceSeconds,
    leewaySeconds: config.jwtLeewaySeconds,
    tokenProfile: config.tokenProfile,
    legacySecretKey: config.legacySecretKey,
    legacyTokensUntil: config.legacyTokensUntil,
    sessionRetentionSeconds: config.sessionRetentionDays * DAY,
    auditRetentionSeconds: config.auditRetentionDays * DAY,
    realm: REALM,
    passwordPolicy: policyOf(config),
    limits: {
      tokenPerMinute: config.rateLimitTokenPerMinute,
      registerPerHour: config.rateLimitRegisterPerHour,
      failedLoginsPerAccount: config.rateLimitFailedLoginsPerAccount,
      passwordResetPerHour: config.rateLimitPasswordResetPerHour,
    },
    hashing: { concurrency: config.hashConcurrency, queueMax: config.hashQueueMax },
    webauthn: { rpId: config.webauthnRpId, rpName: config.webauthnRpName },
    redis: config.redisUrl,
    redisPrefix: config.redisPrefix,
    passwordResetTtlSeconds: config.passwordResetExpireMinutes * 60,
    emailVerifyTtlSeconds: config.emailVerifyExpireHours * 3600,
    requireEmailVerification: config.requireEmailVerification,
    ...BLOG_AUTH,
  };
}

// Query parameters whose values must never reach a log line.
const SECRET_PARAMS = /^(password|token|refresh_token|access_token|client_secret|code|current_password|new_password)$/i;

function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const params = new URLSearchParams(url.slice(q + 1));
  for (const key of [...params.keys()]) if (SECRET_PARAMS.test(key)) params.set(key, '[redacted]');
  return `${url.slice(0, q)}?${params.toString()}`;
}

export function loggerOptions(config: Config): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    // Defence in depth: request logs carry no headers or bodies, but nothing
    // that looks like a credential gets through even if one is logged.
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        '*.password',
        '*.current_password',
        '*.new_password',
        '*.token',
        '*.access_token',
        '*.refresh_token',
        '*.password_hash',
        '*.secretKey',
        '*.legacySecretKey',
      ],
      censor: '[redacted]',
    },
    serializers: {
      req: (req: { method: string; url: string; ip?: string; headers?: Record<string, unknown> }) => ({
        method: req.method,
        url: redactUrl(req.url),
        ip: req.ip,
        userAgent: req.headers?.['user-agent'],
      }),
    },
  };
}

/**
 * CORS: listed origins get their own origin back and credentials (the
 * browser-session cookie); `*` lets any other origin read answers without
 * credentials, never with them. Preflights allow X-Requested-With (the
 * browser endpoints' CSRF header).
 */
export function corsOptions(origins: readonly string[]): FastifyCorsOptions {
  const listed = new Set(origins.filter((o) => o !== '*'));
  const anyOrigin = origins.includes('*');
  const common = {
    methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: ['Authorization', 'Content-Type', 'X-Requested-With'],
    exposedHeaders: ['WWW-Authenticate', 'Retry-After'],
    maxAge: 600,
  };
  return {
    // Per request, so the answer varies on Origin (the plugin adds Vary: Origin).
    delegator: (request, callback) => {
      const origin = request.headers.origin;
      if (origin !== undefined && listed.has(origin)) callback(null, { ...common, origin, credentials: true });
      else callback(null, { ...common, origin: anyOrigin ? '*' : false, credentials: false });
    },
  };
}

export async function buildApp(config: Config, deps: BuildDeps = {}): Promise<Gatehouse> {
  const ownDb = !deps.db;
  const db = deps.db ?? (await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir }));
  const clock = deps.clock ?? systemClock;

  const app = Fastify({
    logger: deps.logger ?? loggerOptions(config),
    // Fastify takes a hop count as well as the types its typings list.
    trustProxy: config.trustProxy as false | string[],
    bodyLimit: config.bodyLimitBytes,
    // Long enough for the slowest request; short enough to shed slowloris clients.
    requestTimeout: 30_000,
    connectionTimeout: 60_000,
    // Requests arriving while closing get a 503 problem from the hook below;
    // idle kept-alive connections are closed at once, so shutdown lasts as
    // long as the slowest request in flight, not a keep-alive timeout.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
    // An unknown field is a 422 naming it, as OpenAPI's additionalProperties: false says (never silently dropped).
    ajv: { customOptions: { allErrors: true, removeAdditional: false } },
    // Bodies are validated without type coercion (src/http/validation.ts).
    schemaController: { compilersFactory: { buildValidator } },
    // Routing errors (undecodable path, over-long parameter) as problem details too.
    frameworkErrors: frameworkErrors(REALM),
    // Errors of the HTTP parser (headers too large, unparsable requests) as problem details too.
    clientErrorHandler: clientErrors(),
  }).withTypeProvider<TypeBoxTypeProvider>();

  for (const warning of config.warnings) app.log.warn(warning);
  if (config.secretKeyGenerated) {
    app.log.warn(`SECRET_KEY is not set: using a development key kept in ${config.dataDir}/secret_key (never do this in production)`);
  }
  if (ownDb) app.addHook('onClose', async () => db.close());
  // Before the shutdown hook below, so that its 503 carries the headers too.
  await app.register(securityHeadersPlugin, { hsts: config.hsts, docsPrefix: '/docs' });
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (_request, reply) => {
    if (!closing) return;
    reply.header('connection', 'close').header('retry-after', '1');
    return reply.code(503).type('application/problem+json').send(problemBody(503, 'The service is shutting down', 'shutting_down'));
  });
  // A response finishing while we close also ends its connection, so the client does not reuse it.
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });

  registerErrorHandling(app, REALM);
  registerRequestChecks(app);
  app.addSchema(Problem);
  app.addSchema(User);

  if (config.corsOrigins.length) await app.register(cors, corsOptions(config.corsOrigins));

  const options = { ...pluginOptions(config, db, clock), mail: mailOption(config, app.log), ...deps.options };
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Gatehouse',
        version: '1.0.0',
        description: 'JWT authentication (OAuth 2.0 password flow, refresh rotation, revocation) and the blog API it protects.',
      },
      tags: [
        { name: 'auth', description: 'Tokens, sessions and keys' },
        { name: 'users', description: 'Your own account' },
        { name: 'posts', description: 'The blog' },
        { name: 'admin', description: 'User administration' },
        { name: 'operations', description: 'Health and readiness' },
      ],
      components: {
        securitySchemes: {
          OAuth2PasswordBearer: {
            type: 'oauth2',
            flows: {
              password: {
                tokenUrl: '/auth/token',
                refreshUrl: '/auth/token',
                scopes: { ...new ScopeRules({ scopes: options.scopes, roles: options.roles }).descriptions },
              },
            },
          },
        },
      },
    },
    // Routes that declare `config.auth` get their security requirement here.
    transform: ({ schema, url, route }) => {
      const auth = route.config?.auth;
      if (!auth || !schema) return { schema, url };
      const security = [{ OAuth2PasswordBearer: [...(auth.scopes ?? [])] }];
      return { schema: { ...schema, security: auth.optional ? [...security, {}] : security }, url };
    },
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { persistAuthorization: false, tryItOutEnabled: true },
    initOAuth: { usePkceWithAuthorizationCodeGrant: false },
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  // The web pages at / (built by `npm run build` / `npm start`); unbuilt (tests
  // of the API alone, `npm run dev`), a person opening the address finds the docs.
  if (pagesBuilt()) await app.register(webPages);
  else app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/docs', 302));

  // The auth core, registered exactly as a host app would; then the resources on top of it.
  try {
    await app.register(gatehouse, options);
  } catch (err) {
    if (ownDb) await db.close();
    throw err;
  }
  const core = app.gatehouse;
  if (config.benchRoutes) {
    if (config.nodeEnv === 'production') throw new Error('BENCH_ROUTES is for benchmarks only and is refused with NODE_ENV=production');
    await app.register(benchRoutes, { core });
  }
  await app.register(opsRoutes, { core });
  await app.register(userRoutes, { core });
  await app.register(passkeyRoutes, { core });
  await app.register(mfaRoutes, { core });
  await app.register(emailRoutes, { core });
  await app.register(blog, { core });
  await app.register(adminRoutes, { core });
  await app.register(auditRoutes, { core });

  return { app, core, config };
}
