// The options of the Gatehouse plugin: one TypeBox schema declares each
// option's type, bounds and default; `resolveOptions` checks what a host
// passed against it and fills in the defaults. A bad option fails
// registration with one message naming every wrong field.
import { Type, type Static } from '@fastify/type-provider-typebox';
import type { Redis } from 'ioredis';
import { Value } from 'typebox/value';
import type { Clock } from '../clock.js';
import type { Database } from '../db/client.js';
import type { MailTransport } from './mail/transport.js';
import { ROLES } from './scopes.js';

const DAY = 24 * 3600;
const seconds = (def: number, min: number, max: number, description: string) =>
  Type.Integer({ minimum: min, maximum: max, default: def, description });

const PasswordPolicy = Type.Object(
  {
    minLength: Type.Integer({ minimum: 1, maximum: 128, default: 8 }),
    maxLength: Type.Integer({ minimum: 8, maximum: 1024, default: 128 }),
    /** zxcvbn's 0–4. */
    minScore: Type.Integer({ minimum: 0, maximum: 4, default: 3 }),
  },
  { additionalProperties: false, default: {} },
);

const Limits = Type.Object(
  {
    /** Token endpoint requests per client IP per minute (0: off). */
    tokenPerMinute: Type.Integer({ minimum: 0, default: 30 }),
    /** Registrations per client IP per hour (0: off). */
    registerPerHour: Type.Integer({ minimum: 0, default: 20 }),
    /** Failed logins per account and IP per 15 min before 429 (0: off). */
    failedLoginsPerAccount: Type.Integer({ minimum: 0, default: 10 }),
    /** Password-reset requests per client IP per hour (0: off). */
    passwordResetPerHour: Type.Integer({ minimum: 0, default: 10 }),
  },
  { additionalProperties: false, default: {} },
);

const Hashing = Type.Object(
  {
    /** Password hashes computed at once (threads). */
    concurrency: Type.Integer({ minimum: 1, maximum: 64, default: 1 }),
    /** Hashes that may wait; beyond, 503 with Retry-After. */
    queueMax: Type.Integer({ minimum: 0, maximum: 100_000, default: 256 }),
  },
  { additionalProperties: false, default: {} },
);

const AuditBuffer = Type.Object(
  {
    /** How often waiting audit events are written (ms). */
    flushMs: Type.Integer({ minimum: 10, maximum: 60_000, default: 250 }),
    /** Events per INSERT; this many waiting are written at once. */
    batchSize: Type.Integer({ minimum: 1, maximum: 5000, default: 500 }),
    /** Events kept while PostgreSQL does not take them; beyond, the oldest are dropped (and counted). */
    maxBuffered: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 10_000 }),
  },
  { additionalProperties: false, default: {} },
);

/** Mail delivery (password reset, address verification): absent, those routes answer 503. */
const Mail = Type.Object(
  {
    /** Where mail goes: smtpTransport(url), fileTransport(dir, …), or your own MailTransport. */
    transport: Type.Unsafe<MailTransport>({ description: 'a MailTransport' }),
    from: Type.String({ minLength: 3, default: 'Gatehouse <no-reply@localhost>' }),
    /** The product's name in the mails. */
    productName: Type.String({ minLength: 1, maxLength: 100, default: 'Gatehouse' }),
    /** Mails of one kind (reset, verification) per address per hour. */
    perAddressPerHour: Type.Integer({ minimum: 1, maximum: 100, default: 3 }),
    /** How long a node owns a mail it is delivering (longer than the SMTP timeouts). */
    leaseMs: Type.Integer({ minimum: 1000, maximum: 3_600_000, default: 60_000 }),
    pollMs: Type.Integer({ minimum: 10, maximum: 600_000, default: 1000 }),
    retryBaseMs: Type.Integer({ minimum: 10, maximum: 3_600_000, default: 1000 }),
    retryMaxMs: Type.Integer({ minimum: 10, maximum: 86_400_000, default: 300_000 }),
    giveUpMs: Type.Integer({ minimum: 60_000, default: 3 * 86_400_000 }),
  },
  { additionalProperties: false },
);

const WebAuthn = Type.Object(
  {
    /** The relying party id: `publicUrl`'s host or a registrable suffix of it (default: the host). */
    rpId: Type.Optional(Type.String({ pattern: '^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$' })),
    /** The name authenticators show beside the account. */
    rpName: Type.String({ minLength: 1, maxLength: 64, default: 'Gatehouse' }),
  },
  { additionalProperties: false, default: {} },
);

