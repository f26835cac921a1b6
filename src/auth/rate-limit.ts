// Rate limits on the auth endpoints (rate-limiter-flexible): per IP on the
// token and register endpoints, and brute-force protection per account
// (per account and IP, and per account across all IPs). Counters live in
// Redis when it is configured, so they count across nodes, with an
// in-process limiter standing in while Redis is unreachable.
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { rateLimited } from './errors.js';

export interface RateLimitOptions {
  tokenPerMinute: number;
  registerPerHour: number;
  failedLoginsPerAccount: number;
}

const FAILURE_WINDOW_S = 15 * 60;

export class AuthRateLimits {
  private readonly token?: RateLimiterAbstract;
  private readonly register?: RateLimiterAbstract;
  private readonly failuresUserIp?: RateLimiterAbstract;
  private readonly failuresUser?: RateLimiterAbstract;

  constructor(opts: RateLimitOptions, redis?: Redis, prefix = 'gatehouse:') {
    const make = (keyPrefix: string, points: number, duration: number, blockDuration = 0) => {
      if (points <= 0) return undefined; // 0 turns a limit off
      const memory = new RateLimiterMemory({ keyPrefix, points, duration, blockDuration });
      return redis
        ? new RateLimiterRedis({ storeClient: redis, keyPrefix: `${prefix}rl:${keyPrefix}`, points, duration, blockDuration, insuranceLimiter: memory })
        : memory;
    };
    this.token = make('token', opts.tokenPerMinute, 60);
    this.register = make('register', opts.registerPerHour, 3600);
    this.failuresUserIp = make('fail-ui', opts.failedLoginsPerAccount, FAILURE_WINDOW_S, FAILURE_WINDOW_S);
    this.failuresUser = make('fail-u', opts.failedLoginsPerAccount * 10, 24 * 3600, FAILURE_WINDOW_S);
  }

  async tokenRequest(ip: string): Promise<void> {
    await consume(this.token, ip, 'Too many token requests');
  }

  async registration(ip: string): Promise<void> {
    await consume(this.register, ip, 'Too many registrations');
  }

  /** Refuses a login for an account that has failed too often (whether or not it exists). */
  async checkLogin(login: string, ip: string): Promise<void> {
    for (const [limiter, key] of [
      [this.failuresUserIp, `${login}|${ip}`],
      [this.failuresUser, login],
    ] as const) {
      if (!limiter) continue;
      const res = await limiter.get(key);
      if (res && res.consumedPoints >= limiter.points) throw rateLimited('Too many failed logins', res.msBeforeNext);
    }
  }

  async loginFailed(login: string, ip: string): Promise<void> {
    await Promise.all([
      this.failuresUserIp?.penalty(`${login}|${ip}`).catch(() => {}),
      this.failuresUser?.penalty(login).catch(() => {}),
    ]);
  }

  async loginSucceeded(login: string, ip: string): Promise<void> {
    await this.failuresUserIp?.delete(`${login}|${ip}`).catch(() => {});
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
