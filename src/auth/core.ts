// The auth core, assembled: everything the guard and the /auth routes need,
// built from config and a database. Resource modules receive this; the core
// imports nothing from them.
import type { Redis } from 'ioredis';
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { LocalBus, PgBus, RedisBus, type EventBus } from '../stores/events.js';
import { loadSigningKeys, type SigningKeys } from './keys.js';
import { PasswordHasher } from './passwords.js';
import { AuthRateLimits } from './rate-limit.js';
import { Revocations } from './revocations.js';
import { Sessions } from './sessions.js';
import { TokenService } from './tokens.js';
import { UserStates } from './user-state.js';

export interface AuthCore {
  config: Config;
  clock: Clock;
  db: Database;
  keys: SigningKeys;
  hasher: PasswordHasher;
  tokens: TokenService;
  bus: EventBus;
  revocations: Revocations;
  userStates: UserStates;
  sessions: Sessions;
  limits: AuthRateLimits;
  /** The Redis command connection, when REDIS_URL is set. */
  redis: Redis | undefined;
  start(): Promise<void>;
  close(): Promise<void>;
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

export function createAuthCore(config: Config, db: Database, clock: Clock, log: FastifyBaseLogger): AuthCore {
  const warn = (msg: string, err?: unknown) => log.warn({ err: err instanceof Error ? err.message : err }, msg);
  const keys = loadSigningKeys({
    algorithm: config.algorithm,
    secretKey: config.secretKey,
    privateKeyPem: config.jwtPrivateKey,
    dataDir: config.dataDir,
  });
  const accessTtlSeconds = config.accessTokenExpireMinutes * 60;
  const tokens = new TokenService({
    keys,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    accessTtlSeconds,
    leewaySeconds: config.jwtLeewaySeconds,
    clock,
  });
  let bus: EventBus;
  let redis: Redis | undefined;
  if (config.redisUrl) {
    const rb = new RedisBus(config.redisUrl, config.redisPrefix, warn);
    redis = rb.pub;
    bus = rb;
  } else if (db.kind === 'postgres' && config.databaseUrl) {
    bus = new PgBus(config.databaseUrl, async (channel, payload) => {
      await db.query('SELECT pg_notify($1, $2)', [channel, payload]);
    }, warn);
  } else {
    bus = new LocalBus(warn);
  }
  let storeWarnedAt = -Infinity;
  const storeError = (err: unknown) => {
    // Once per 10 s, not once per request, during an outage.
    if (Date.now() - storeWarnedAt < 10_000) return;
    storeWarnedAt = Date.now();
    warn('PostgreSQL did not answer a security check: answering 503', err);
  };
  const revocations = new Revocations(db, bus, clock, accessTtlSeconds * 1000, config.jwtLeewaySeconds * 1000, storeError);
  const userStates = new UserStates(db, bus, undefined, storeError);
  const sessions = new Sessions(db, clock, revocations, {
    refreshTtlMs: config.refreshTokenExpireDays * DAY,
    sessionMaxMs: config.sessionMaxDays * DAY,
    graceMs: config.refreshReuseGraceSeconds * 1000,
    retentionMs: config.sessionRetentionDays * DAY,
    secret: config.secretKey,
    onReuse: ({ userId, sessionId, ip }) =>
      log.warn({ event: 'refresh_token_reuse', userId, sessionId, ip }, 'refresh token reuse detected: session revoked'),
  });
  const limits = new AuthRateLimits(
    {
      tokenPerMinute: config.rateLimitTokenPerMinute,
      registerPerHour: config.rateLimitRegisterPerHour,
      failedLoginsPerAccount: config.rateLimitFailedLoginsPerAccount,
    },
    { redis, redisPrefix: config.redisPrefix, db },
  );
  const hasher = new PasswordHasher(config.hashConcurrency, config.hashQueueMax);

  return {
    config,
    clock,
    db,
    keys,
    hasher,
    tokens,
    bus,
    revocations,
    userStates,
    sessions,
    limits,
    redis,
    async start() {
      await hasher.prepare();
      // Local copies first, then the subscription that keeps them in step.
      await revocations.rebuild();
      await bus.start();
      revocations.start();
      limits.start();
      sessions.startHousekeeping(10 * MINUTE, (err) => warn('housekeeping failed', err));
    },
    async close() {
      await sessions.stop();
      revocations.stop();
      limits.stop();
      await bus.close();
      await hasher.close();
    },
  };
}
