// Environment → typed, validated configuration. Every variable is declared
// once in ENV (name, type, default, bounds, description: a TypeBox schema);
// the rules that join several variables (keys, production refusals) follow in
// loadConfig. Parsed once at start; a bad value throws a ConfigError naming
// the variable, which server.ts prints as one line before exiting.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import Type, { type Static, type TSchema } from 'typebox';
import Value from 'typebox/value';
import { ALGORITHMS, privateKeyProblem, type JwtAlgorithm } from './auth/algorithms.js';
import { isIsoInstant, rpIdFits } from './auth/options.js';
import { TOKEN_PROFILES, type TokenProfile } from './auth/token-profiles.js';

export interface Config {
  nodeEnv: 'production' | 'development' | 'test';
  /** UTF-8 secret: HS256 key and the root of every derived HMAC key. */
  secretKey: string;
  /** True when secretKey was generated for development and kept under DATA_DIR. */
  secretKeyGenerated: boolean;
  algorithm: JwtAlgorithm;
  /** PEM private key for EdDSA / ES256 / RS256 (JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE). */
  jwtPrivateKey: string | undefined;
  /** Earlier SECRET_KEYs (verify only). */
  previousSecretKeys: string[];
  keyPublishDelaySeconds: number;
  accessTokenExpireMinutes: number;
  refreshTokenExpireDays: number;
  sessionMaxDays: number;
  refreshReuseGraceSeconds: number;
  jwtIssuer: string;
  jwtAudience: string;
  jwtLeewaySeconds: number;
  /** Shape of issued access tokens: rfc9068, or fastapi for the tutorials' resource servers. */
  tokenProfile: TokenProfile;
  /** HS256 key of the FastAPI app being moved from (its tokens accepted until legacyTokensUntil). */
  legacySecretKey: string | undefined;
  /** ISO 8601 instant ending the legacy token window. */
  legacyTokensUntil: string | undefined;
  databaseUrl: string | undefined;
  dataDir: string;
  redisUrl: string | undefined;
  /** Prefix of every Redis key and channel (several deployments can share one Redis). */
  redisPrefix: string;
  host: string;
  port: number;
  /** PUBLIC_URL without a trailing slash (default http://HOST:PORT). */
  publicUrl: string;
  corsOrigins: string[];
  /** false, a hop count, or the proxies' addresses/CIDRs (never `true`: that believes any client). */
  trustProxy: false | number | string[];
  /** Problems worth a warning at start that are not worth refusing to start. */
  warnings: string[];
  logLevel: string;
  workers: number;
  bodyLimitBytes: number;
  passwordMinLength: number;
  passwordMaxLength: number;
  passwordMinScore: number;
  hashConcurrency: number;
  hashQueueMax: number;
  /** Password/refresh attempts per IP per minute on the token endpoint. */
  rateLimitTokenPerMinute: number;
  /** Registrations per IP per hour. */
  rateLimitRegisterPerHour: number;
  /** Password-reset requests per IP per hour. */
  rateLimitPasswordResetPerHour: number;
  /** Consecutive failed logins on one account before it is locked for a while. */
  rateLimitFailedLoginsPerAccount: number;
  /** Days a revoked or expired session is kept before housekeeping deletes it. */
  sessionRetentionDays: number;
  /** Days audit events are kept before housekeeping deletes them. */
  auditRetentionDays: number;
  hsts: boolean;
  /** SMTP server for mail (unset: development writes .eml files under DATA_DIR/outbox; production has no mail). */
  smtpUrl: string | undefined;
  mailFrom: string;
  passwordResetExpireMinutes: number;
  emailVerifyExpireHours: number;
  requireEmailVerification: boolean;
  /** Tests: how long a node owns a mail it is delivering. */
  mailLeaseSeconds: number;
  /** Benchmarks only: serve GET /_bench/floor, the bare-route baseline. */
  benchRoutes: boolean;
  /** Passkeys: the relying party id (default: PUBLIC_URL's host) and the name authenticators show. */
  webauthnRpId: string | undefined;
  webauthnRpName: string;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

type RawEnv = Record<string, string | undefined>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const oneOf = <const T extends string[]>(values: readonly [...T], options: { default?: T[number]; description: string }) => Type.Enum(values, options);
const int = (fallback: number, minimum: number, maximum: number, description: string) =>
  Type.Integer({ default: fallback, minimum, maximum, description });
const url = (protocols: string[], description: string) =>
  Type.Optional(
    Type.Refine(
      Type.String({ description }),
      (v) => URL.canParse(v) && protocols.includes(new URL(v).protocol),
      // Never echo the value: a database URL carries a password.
      (v) => (URL.canParse(v) ? `must use ${protocols.join(' or ')} (got ${new URL(v).protocol})` : 'is not a valid URL'),
    ),
  );
const origin = Type.Refine(
  Type.String(),
  (v) => v === '*' || (URL.canParse(v) && new URL(v).origin === v),
  (v) => `"${v}" is not an origin like https://app.example.com`,
);
const proxy = Type.Refine(Type.String(), (v) => /^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(v) || ['loopback', 'linklocal', 'uniquelocal'].includes(v));

/** Every environment variable the service reads. The README's configuration table documents the same list. */
export const ENV = Type.Object({
  NODE_ENV: oneOf(['production', 'development', 'test'], { default: 'development', description: '`production` refuses weak or missing secrets' }),
  SECRET_KEY: Type.Optional(Type.String({ description: 'HS256 key (its UTF-8 bytes) and root of derived keys; required in production, at least 32 bytes' })),
  ALGORITHM: oneOf(ALGORITHMS, { default: 'HS256', description: 'JWT signing algorithm' }),
  PREVIOUS_SECRET_KEYS: Type.Array(Type.String({ minLength: 16 }), {
    default: [],
    expected: 'a comma-separated list of earlier SECRET_KEYs (each at least 16 bytes)',
    description: 'comma-separated earlier SECRET_KEYs: their HS256 tokens still verify (only SECRET_KEY signs), refresh retries and stored keys made under them still work',
  }),
  JWT_PRIVATE_KEY: Type.Optional(Type.String({ description: 'private key for EdDSA / ES256 / RS256 (PEM, or a JWK as JSON); unset: the service keeps and rotates its own keys in the database' })),
  JWT_PRIVATE_KEY_FILE: Type.Optional(Type.String({ description: 'file holding JWT_PRIVATE_KEY' })),
  ACCESS_TOKEN_EXPIRE_MINUTES: int(15, 1, 24 * 60, 'access token lifetime'),
  REFRESH_TOKEN_EXPIRE_DAYS: int(14, 1, 365, 'refresh token lifetime (each rotation starts a new one)'),
  SESSION_MAX_DAYS: int(90, 1, 3650, 'a session ends this long after login, whatever the refreshes'),
  REFRESH_REUSE_GRACE_SECONDS: int(10, 0, 300, 'a refresh token presented again within this window is a retry, not reuse'),
  KEY_PUBLISH_DELAY_SECONDS: int(600, 0, 24 * 3600, 'rotate-keys: a new key is published this long before it signs (JWKS cache max-age is at most this)'),
  JWT_ISSUER: Type.Optional(Type.String({ minLength: 1, description: '`iss` of issued tokens, checked on every request; default: PUBLIC_URL (what RFC 8414 discovery expects)' })),
  JWT_AUDIENCE: Type.String({ default: 'gatehouse', description: '`aud` of issued tokens, checked on every request' }),
  JWT_LEEWAY_SECONDS: int(30, 0, 300, 'clock skew allowed on exp / nbf / iat'),
  TOKEN_PROFILE: oneOf(TOKEN_PROFILES, { default: 'rfc9068', description: '`fastapi`: access tokens a FastAPI tutorial resource server accepts unchanged (sub = username, uid, scopes, no aud)' }),
  LEGACY_SECRET_KEY: Type.Optional(Type.String({ description: "the FastAPI app's SECRET_KEY: its HS256 tokens are accepted until LEGACY_TOKENS_UNTIL" })),
  LEGACY_TOKENS_UNTIL: Type.Optional(
    Type.Refine(
      Type.String({ description: 'ISO 8601 instant after which legacy tokens are refused' }),
      (v) => isIsoInstant(v),
      (v) => `must be an ISO 8601 date or date-time with a time zone, like 2026-03-01T00:00:00Z (got "${v}")`,
    ),
  ),
  DATABASE_URL: url(['postgres:', 'postgresql:'], 'PostgreSQL server; unset: embedded PGlite under DATA_DIR'),
  DATA_DIR: Type.String({ default: './data', description: 'embedded database and development keys' }),
  REDIS_URL: url(['redis:', 'rediss:'], 'shared rate limits and cross-node events; unset: in-process'),
  REDIS_PREFIX: Type.String({ default: 'gatehouse:', description: 'prefix of every Redis key and channel' }),
  HOST: Type.String({ default: '127.0.0.1', description: 'address to listen on' }),
  PORT: int(8000, 0, 65535, 'port to listen on'),
  PUBLIC_URL: Type.Optional(
    Type.Refine(
      Type.String({ description: 'the address people and clients use (default http://HOST:PORT); every absolute URL the service writes is built from it' }),
      (v) => URL.canParse(v) && ['http:', 'https:'].includes(new URL(v).protocol) && !new URL(v).search && !new URL(v).hash && !new URL(v).username,
      () => 'must be an http(s) URL without credentials, query or fragment, like https://auth.example.com',
    ),
  ),
  WORKERS: Type.Union([Type.Literal('auto'), Type.Integer({ minimum: 1, maximum: 256 })], {
    default: 1,
    expected: 'an integer between 1 and 256, or auto',
    description: 'worker processes on one port (`auto` = one per core); needs DATABASE_URL when > 1',
  }),
  CORS_ORIGINS: Type.Array(origin, { default: [], description: 'comma-separated allowed origins, or `*`' }),
  TRUST_PROXY: Type.Union([Type.Integer({ minimum: 1 }), Type.Boolean(), Type.Array(proxy)], {
    default: false,
    expected: 'true, false, a hop count, or a comma-separated list of addresses/CIDRs',
    description: 'trust X-Forwarded-For from these proxies',
  }),
  HSTS: Type.Optional(Type.Boolean({ description: 'send Strict-Transport-Security; default: true in production' })),
  LOG_LEVEL: Type.Optional(oneOf(LOG_LEVELS, { description: 'log level; default: info (silent under NODE_ENV=test)' })),
  PASSWORD_MIN_LENGTH: int(8, 1, 128, 'shortest password accepted'),
  PASSWORD_MAX_LENGTH: int(128, 8, 1024, 'longest password accepted (longer ones are refused before hashing)'),
  PASSWORD_MIN_SCORE: int(3, 0, 4, "lowest zxcvbn score accepted (0–4)"),
  RATE_LIMIT_TOKEN_PER_MINUTE: int(30, 0, 1_000_000, 'token endpoint requests per client IP per minute, and refreshes per session per minute (0 = off)'),
  RATE_LIMIT_REGISTER_PER_HOUR: int(20, 0, 1_000_000, 'registrations per client IP per hour'),
  RATE_LIMIT_PASSWORD_RESET_PER_HOUR: int(10, 0, 1_000_000, 'password-reset requests per client IP per hour (0 = off)'),
  RATE_LIMIT_FAILED_LOGINS_PER_ACCOUNT: int(10, 0, 1_000_000, 'failed logins per account and IP per 15 min before 429'),
  HASH_CONCURRENCY: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, description: 'password hashes at once; default: cores ÷ workers' })),
  HASH_QUEUE_MAX: int(256, 0, 100_000, 'password hashes that may wait (beyond: 503 + Retry-After)'),
  BODY_LIMIT_BYTES: int(1024 * 1024, 1024, 64 * 1024 * 1024, 'larger bodies get 413'),
  SESSION_RETENTION_DAYS: int(7, 0, 3650, 'ended sessions are deleted this long after they end'),
  AUDIT_RETENTION_DAYS: int(90, 1, 3650, 'audit events are deleted this long after they happen'),
  SMTP_URL: url(['smtp:', 'smtps:'], 'SMTP server for mail: smtp://[user:pass@]host:port (STARTTLS when offered) or smtps://'),
  MAIL_FROM: Type.String({ default: 'Gatehouse <no-reply@localhost>', pattern: '@', expected: 'an address, like Gatehouse <no-reply@example.com>', description: 'From: of every mail' }),
  PASSWORD_RESET_EXPIRE_MINUTES: int(30, 5, 24 * 60, 'a password-reset link works this long'),
  EMAIL_VERIFY_EXPIRE_HOURS: int(48, 1, 720, 'an address-verification link works this long'),
  REQUIRE_EMAIL_VERIFICATION: Type.Boolean({ default: false, description: 'refuse sign-in (after the right password) until the address is verified' }),
  MAIL_LEASE_SECONDS: Type.Integer({ default: 60, minimum: 1, maximum: 3600, internal: true, description: 'tests: how long a node owns a mail it is delivering' }),
  WEBAUTHN_RP_ID: Type.Optional(
    Type.String({ pattern: '^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$', description: "passkeys' relying party id: PUBLIC_URL's host (default) or a parent domain of it" }),
  ),
  WEBAUTHN_RP_NAME: Type.String({ default: 'Gatehouse', minLength: 1, maxLength: 64, description: 'the name authenticators show beside a passkey' }),
  BENCH_ROUTES: Type.Boolean({ default: false, internal: true, description: 'benchmarks only: serve GET /_bench/floor' }),
});
export type Env = Static<typeof ENV>;

