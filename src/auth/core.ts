// The auth core, assembled from the plugin's resolved options and a
// database: tokens, sessions, revocations, users, limits and the grants.
// This is what the plugin decorates as `fastify.gatehouse`. The core
// imports nothing from the resources (users/, posts/, admin/).
import type { FastifyBaseLogger } from 'fastify';
import type { Redis } from 'ioredis';
import { systemClock, type Clock } from '../clock.js';
import type { Database } from '../db/client.js';
import { AccountEmail } from './account-email.js';
import { AuditLog } from './audit.js';
import { ChangeFeed } from './change-feed.js';
import { LocalBus, PgBus, RedisBus, type EventBus } from './event-bus.js';
import { Grants } from './grants.js';
import { KeyRing } from './key-ring.js';
import { KeyFollower, KeyStore } from './key-store.js';
import { configuredKeys, legacyDevelopmentKey } from './keys.js';
import { LegacyTokens } from './legacy-tokens.js';
import { LogThrottle, repeated } from './log-throttle.js';
import { MfaChallenges } from './mfa-challenge.js';
import { MailOutbox } from './mail/outbox.js';
import type { ResolvedOptions } from './options.js';
import { PasskeyFactor, PasskeyGrants } from './passkey-grants.js';
import { Passkeys, relyingParty } from './passkeys.js';
import { PasswordHasher } from './passwords.js';
import { AuthRateLimits } from './rate-limit.js';
import { Revocations } from './revocations.js';
import { RecoveryCodes } from './recovery-codes.js';
import { ScopeRules } from './scopes.js';
import { SecondFactors } from './second-factors.js';
import { SecretBox } from './secret-box.js';
import { Sessions } from './sessions.js';
import { TokenService } from './tokens.js';
import { TotpFactor } from './totp.js';
import { UserStates } from './user-state.js';
import { UsersRepository } from './users.js';
import { WebAuthnChallenges } from './webauthn-challenges.js';

