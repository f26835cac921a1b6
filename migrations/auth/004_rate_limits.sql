-- Rate-limit and lockout counters on the PostgreSQL server when there is no
-- Redis (src/auth/rate-limit.ts), so that every worker and node counts in
-- one place. The columns are the ones rate-limiter-flexible's
-- RateLimiterPostgres reads and writes (its own CREATE TABLE, made here at
-- start instead of on its first use): key = "<limiter>:<key>", points used,
-- expire in epoch milliseconds. UNLOGGED: counters are short-lived, skip
-- the WAL, and a crash that empties them costs no more than a Redis restart.
CREATE UNLOGGED TABLE rate_limit_counters (
  key varchar(255) PRIMARY KEY,
  points integer NOT NULL DEFAULT 0,
  expire bigint
);