const TRUE = ['1', 'true', 'yes', 'on'];
const FALSE = ['0', 'false', 'no', 'off'];

/** The typed value a variable's text stands for, by the kind of its schema (checked afterwards). */
function fromText(schema: TSchema, text: string): unknown {
  const t = text.trim();
  if (Type.IsInteger(schema)) return /^-?\d+$/.test(t) ? Number(t) : text;
  if (Type.IsBoolean(schema)) return TRUE.includes(t.toLowerCase()) || (FALSE.includes(t.toLowerCase()) ? false : text);
  if (Type.IsArray(schema)) return text.split(',').map((s) => s.trim()).filter(Boolean);
  if (Type.IsUnion(schema)) {
    for (const member of schema.anyOf) {
      const value = fromText(member, text);
      if (Value.Check(member, value)) return value;
    }
  }
  return text;
}

/** One line saying what is wrong; it quotes the text only where that can never be a secret. */
function problem(schema: TSchema, text: string, value: unknown): string {
  const { minimum, maximum, expected } = schema as { minimum?: number; maximum?: number; expected?: string };
  if (Type.IsInteger(schema)) {
    return typeof value === 'number' ? `must be between ${minimum} and ${maximum}, got ${value}` : `must be an integer, got "${text}"`;
  }
  if (Type.IsBoolean(schema)) return `must be true or false, got "${text}"`;
  if (Type.IsEnum(schema)) return `must be one of ${schema.enum.join(', ')}, got "${text}"`;
  if (expected) return `must be ${expected}`;
  return [...Value.Errors(schema, value)][0]?.message ?? 'is invalid';
}