export const GatehouseOptionsSchema = Type.Object(
  {
    /** An open database (the plugin does not close it), or a postgres:// URL (the plugin opens and closes its pool). */
    database: Type.Unsafe<Database | string>({ description: 'a Database handle or a postgres:// URL' }),
    /** HS256 key (its UTF-8 bytes) and the root of every derived key. */
    secretKey: Type.String({ minLength: 16 }),
    algorithm: Type.Union([Type.Literal('HS256'), Type.Literal('EdDSA'), Type.Literal('ES256'), Type.Literal('RS256')], { default: 'HS256' }),
    /** PEM private key for EdDSA / ES256 / RS256. */
    privateKey: Type.Optional(Type.String()),
    /** Where earlier versions kept a development key pair: one found there is adopted as the first stored key (asymmetric algorithms only). */
    keyDir: Type.Optional(Type.String()),
    /** Earlier SECRET_KEYs: their HS256 tokens still verify (never sign), and what was sealed under them still opens. */
    previousSecretKeys: Type.Array(Type.String({ minLength: 16 }), { default: [] }),
    /** A new signing key is published this long before it signs (and the JWK set is cached no longer). */
    keyPublishDelaySeconds: seconds(600, 0, DAY, 'a rotated key is published this long before it signs'),
    /** The address people and clients use (origin, optionally a path): every absolute URL written is built from it, never from a request's Host. */
    publicUrl: Type.String({ pattern: '^https?://[^/?#\\s]+(/[^?#\\s]*)?$', default: 'http://127.0.0.1:8000' }),
    /** Origins besides publicUrl's whose pages may use the browser-session endpoints (cookie and CSRF check); never `*`. */
    browserOrigins: Type.Array(Type.String({ pattern: '^https?://[^/?#\\s*]+$' }), { default: [] }),
    /** `iss` of issued tokens and the RFC 8414 issuer; default: publicUrl. */
    issuer: Type.Optional(Type.String({ minLength: 1 })),
    audience: Type.String({ minLength: 1, default: 'gatehouse' }),
    /** The shape of issued access tokens (token-profiles.ts): `fastapi` for resource servers written as the FastAPI tutorials teach. Both are accepted. */
    tokenProfile: Type.Union([Type.Literal('rfc9068'), Type.Literal('fastapi')], { default: 'rfc9068' }),
    /** The HS256 key of the app being moved from: its tokens are accepted (scopes of role user) until `legacyTokensUntil`. */
    legacySecretKey: Type.Optional(Type.String({ minLength: 1 })),
    /** ISO 8601 instant after which legacy tokens are refused (required with legacySecretKey). */
    legacyTokensUntil: Type.Optional(Type.String({ minLength: 1 })),
    /** RFC 9068 `client_id` of issued tokens. */
    clientId: Type.String({ minLength: 1, default: 'gatehouse' }),
    accessTokenTtlSeconds: seconds(900, 60, DAY, 'access token lifetime'),
    refreshTokenTtlSeconds: seconds(14 * DAY, 60, 365 * DAY, 'refresh token lifetime (each rotation starts a new one)'),
    sessionMaxSeconds: seconds(90 * DAY, 60, 3650 * DAY, 'a session ends this long after login'),
    refreshGraceSeconds: seconds(10, 0, 300, 'a refresh token presented again within this window is a retry'),
    leewaySeconds: seconds(30, 0, 300, 'clock skew allowed on exp / nbf / iat'),
    sessionRetentionSeconds: seconds(7 * DAY, 0, 3650 * DAY, 'ended sessions are deleted this long after they end'),
    /** Record security events in `audit_events` (false: nothing is recorded). */
    audit: Type.Boolean({ default: true }),
    auditRetentionSeconds: seconds(90 * DAY, 3600, 3650 * DAY, 'audit events are deleted this long after they happened'),
    auditBuffer: AuditBuffer,
    /** The realm of RFC 6750 challenges. */
    realm: Type.String({ pattern: '^[\\x20-\\x7e]{1,64}$', default: 'gatehouse' }),
    /** Prefix of refresh tokens, so secret scanners can recognise them. */
    refreshTokenPrefix: Type.String({ pattern: '^[a-z]{1,8}_$', default: 'ghr_' }),
    /** Where the /auth routes are mounted. */
    prefix: Type.String({ pattern: '^(/[A-Za-z0-9._~-]+)*$', default: '/auth' }),
    /** The host's own scopes (name → description) and which roles may hold them. */
    scopes: Type.Record(Type.String(), Type.String(), { default: {} }),
    roles: Type.Object(Object.fromEntries(ROLES.map((r) => [r, Type.Optional(Type.Array(Type.String()))])), {
      additionalProperties: false,
      default: {},
    }),
    passwordPolicy: PasswordPolicy,
    limits: Limits,
    mail: Type.Optional(Mail),
    passwordResetTtlSeconds: seconds(1800, 60, DAY, 'a password-reset link works this long'),
    emailVerifyTtlSeconds: seconds(48 * 3600, 600, 30 * DAY, 'an address-verification link works this long'),
    /** A right password for an unverified address is refused (and a new link mailed). Needs `mail`. */
    requireEmailVerification: Type.Boolean({ default: false }),
    hashing: Hashing,
    /** Passkeys: the relying party (the origin is always `publicUrl`'s). */
    webauthn: WebAuthn,
    /** A Redis client: shared rate limits and cross-node events (the plugin duplicates it; it never closes yours). */
    redis: Type.Optional(Type.Unsafe<Redis | string>({ description: 'an ioredis client or a redis:// URL' })),
    /** Prefix of every Redis key and channel. */
    redisPrefix: Type.String({ default: 'gatehouse:' }),
    /** Apply the auth core's migrations at registration (under an advisory lock). */
    migrate: Type.Boolean({ default: true }),
    /** The one source of time (tests pass a movable clock). */
    clock: Type.Optional(Type.Unsafe<Clock>({})),
  },
  { additionalProperties: false },
);

