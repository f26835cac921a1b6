// Rate limits on the auth endpoints (rate-limiter-flexible): per IP on the
// token and register endpoints, and brute-force protection per account
// (per account and IP, and per account across all IPs).
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
const FAILURE_WINDOW_S = 15 * 60;

/**
 * The lockout counters' key for a login attempt: the account's id when the
 * typed name or email matched one (so every spelling of it shares one
 * counter), otherwise a SHA-256 of the normalised name, so the key has a
 * fixed size whatever was typed. Only this function makes one.
 */
export type LockoutKey = string & { readonly __lockoutKey: true };

export function lockoutKey(typed: string, userId?: string): LockoutKey {
  if (userId) return `u:${userId}` as LockoutKey;
  const normalised = typed.normalize('NFKC').toLowerCase();
  return `n:${createHash('sha256').update(normalised).digest('hex')}` as LockoutKey;
}

export type RateLimitStoreKind = 'redis' | 'postgres' | 'memory';

export class AuthRateLimits {
  readonly store: RateLimitStoreKind;
  private readonly token?: RateLimiterAbstract;
  private readonly register?: RateLimiterAbstract;
  private readonly failuresUserIp?: RateLimiterAbstract;
  private readonly failuresUser?: RateLimiterAbstract;
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
    this.failuresUserIp = make('fail-ui', opts.failedLoginsPerAccount, FAILURE_WINDOW_S, { blockDuration: FAILURE_WINDOW_S });
    this.failuresUser = make('fail-u', opts.failedLoginsPerAccount * 10, 24 * 3600, { blockDuration: FAILURE_WINDOW_S });
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
    await consume(this.token, ip, 'Too many token requests');
  }

  async registration(ip: string): Promise<void> {
    await consume(this.register, ip, 'Too many registrations');
  }

  /** Refuses a login for an account that has failed too often (whether or not it exists). */
  async checkLogin(account: LockoutKey, ip: string): Promise<void> {
    for (const [limiter, key] of this.counters(account, ip)) {
      if (!limiter) continue;
      const res = await limiter.get(key);
      if (res && res.consumedPoints >= limiter.points) throw rateLimited('Too many failed logins', res.msBeforeNext);
    }
  }

  async loginFailed(account: LockoutKey, ip: string): Promise<void> {
    await Promise.all(this.counters(account, ip).map(([limiter, key]) => limiter?.penalty(key).catch(() => {})));
  }

  async loginSucceeded(account: LockoutKey, ip: string): Promise<void> {
    await this.failuresUserIp?.delete(`${account}|${ip}`).catch(() => {});
  }

  private counters(account: LockoutKey, ip: string) {
    return [
      [this.failuresUserIp, `${account}|${ip}`],
      [this.failuresUser, account],
    ] as const;
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