/** The environment read against ENV: defaults filled in, an empty variable counting as unset. */
export function parseEnv(env: RawEnv): Env {
  const out: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(ENV.properties) as Array<[string, TSchema & { default?: unknown }]>) {
    const text = env[name];
    if (text === undefined || text === '') {
      out[name] = structuredClone(schema.default);
      continue;
    }
    const value = fromText(schema, text);
    if (!Value.Check(schema, value)) throw new ConfigError(name, problem(schema, text, value));
    out[name] = value;
  }
  return out as Env;
}

/** Reads `.env` in the working directory, if present, without overriding the real environment. */
export function loadDotEnv(path = '.env'): void {
  if (existsSync(path)) process.loadEnvFile(path);
}

export function loadConfig(raw: RawEnv = process.env): Config {
  const env = parseEnv(raw);
  const nodeEnv = env.NODE_ENV;
  const production = nodeEnv === 'production';
  const algorithm = env.ALGORITHM;

  let jwtPrivateKey = env.JWT_PRIVATE_KEY;
  if (!jwtPrivateKey && env.JWT_PRIVATE_KEY_FILE) {
    try {
      jwtPrivateKey = readFileSync(env.JWT_PRIVATE_KEY_FILE, 'utf8');
    } catch {
      throw new ConfigError('JWT_PRIVATE_KEY_FILE', 'cannot be read');
    }
  }
  if (algorithm === 'HS256' && jwtPrivateKey) {
    throw new ConfigError('ALGORITHM', 'is HS256 but a private key is configured; set ALGORITHM to the key type');
  }
  if (jwtPrivateKey) {
    const problem = privateKeyProblem(algorithm, jwtPrivateKey);
    const variable = env.JWT_PRIVATE_KEY ? 'JWT_PRIVATE_KEY' : 'JWT_PRIVATE_KEY_FILE';
    if (problem) throw new ConfigError(variable, `${problem} (ALGORITHM=${algorithm})`);
  }

  const dataDir = resolve(env.DATA_DIR);
  let secretKey: string;
  let secretKeyGenerated = false;
  const warnings: string[] = [];
  if (env.SECRET_KEY !== undefined) {
    if (production && Buffer.byteLength(env.SECRET_KEY, 'utf8') < 32) {
      throw new ConfigError('SECRET_KEY', 'must be at least 32 bytes in production (run: npm run cli -- gen-secret)');
    }
    if (production && lowEntropy(env.SECRET_KEY)) {
      throw new ConfigError('SECRET_KEY', 'is too predictable for production (few distinct characters); run: npm run cli -- gen-secret');
    }
    if (Buffer.byteLength(env.SECRET_KEY, 'utf8') < 32) {
      warnings.push('SECRET_KEY is shorter than 32 bytes: anyone who guesses it can sign tokens (run: npm run cli -- gen-secret)');
    }
    secretKey = env.SECRET_KEY;
  } else if (production && (algorithm === 'HS256' || !jwtPrivateKey)) {
    throw new ConfigError('SECRET_KEY', 'is required in production (at least 32 bytes; run: npm run cli -- gen-secret)');
  } else if (production) {
    // Asymmetric signing with no SECRET_KEY: derived HMAC keys come from the private key.
    secretKey = `derived:${jwtPrivateKey}`;
  } else {
    secretKey = developmentSecret(dataDir);
    secretKeyGenerated = true;
  }

  if (!env.LEGACY_SECRET_KEY !== !env.LEGACY_TOKENS_UNTIL) {
    throw new ConfigError(env.LEGACY_SECRET_KEY ? 'LEGACY_TOKENS_UNTIL' : 'LEGACY_SECRET_KEY', 'is required with the other: legacy tokens need both a key and the end of their window');
  }

  if (env.REQUIRE_EMAIL_VERIFICATION && production && !env.SMTP_URL) {
    throw new ConfigError('REQUIRE_EMAIL_VERIFICATION', 'needs SMTP_URL in production (nobody could verify an address)');
  }

  const publicUrl = publicUrlOf(env.PUBLIC_URL, env.HOST, env.PORT);
  const host = new URL(publicUrl).hostname;
  if (env.WEBAUTHN_RP_ID && !rpIdFits(env.WEBAUTHN_RP_ID, host)) {
    throw new ConfigError('WEBAUTHN_RP_ID', `must be PUBLIC_URL's host (${host}) or a parent domain of it`);
  }

  const workers = env.WORKERS === 'auto' ? availableParallelism() : env.WORKERS;
  if (workers > 1 && !env.DATABASE_URL) {
    throw new ConfigError('WORKERS', 'must be 1 with the embedded database (set DATABASE_URL to run several workers)');
  }

  return {
    nodeEnv,
    secretKey,
    secretKeyGenerated,
    algorithm,
    jwtPrivateKey,
    previousSecretKeys: env.PREVIOUS_SECRET_KEYS,
    keyPublishDelaySeconds: env.KEY_PUBLISH_DELAY_SECONDS,
    accessTokenExpireMinutes: env.ACCESS_TOKEN_EXPIRE_MINUTES,
    refreshTokenExpireDays: env.REFRESH_TOKEN_EXPIRE_DAYS,
    sessionMaxDays: env.SESSION_MAX_DAYS,
    refreshReuseGraceSeconds: env.REFRESH_REUSE_GRACE_SECONDS,
    // RFC 8414 §3.3: the issuer is the URL its metadata is discovered from.
    jwtIssuer: env.JWT_ISSUER ?? publicUrlOf(env.PUBLIC_URL, env.HOST, env.PORT),
    jwtAudience: env.JWT_AUDIENCE,
    jwtLeewaySeconds: env.JWT_LEEWAY_SECONDS,
    tokenProfile: env.TOKEN_PROFILE,
    legacySecretKey: env.LEGACY_SECRET_KEY,
    legacyTokensUntil: env.LEGACY_TOKENS_UNTIL,
    databaseUrl: env.DATABASE_URL,
    dataDir,
    redisUrl: env.REDIS_URL,
    redisPrefix: env.REDIS_PREFIX,
    host: env.HOST,
    port: env.PORT,
    publicUrl,
    corsOrigins: env.CORS_ORIGINS,
    trustProxy: trustProxyOf(env.TRUST_PROXY),
    warnings,
    logLevel: env.LOG_LEVEL ?? (nodeEnv === 'test' ? 'silent' : 'info'),
    workers,
    bodyLimitBytes: env.BODY_LIMIT_BYTES,
    passwordMinLength: env.PASSWORD_MIN_LENGTH,
    passwordMaxLength: env.PASSWORD_MAX_LENGTH,
    passwordMinScore: env.PASSWORD_MIN_SCORE,
    // One hashing thread per core across all workers: more only queue on the same cores.
    hashConcurrency: env.HASH_CONCURRENCY ?? Math.max(1, Math.round(availableParallelism() / workers)),
    hashQueueMax: env.HASH_QUEUE_MAX,
    rateLimitTokenPerMinute: env.RATE_LIMIT_TOKEN_PER_MINUTE,
    rateLimitRegisterPerHour: env.RATE_LIMIT_REGISTER_PER_HOUR,
    rateLimitFailedLoginsPerAccount: env.RATE_LIMIT_FAILED_LOGINS_PER_ACCOUNT,
    rateLimitPasswordResetPerHour: env.RATE_LIMIT_PASSWORD_RESET_PER_HOUR,
    sessionRetentionDays: env.SESSION_RETENTION_DAYS,
    auditRetentionDays: env.AUDIT_RETENTION_DAYS,
    hsts: env.HSTS ?? production,
    benchRoutes: env.BENCH_ROUTES,
    smtpUrl: env.SMTP_URL,
    mailFrom: env.MAIL_FROM,
    passwordResetExpireMinutes: env.PASSWORD_RESET_EXPIRE_MINUTES,
    emailVerifyExpireHours: env.EMAIL_VERIFY_EXPIRE_HOURS,
    requireEmailVerification: env.REQUIRE_EMAIL_VERIFICATION,
    mailLeaseSeconds: env.MAIL_LEASE_SECONDS,
    webauthnRpId: env.WEBAUTHN_RP_ID,
    webauthnRpName: env.WEBAUTHN_RP_NAME,
  };
}

