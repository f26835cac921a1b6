// Rate limits on the auth endpoints (rate-limiter-flexible): per IP on the
// token and register endpoints (IPv6 clients by their /64), and brute-force
// protection per account that cannot be turned into a lockout:
// - per account and IP: an address that failed too often is refused for a
//   while (it hurts only that address);
// - per account across all addresses: past the threshold, each further
//   failure slows the account down (a wait that doubles, capped at 15 min),
//   never a long refusal; and a client that has signed in to the account
//   before (same address, 10 to 20 days since its last sign-in: a mark
//   lasts 20 and is renewed past half) is never slowed by it, so an
//   attacker failing from many addresses cannot keep the owner out.
//
// Where the counters live decides whether a limit holds for the whole
// service or per process:
// - Redis (REDIS_URL): shared by every node and worker;
// - the PostgreSQL server (DATABASE_URL without REDIS_URL): shared the same
//   way, in the table rate_limit_counters (migrations/auth/004_rate_limits.sql,
//   created at start like every table; the store is told not to create it);
// - memory: only for the embedded database, which is one process anyway.
// With either store, an in-process limiter stands in while it errors.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  RateLimiterMemory,
  RateLimiterPostgres,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterAbstract,
} from 'rate-limiter-flexible';
import type { Database } from '../db/client.js';
import { rateLimited } from './errors.js';

export interface RateLimitOptions {
  tokenPerMinute: number;
  registerPerHour: number;
  failedLoginsPerAccount: number;
  /** Password-reset requests per IP per hour (0: off); absent: 10. */
  passwordResetPerHour?: number;
}

/** Where counters may be kept: Redis wins, then a PostgreSQL server; otherwise memory. */
export interface RateLimitStores {
  redis?: Redis;
  redisPrefix?: string;
  db?: Database;
}

/** The table of migrations/auth/004_rate_limits.sql, in the shape RateLimiterPostgres reads and writes. */
export const RATE_LIMIT_TABLE = 'rate_limit_counters';
const HOUSEKEEPING_MS = 5 * 60_000;
/** Password and email changes per user per hour: a person needs a few, never dozens. */
const SENSITIVE_PER_HOUR = 10;
const FAILURE_WINDOW_S = 15 * 60;
/** The longest an account is slowed down for: never a day's refusal of the right password. */
const MAX_SLOWDOWN_S = 15 * 60;
/**
 * How long a successful sign-in makes its address a known client of the
 * account (under 24.8 days: the memory store's expiry is a Node timer).
 */
const KNOWN_CLIENT_S = 20 * 24 * 3600;

/** The part of a client address a per-IP limit counts: IPv4 whole, IPv6 by its /64 (one host has 2^64). */
export function ipKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!ip.includes(':')) return ip;
  const [head = '', tail] = ip.split('%')[0]!.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/**
 * The lockout counters' key for a login attempt: the account's id when the
 * typed name or email matched one (so every spelling of it shares one
 * counter), otherwise a SHA-256 of the normalised name, so the key has a
 * fixed size whatever was typed. Only these functions make one.
 */
export type LockoutKey = string & { readonly __lockoutKey: true };

export function lockoutKey(typed: string, userId?: string): LockoutKey {
  if (userId) return `u:${userId}` as LockoutKey;
  const normalised = typed.normalize('NFKC').toLowerCase();
  return `n:${createHash('sha256').update(normalised).digest('hex')}` as LockoutKey;
}

/**
 * The counters of an account's second-factor codes: the same rules as
 * passwords (per account and address a block, across addresses a slowdown
 * that spares known clients), counted apart from the password's.
 */
export function secondFactorKey(userId: string): LockoutKey {
  return `m:${userId}` as LockoutKey;
}

export type RateLimitStoreKind = 'redis' | 'postgres' | 'memory';

/** What checkLogin saw of an account|address pair, for loginSucceeded. */
export interface LoginAttempt {
  readonly pair: string;
  /** The pair had failures counted. */
  readonly failures: boolean;
  /** How much longer the pair stays a known client (0: it is not one). */
  readonly knownForMs: number;
}