export type GatehouseOptions = Partial<Omit<Static<typeof GatehouseOptionsSchema>, 'database' | 'secretKey' | 'passwordPolicy' | 'limits' | 'hashing' | 'auditBuffer' | 'mail' | 'webauthn'>> & {
  mail?: Partial<Static<typeof Mail>> & { transport: MailTransport };
  database: Database | string;
  secretKey: string;
  passwordPolicy?: Partial<Static<typeof PasswordPolicy>>;
  limits?: Partial<Static<typeof Limits>>;
  hashing?: Partial<Static<typeof Hashing>>;
  auditBuffer?: Partial<Static<typeof AuditBuffer>>;
  webauthn?: Partial<Static<typeof WebAuthn>>;
};

export type ResolvedOptions = Static<typeof GatehouseOptionsSchema> & { issuer: string };

/**
 * An ISO 8601 instant: a date (midnight UTC) or a date-time with its time
 * zone (without one, the window would move with the server's zone).
 */
export function isIsoInstant(s: string): boolean {
  return /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/i.test(s) && !Number.isNaN(Date.parse(s));
}

export class GatehouseOptionsError extends Error {
  constructor(problems: string[]) {
    super(`gatehouse: invalid options: ${problems.join('; ')}`);
    this.name = 'GatehouseOptionsError';
  }
}

export function resolveOptions(options: GatehouseOptions): ResolvedOptions {
  // Handles and clocks are objects the schema cannot copy: kept aside, put back.
  const { database, redis, clock, mail, ...plain } = options;
  const { transport, ...mailPlain } = mail ?? {};
  const filled = Value.Default(GatehouseOptionsSchema, {
    ...structuredClone(plain),
    database: 'x',
    ...(mail ? { mail: { ...structuredClone(mailPlain), transport: {} } } : {}),
  }) as ResolvedOptions;
  const problems = [...Value.Errors(GatehouseOptionsSchema, filled)].map((e) => `${e.instancePath || '/'} ${e.message}`);
  if (typeof database !== 'string' && (typeof database !== 'object' || database === null || typeof database.query !== 'function')) {
    problems.push('/database must be a Database or a postgres:// URL');
  } else if (typeof database === 'string' && !/^postgres(ql)?:\/\//.test(database)) {
    problems.push('/database must be a postgres:// URL');
  }
  if (filled.passwordPolicy.minLength > filled.passwordPolicy.maxLength) problems.push('/passwordPolicy minLength exceeds maxLength');
  if (filled.algorithm === 'HS256' && filled.privateKey) problems.push('/privateKey is set but the algorithm is HS256');
  if (!filled.legacySecretKey !== !filled.legacyTokensUntil) problems.push('/legacySecretKey and /legacyTokensUntil go together');
  if (filled.legacyTokensUntil && !isIsoInstant(filled.legacyTokensUntil)) problems.push('/legacyTokensUntil must be an ISO 8601 date, or date-time with a time zone');
  if (mail && (typeof transport !== 'object' || transport === null || typeof transport.send !== 'function')) {
    problems.push('/mail/transport must be a MailTransport (an object with send())');
  }
  if (filled.requireEmailVerification && !mail) problems.push('/requireEmailVerification needs mail (nobody could verify an address)');
  const rpIdProblem = rpIdMismatch(filled.webauthn.rpId, filled.publicUrl);
  if (rpIdProblem) problems.push(rpIdProblem);
  if (problems.length) throw new GatehouseOptionsError(problems);
  filled.publicUrl = filled.publicUrl.replace(/\/+$/, '');
  if (filled.mail) filled.mail.transport = transport!;
  return { ...filled, issuer: filled.issuer ?? filled.publicUrl, database, redis, clock };
}

/** WebAuthn §5.1.4.1: an RP ID is the origin's host or a registrable suffix of it; any other the browser refuses. */
export function rpIdFits(rpId: string, host: string): boolean {
  return host === rpId || (rpId.includes('.') && host.endsWith(`.${rpId}`));
}

function rpIdMismatch(rpId: string | undefined, publicUrl: string): string | undefined {
  if (rpId === undefined || !URL.canParse(publicUrl)) return undefined;
  const host = new URL(publicUrl).hostname;
  return rpIdFits(rpId, host) ? undefined : `/webauthn/rpId "${rpId}" is neither the host of publicUrl (${host}) nor a parent domain of it`;
}