/** A random 256-bit key, created once and kept (0600) under DATA_DIR so tokens survive restarts. */
function developmentSecret(dataDir: string): string {
  const file = join(dataDir, 'secret_key');
  try {
    if (existsSync(file)) {
      const key = readFileSync(file, 'utf8').trim();
      if (key.length >= 43) return key;
    }
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const key = randomBytes(32).toString('base64url');
    writeFileSync(file, key + '\n', { mode: 0o600 });
    chmodSync(file, 0o600);
    return key;
  } catch (err) {
    // An unwritable or bogus DATA_DIR is a configuration error like any other: one line, no stack.
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError('DATA_DIR', `cannot keep the development key in ${dataDir} (${code}); make it writable or set SECRET_KEY`);
  }
}

/** The password policy the configuration asks for (the plugin's `passwordPolicy` option). */
export function policyOf(config: Pick<Config, 'passwordMinLength' | 'passwordMaxLength' | 'passwordMinScore'>) {
  return { minLength: config.passwordMinLength, maxLength: config.passwordMaxLength, minScore: config.passwordMinScore };
}

/**
 * A secret that is obviously guessable: few distinct characters, or little
 * information by its own letter frequencies (32 × "a", "secretsecret…").
 * Keys from gen-secret, openssl rand or a password manager pass easily.
 */
export function lowEntropy(secret: string): boolean {
  const counts = new Map<string, number>();
  for (const ch of secret) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  const n = [...secret].length;
  let bits = 0;
  for (const c of counts.values()) bits -= c * Math.log2(c / n);
  return counts.size < 10 || bits < 64;
}

/** PUBLIC_URL without a trailing slash; by default where the service listens. Never taken from a request's Host. */
export function publicUrlOf(value: string | undefined, host: string, port: number): string {
  if (value) return value.replace(/\/+$/, '');
  const h = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return `http://${h}:${port}`;
}

function trustProxyOf(value: boolean | number | string[]): false | number | string[] {
  if (value === true) {
    throw new ConfigError('TRUST_PROXY', "true would believe any client's X-Forwarded-For; give the number of proxy hops or their addresses/CIDRs");
  }
  return value;
}