export interface AuthCore {
  options: ResolvedOptions;
  clock: Clock;
  db: Database;
  /** The keys that sign and verify now (tokens.keys). */
  keys: KeyRing;
  /** Keeps `keys` in step with PostgreSQL: stored keys, and those of a previous algorithm. */
  keyFollower: KeyFollower;
  scopes: ScopeRules;
  hasher: PasswordHasher;
  tokens: TokenService;
  /** Tokens of the app being moved from, while their window lasts (legacy-tokens.ts). */
  legacyTokens: LegacyTokens | undefined;
  bus: EventBus;
  /** The PostgreSQL change feed (server only; none on the embedded database, where one process is all). */
  feed: ChangeFeed | undefined;
  revocations: Revocations;
  userStates: UserStates;
  users: UsersRepository;
  sessions: Sessions;
  limits: AuthRateLimits;
  grants: Grants;
  /** Sign-ins' second step (mfa_token) and the factors it accepts; second-factor grants plug in here. */
  challenges: MfaChallenges;
  totp: TotpFactor;
  recovery: RecoveryCodes;
  /** Managing a user's second factors (enrollment, disabling, an admin's reset). */
  secondFactors: SecondFactors;
  /** Passkeys: ceremonies and credentials (passkeys.ts), and their grants. */
  passkeys: Passkeys;
  passkeyGrants: PasskeyGrants;
  /** The audit log: `audit.record({...})` at every security event. */
  audit: AuditLog;
  /** Password reset and address verification by mail; undefined when no mail is configured (those routes answer 503). */
  accountEmail: AccountEmail | undefined;
  /** Our Redis command connection, when Redis is configured. */
  redis: Redis | undefined;
  start(): Promise<void>;
  close(): Promise<void>;
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;

function createBus(options: ResolvedOptions, db: Database, warn: (msg: string, err?: unknown) => void): EventBus {
  if (options.redis) return new RedisBus(options.redis, options.redisPrefix, warn);
  if (db.kind === 'postgres' && db.url) {
    return new PgBus(db.url, async (channel, payload) => {
      await db.query('SELECT pg_notify($1, $2)', [channel, payload]);
    }, warn);
  }
  return new LocalBus(warn);
}

export async function createAuthCore(options: ResolvedOptions, db: Database, log: FastifyBaseLogger): Promise<AuthCore> {
  const clock = options.clock ?? systemClock;
  // Outage messages recur on every request and retry: each distinct one is logged once, then counted.
  const throttle = new LogThrottle();
  const warn = (msg: string, err?: unknown) =>
    throttle.log(
      msg,
      () => log.warn({ err: err instanceof Error ? err.message : err }, msg),
      (count, windowMs) => log.warn({ repeated: count }, repeated(msg, count, windowMs)),
    );
  // A retired key is published until every token it can have signed has expired (one rule: tokens.usableUntilMs).
  const keys: KeyRing = new KeyRing((atMs): number => tokens.usableUntilMs(Math.ceil(atMs / 1000) + options.accessTokenTtlSeconds));
  const scopes = new ScopeRules({ scopes: options.scopes, roles: options.roles });
  const tokens: TokenService = new TokenService({
    keys,
    issuer: options.issuer,
    audience: options.audience,
    accessTtlSeconds: options.accessTokenTtlSeconds,
    leewaySeconds: options.leewaySeconds,
    clientId: options.clientId,
    clock,
    profile: options.tokenProfile,
  });
  const fixed = await configuredKeys({
    algorithm: options.algorithm,
    secretKey: options.secretKey,
    previousSecretKeys: options.previousSecretKeys,
    privateKey: options.privateKey,
  });
  // Whatever the algorithm: the store records which one signs, and holds the keys of those it replaced.
  const keyStore = new KeyStore(db, options.algorithm, { current: options.secretKey, previous: options.previousSecretKeys }, { fixed, warn });
  const started = await keyStore.start(clock.now(), fixed ? undefined : legacyDevelopmentKey(options.algorithm, options.keyDir));
  const stored = await keyStore.load();
  keys.replace(stored.keys, stored.retired);
  const legacyTokens =
    options.legacySecretKey && options.legacyTokensUntil
      ? new LegacyTokens({ secretKey: options.legacySecretKey, untilMs: Date.parse(options.legacyTokensUntil), leewaySeconds: options.leewaySeconds, clock, log })
      : undefined;
  const bus = createBus(options, db, warn);
  const redis = bus instanceof RedisBus ? bus.pub : undefined;
  const keyFollower = new KeyFollower(keyStore, keys, bus, clock, warn);
  const storeError = (err: unknown) => warn('PostgreSQL did not answer a security check: answering 503', err);
  const audit = new AuditLog(
    db,
    clock,
    { enabled: options.audit, retentionMs: options.auditRetentionSeconds * SECOND, ...options.auditBuffer },
    log,
  );
  // An operator's change of ALGORITHM is a security event: recorded by the node that made it, once.
  if (started.retired.length) {
    audit.record({ type: 'signing_algorithm_changed', detail: { algorithm: options.algorithm, previous: started.retired } });
  }
  const revocations = new Revocations(db, bus, clock, tokens, storeError);
  const userStates = new UserStates(db, bus, undefined, storeError);
  const feed =
    db.kind === 'postgres'
      ? new ChangeFeed(db, (raw) => bus.deliver(raw), async () => {
          await revocations.rebuild();
          userStates.clear();
        }, warn)
      : undefined;
  const users = new UsersRepository(db, clock, (id) => userStates.changed(id));
  const sessions = new Sessions(db, clock, revocations, {
    refreshTtlMs: options.refreshTokenTtlSeconds * SECOND,
    sessionMaxMs: options.sessionMaxSeconds * SECOND,
    graceMs: options.refreshGraceSeconds * SECOND,
    retentionMs: options.sessionRetentionSeconds * SECOND,
    secret: options.secretKey,
    previousSecrets: options.previousSecretKeys,
    prefix: options.refreshTokenPrefix,
    onReuse: ({ userId, sessionId, meta }) => {
      log.warn({ event: 'refresh_token_reuse', code: 'refresh_token_reused', userId, sessionId, ip: meta.ip }, 'refresh token reuse detected: session revoked');
      audit.record({ type: 'refresh_reuse', userId, sessionId, meta });
    },
    onUserSessionsEnded: async (userId, keep) => legacyTokens?.revokeUser(userId, keep, revocations),
  });
  const limits = new AuthRateLimits(options.limits, { redis, redisPrefix: options.redisPrefix, db });
  const hasher = new PasswordHasher(options.hashing.concurrency, options.hashing.queueMax);
  // Second factors: `mfa_methods` lists them in this order (a passkey factor registers here too).
  const challenges = new MfaChallenges(db, clock);
  const totp = new TotpFactor(db, clock, new SecretBox([options.secretKey, ...options.previousSecretKeys]), `Gatehouse (${new URL(options.publicUrl).host})`, warn);
  const recovery = new RecoveryCodes(db, clock);
  challenges.register(totp);
  challenges.register(recovery);
  const passkeys = new Passkeys(db, clock, new WebAuthnChallenges(db, clock), relyingParty(options.publicUrl, options.webauthn));
  challenges.register(new PasskeyFactor(passkeys, totp));
  const secondFactors = new SecondFactors({ users, challenges, totp, recovery, passkeys, limits, sessions, audit });
  let accountEmail: AccountEmail | undefined;
  if (options.mail) {
    const m = options.mail;
    // The outbox turns reset requests into mails with the flows below (it runs only after start()).
    const outbox = new MailOutbox(db, m.transport, options.secretKey, m, warn, (tx, request) => accountEmail!.expandResetRequest(tx, request));
    accountEmail = new AccountEmail(db, clock, users, sessions, hasher, audit, outbox, {
      resetTtlMs: options.passwordResetTtlSeconds * SECOND,
      verifyTtlMs: options.emailVerifyTtlSeconds * SECOND,
      mailsPerHour: m.perAddressPerHour,
      from: m.from,
      context: { product: m.productName, publicUrl: options.publicUrl },
      passwordPolicy: options.passwordPolicy,
    });
  }
  const grants = new Grants({
    users,
    hasher,
    limits,
    sessions,
    tokens,
    scopes,
    passwordMaxLength: options.passwordPolicy.maxLength,
    log,
    audit,
    challenges,
    requireVerifiedEmail: options.requireEmailVerification,
    emailUnverified: async (user) => {
      await accountEmail?.sendVerification(user, 'skip');
    },
  });
  const passkeyGrants = new PasskeyGrants({ passkeys, grants, scopes, audit });

  return {
    options,
    clock,
    db,
    keys,
    keyFollower,
    scopes,
    hasher,
    tokens,
    legacyTokens,
    bus,
    feed,
    revocations,
    userStates,
    users,
    sessions,
    limits,
    grants,
    challenges,
    totp,
    recovery,
    secondFactors,
    passkeys,
    passkeyGrants,
    audit,
    accountEmail,
    redis,
    async start() {
      await hasher.prepare();
      await grants.calibrate();
      // The feed's position, then the local copies, then what keeps them in step.
      await feed?.prime();
      await revocations.rebuild();
      await bus.start();
      feed?.start();
      revocations.start();
      limits.start();
      audit.start();
      legacyTokens?.start();
      keyFollower.start();
      accountEmail?.outbox.start();
      sessions.startHousekeeping(10 * MINUTE, (err) => warn('housekeeping failed', err), [
        () => sessions.housekeep(),
        () => audit.prune(),
        () => challenges.housekeep(),
        async () => accountEmail?.prune(),
        () => keyFollower.prune(),
        () => passkeys.housekeep(),
      ]);
    },
    async close() {
      await accountEmail?.outbox.stop();
      await sessions.stop();
      await feed?.stop();
      // Before the database closes: no event is lost on a clean shutdown.
      await audit.close();
      revocations.stop();
      keyFollower.stop();
      legacyTokens?.stop();
      limits.stop();
      await bus.close();
      await hasher.close();
      throttle.flush();
    },
  };
}