export class AuthRateLimits {
  readonly store: RateLimitStoreKind;
  private readonly token?: RateLimiterAbstract;
  private readonly register?: RateLimiterAbstract;
  private readonly reset?: RateLimiterAbstract;
  private readonly passkeyOptionsPerIp?: RateLimiterAbstract;
  /** Refreshes of one live session (they spend no per-address budget). */
  private readonly refreshPerSession?: RateLimiterAbstract;
  private readonly failuresUserIp?: RateLimiterAbstract;
  private readonly failuresUser?: RateLimiterAbstract;
  /** Accounts slowed down: the key is blocked for the current wait. */
  private readonly slowdown?: RateLimiterAbstract;
  /** account|address pairs that signed in successfully. */
  private readonly known?: RateLimiterAbstract;
  /** Expensive signed-in actions (password and email changes) per user, whatever their outcome. */
  private readonly sensitive?: RateLimiterAbstract;
  private readonly threshold: number;
  private readonly db?: Database;
  private housekeeping?: NodeJS.Timeout;

  constructor(opts: RateLimitOptions, stores: RateLimitStores = {}) {
    const { redis, redisPrefix = 'gatehouse:' } = stores;
    this.db = !redis && stores.db?.kind === 'postgres' ? stores.db : undefined;
    this.store = redis ? 'redis' : this.db ? 'postgres' : 'memory';
    // The PostgreSQL store calls query({ text, values }) and reads rows and
    // rowCount: Database.query already answers that, prepared statements included.
    const pgClient = this.db && {
      query: ({ text, values }: { text: string; values?: unknown[] }) => this.db!.query(text, values),
    };
    const make = (keyPrefix: string, points: number, duration: number, more: { blockDuration?: number; inMemoryBlockOnConsumed?: number } = {}) => {
      if (points <= 0) return undefined; // 0 turns a limit off
      const common = { keyPrefix, points, duration, blockDuration: more.blockDuration ?? 0 };
      const insuranceLimiter = new RateLimiterMemory(common);
      const store = { ...common, inMemoryBlockOnConsumed: more.inMemoryBlockOnConsumed, insuranceLimiter };
      if (redis) {
        return new RateLimiterRedis({ ...store, storeClient: redis, keyPrefix: `${redisPrefix}rl:${keyPrefix}` });
      }
      if (pgClient) {
        return new RateLimiterPostgres({
          ...store,
          storeClient: pgClient,
          storeType: 'pool',
          tableName: RATE_LIMIT_TABLE,
          tableCreated: true,
          // One sweep for the shared table (start()), not a timer per limiter that outlives close.
          clearExpiredByTimeout: false,
        });
      }
      return insuranceLimiter;
    };
    // A flood past a per-IP limit is refused from memory on each node until
    // the window ends, instead of writing to the store on every request.
    const perIp = (keyPrefix: string, points: number, duration: number) =>
      make(keyPrefix, points, duration, { inMemoryBlockOnConsumed: points + 1 });
    this.token = perIp('token', opts.tokenPerMinute, 60);
    this.register = perIp('register', opts.registerPerHour, 3600);
    this.reset = perIp('reset', opts.passwordResetPerHour ?? 10, 3600);
    // Each unauthenticated request stores a challenge: as limited per address as the token endpoint.
    this.passkeyOptionsPerIp = perIp('pk-options', opts.tokenPerMinute, 60);
    this.refreshPerSession = make('refresh-s', opts.tokenPerMinute, 60);
    this.failuresUserIp = make('fail-ui', opts.failedLoginsPerAccount, FAILURE_WINDOW_S, { blockDuration: FAILURE_WINDOW_S });
    // Counts only: what it leads to is a slowdown, never a block of its own.
    this.failuresUser = make('fail-u', Number.MAX_SAFE_INTEGER, 24 * 3600);
    this.threshold = opts.failedLoginsPerAccount;
    this.sensitive = make('sensitive', SENSITIVE_PER_HOUR, 3600);
    if (opts.failedLoginsPerAccount > 0) {
      this.slowdown = make('slow-u', 1, MAX_SLOWDOWN_S);
      this.known = make('known', 1, KNOWN_CLIENT_S);
    }
  }

  /** Starts deleting expired counters from the PostgreSQL table (they are ignored, not removed, when they expire). */
  start(): void {
    const db = this.db;
    if (!db || this.housekeeping) return;
    this.housekeeping = setInterval(() => {
      db.query(`DELETE FROM ${RATE_LIMIT_TABLE} WHERE expire < $1`, [Date.now()]).catch(() => {});
    }, HOUSEKEEPING_MS);
    this.housekeeping.unref();
  }

