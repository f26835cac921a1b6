// Environment → typed, validated configuration. Parsed once at start; a bad
// value throws a ConfigError naming the variable, which server.ts prints as
// one line before exiting.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { privateKeyProblem } from './auth/keys.js';

export const ALGORITHMS = ['HS256', 'EdDSA', 'ES256', 'RS256'] as const;
export type JwtAlgorithm = (typeof ALGORITHMS)[number];

export interface Config {
  nodeEnv: 'production' | 'development' | 'test';
  /** UTF-8 secret: HS256 key and the root of every derived HMAC key. */
  secretKey: string;
  /** True when secretKey was generated for development and kept under DATA_DIR. */
  secretKeyGenerated: boolean;
  algorithm: JwtAlgorithm;
  /** PEM private key for EdDSA / ES256 / RS256 (JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE). */
  jwtPrivateKey: string | undefined;
  accessTokenExpireMinutes: number;
  refreshTokenExpireDays: number;
  sessionMaxDays: number;
  refreshReuseGraceSeconds: number;
  jwtIssuer: string;
  jwtAudience: string;
  jwtLeewaySeconds: number;
  databaseUrl: string | undefined;
  dataDir: string;
  redisUrl: string | undefined;
  /** Prefix of every Redis key and channel (several deployments can share one Redis). */
  redisPrefix: string;
  host: string;
  port: number;
  corsOrigins: string[];
  trustProxy: boolean | number | string[];
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
  /** Consecutive failed logins on one account before it is locked for a while. */
  rateLimitFailedLoginsPerAccount: number;
  /** Days a revoked or expired session is kept before housekeeping deletes it. */
  sessionRetentionDays: number;
  /** Days audit events are kept before housekeeping deletes them. */
  auditRetentionDays: number;
  hsts: boolean;
  /** Benchmarks only: serve GET /_bench/floor, the bare-route baseline. */
  benchRoutes: boolean;
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

type Env = Record<string, string | undefined>;

function str(env: Env, name: string, fallback: string): string {
  const v = env[name];
  return v === undefined || v === '' ? fallback : v;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, `must be an integer, got "${raw}"`);
  const n = Number(raw.trim());
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

function url(env: Env, name: string, protocols: string[]): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, 'is not a valid URL');
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(' or ')} (got ${parsed.protocol})`);
  }
  return raw;
}

function parseTrustProxy(raw: string | undefined): boolean | number | string[] {
  if (raw === undefined || raw === '') return false;
  const v = raw.trim().toLowerCase();
  if (['true', 'yes', 'on'].includes(v)) return true;
  if (['false', 'no', 'off', '0'].includes(v)) return false;
  if (/^\d+$/.test(v)) return Number(v); // number of hops
  const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (!list.every((s) => /^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(s) || ['loopback', 'linklocal', 'uniquelocal'].includes(s))) {
    throw new ConfigError('TRUST_PROXY', 'must be true, false, a hop count, or a comma-separated list of addresses/CIDRs');
  }
  return list;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Reads `.env` in the working directory, if present, without overriding the real environment. */
export function loadDotEnv(path = '.env'): void {
  if (existsSync(path)) process.loadEnvFile(path);
}

export function loadConfig(env: Env = process.env): Config {
  const nodeEnvRaw = str(env, 'NODE_ENV', 'development');
  if (!['production', 'development', 'test'].includes(nodeEnvRaw)) {
    throw new ConfigError('NODE_ENV', `must be production, development or test, got "${nodeEnvRaw}"`);
  }
  const nodeEnv = nodeEnvRaw as Config['nodeEnv'];
  const production = nodeEnv === 'production';

  const algorithm = str(env, 'ALGORITHM', 'HS256');
  if (!(ALGORITHMS as readonly string[]).includes(algorithm)) {
    throw new ConfigError('ALGORITHM', `must be one of ${ALGORITHMS.join(', ')}, got "${algorithm}"`);
  }

  let jwtPrivateKey = env.JWT_PRIVATE_KEY || undefined;
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
    const problem = privateKeyProblem(algorithm as JwtAlgorithm, jwtPrivateKey);
    const variable = env.JWT_PRIVATE_KEY ? 'JWT_PRIVATE_KEY' : 'JWT_PRIVATE_KEY_FILE';
    if (problem) throw new ConfigError(variable, `${problem} (ALGORITHM=${algorithm})`);
  }

  const dataDir = resolve(str(env, 'DATA_DIR', './data'));
  const rawSecret = env.SECRET_KEY;
  let secretKey: string;
  let secretKeyGenerated = false;
  if (rawSecret !== undefined && rawSecret !== '') {
    if (production && Buffer.byteLength(rawSecret, 'utf8') < 32) {
      throw new ConfigError('SECRET_KEY', 'must be at least 32 bytes in production (run: npm run cli -- gen-secret)');
    }
    secretKey = rawSecret;
  } else if (production && (algorithm === 'HS256' || !jwtPrivateKey)) {
    throw new ConfigError('SECRET_KEY', 'is required in production (at least 32 bytes; run: npm run cli -- gen-secret)');
  } else if (production) {
    // Asymmetric signing with no SECRET_KEY: derived HMAC keys come from the private key.
    secretKey = `derived:${jwtPrivateKey}`;
  } else {
    secretKey = developmentSecret(dataDir);
    secretKeyGenerated = true;
  }
  if (algorithm !== 'HS256' && !jwtPrivateKey && production) {
    throw new ConfigError('JWT_PRIVATE_KEY', `is required in production with ALGORITHM=${algorithm}`);
  }

  const corsOrigins = str(env, 'CORS_ORIGINS', '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const origin of corsOrigins) {
    if (origin === '*') continue;
    try {
      const u = new URL(origin);
      if (u.origin !== origin) throw new Error();
    } catch {
      throw new ConfigError('CORS_ORIGINS', `"${origin}" is not an origin like https://app.example.com`);
    }
  }

  const logLevel = str(env, 'LOG_LEVEL', nodeEnv === 'test' ? 'silent' : 'info');
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}`);

  const workersRaw = str(env, 'WORKERS', '1');
  const workers = workersRaw === 'auto' ? availableParallelism() : int(env, 'WORKERS', 1, 1, 256);
  const databaseUrl = url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']);
  if (workers > 1 && !databaseUrl) {
    throw new ConfigError('WORKERS', 'must be 1 with the embedded database (set DATABASE_URL to run several workers)');
  }

  const host = str(env, 'HOST', '127.0.0.1');
  const port = int(env, 'PORT', 8000, 0, 65535);

  return {
    nodeEnv,
    secretKey,
    secretKeyGenerated,
    algorithm: algorithm as JwtAlgorithm,
    jwtPrivateKey,
    accessTokenExpireMinutes: int(env, 'ACCESS_TOKEN_EXPIRE_MINUTES', 15, 1, 24 * 60),
    refreshTokenExpireDays: int(env, 'REFRESH_TOKEN_EXPIRE_DAYS', 14, 1, 365),
    sessionMaxDays: int(env, 'SESSION_MAX_DAYS', 90, 1, 3650),
    refreshReuseGraceSeconds: int(env, 'REFRESH_REUSE_GRACE_SECONDS', 10, 0, 300),
    jwtIssuer: str(env, 'JWT_ISSUER', 'gatehouse'),
    jwtAudience: str(env, 'JWT_AUDIENCE', 'gatehouse'),
    jwtLeewaySeconds: int(env, 'JWT_LEEWAY_SECONDS', 30, 0, 300),
    databaseUrl,
    dataDir,
    redisUrl: url(env, 'REDIS_URL', ['redis:', 'rediss:']),
    redisPrefix: str(env, 'REDIS_PREFIX', 'gatehouse:'),
    host,
    port,
    corsOrigins,
    trustProxy: parseTrustProxy(env.TRUST_PROXY),
    logLevel,
    workers,
    bodyLimitBytes: int(env, 'BODY_LIMIT_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    passwordMinLength: int(env, 'PASSWORD_MIN_LENGTH', 8, 1, 128),
    passwordMaxLength: int(env, 'PASSWORD_MAX_LENGTH', 128, 8, 1024),
    passwordMinScore: int(env, 'PASSWORD_MIN_SCORE', 3, 0, 4),
    // One hashing thread per core across all workers: more only queue on the same cores.
    hashConcurrency: int(env, 'HASH_CONCURRENCY', Math.max(1, Math.round(availableParallelism() / workers)), 1, 64),
    hashQueueMax: int(env, 'HASH_QUEUE_MAX', 256, 0, 100_000),
    rateLimitTokenPerMinute: int(env, 'RATE_LIMIT_TOKEN_PER_MINUTE', 30, 0, 1_000_000),
    rateLimitRegisterPerHour: int(env, 'RATE_LIMIT_REGISTER_PER_HOUR', 20, 0, 1_000_000),
    rateLimitFailedLoginsPerAccount: int(env, 'RATE_LIMIT_FAILED_LOGINS_PER_ACCOUNT', 10, 0, 1_000_000),
    sessionRetentionDays: int(env, 'SESSION_RETENTION_DAYS', 7, 0, 3650),
    auditRetentionDays: int(env, 'AUDIT_RETENTION_DAYS', 90, 1, 3650),
    hsts: bool(env, 'HSTS', production),
    benchRoutes: bool(env, 'BENCH_ROUTES', false),
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