  stop(): void {
    clearInterval(this.housekeeping);
    this.housekeeping = undefined;
  }

  async tokenRequest(ip: string): Promise<void> {
    await consume(this.token, ipKey(ip), 'Too many token requests');
  }

  /** A refresh of a live session: as many a minute per session as the token endpoint allows per address. */
  async sessionRefresh(sessionId: string): Promise<void> {
    await consume(this.refreshPerSession, sessionId, 'Too many refreshes of this session');
  }

  async passkeyOptions(ip: string): Promise<void> {
    await consume(this.passkeyOptionsPerIp, ipKey(ip), 'Too many passkey requests');
  }

  async registration(ip: string): Promise<void> {
    await consume(this.register, ipKey(ip), 'Too many registrations');
  }

  async passwordResetRequest(ip: string): Promise<void> {
    await consume(this.reset, ipKey(ip), 'Too many password-reset requests');
  }

  /**
   * A password or email change by a signed-in user: each costs a hash and a
   * strength score on shared threads, so one user may not monopolise them
   * (nor probe addresses), right password or not.
   */
  async sensitiveAction(userId: string): Promise<void> {
    await consume(this.sensitive, userId, 'Too many account changes');
  }

  /**
   * Refuses an attempt on an account (whether or not it exists) from an
   * address that failed on it too often, or while the account is slowed
   * down, unless this address has signed in to it before. Its three reads
   * go together; what they saw lets a success write only what changed.
   */
  async checkLogin(account: LockoutKey, ip: string): Promise<LoginAttempt> {
    const pair = `${account}|${ip}`;
    const [own, slowed, known] = await Promise.all([
      this.failuresUserIp?.get(pair),
      this.slowdown?.get(account),
      this.known?.get(pair).catch(() => null),
    ]);
    if (own && own.consumedPoints >= this.failuresUserIp!.points) throw rateLimited('Too many failed logins', own.msBeforeNext);
    const knownForMs = known && known.consumedPoints > 0 ? known.msBeforeNext : 0;
    if (slowed && slowed.consumedPoints > this.slowdown!.points && knownForMs <= 0) {
      throw rateLimited('Too many failed logins on this account', slowed.msBeforeNext);
    }
    return { pair, failures: !!own && own.consumedPoints > 0, knownForMs };
  }

  async loginFailed(account: LockoutKey, ip: string): Promise<void> {
    const [, total] = await Promise.all([
      this.failuresUserIp?.penalty(`${account}|${ip}`).catch(() => undefined),
      this.failuresUser?.penalty(account).catch(() => undefined),
    ]);
    const over = (total?.consumedPoints ?? 0) - this.threshold;
    // Past the threshold every failure doubles the wait: 1 s, 2 s, 4 s… up to 15 min.
    if (this.slowdown && over > 0) {
      await this.slowdown.block(account, Math.min(MAX_SLOWDOWN_S, 2 ** Math.min(over - 1, 20))).catch(() => {});
    }
  }

  /**
   * A success clears this address's failures on the account and marks it a
   * known client. Most sign-ins change neither (no failures, marked less
   * than half its time ago), and then nothing is written: a login stays
   * cheap for the store. A failure that raced in after checkLogin's read
   * stays counted, which only errs towards caution.
   */
  async loginSucceeded(attempt: LoginAttempt): Promise<void> {
    const renewKnown = attempt.knownForMs < (KNOWN_CLIENT_S * 1000) / 2;
    await Promise.all([
      attempt.failures ? this.failuresUserIp?.delete(attempt.pair).catch(() => {}) : undefined,
      renewKnown ? this.known?.set(attempt.pair, 1, KNOWN_CLIENT_S).catch(() => {}) : undefined,
    ]);
  }
}

async function consume(limiter: RateLimiterAbstract | undefined, key: string, what: string): Promise<void> {
  if (!limiter) return;
  try {
    await limiter.consume(key);
  } catch (res) {
    if (res instanceof RateLimiterRes) throw rateLimited(what, res.msBeforeNext);
    throw res;
  }
}
