// Sessions and refresh tokens (RFC 9700 §4.14): opaque single-use refresh
// tokens stored only as SHA-256 hashes, rotated atomically, with a short
// grace window for retries and reuse detection after it.
//
// The successor of a refresh token is HMAC(key, token): any node that is
// shown the same token again can hand out the same successor without the
// successor ever being stored in clear. The key is derived from SECRET_KEY;
// a retry that crosses a change of SECRET_KEY finds the successor made
// under the previous one (PREVIOUS_SECRET_KEYS).
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { Database, Queryable } from '../db/client.js';
import { FEED_RETENTION_MS, sidEventSql } from './change-feed.js';
import { deriveKey } from './derived-keys.js';
import { AuthError, type ErrorCode } from './errors.js';
import type { Revocations } from './revocations.js';
import type { Role } from './scopes.js';

/** The default prefix: recognisable, so secret scanners can spot leaked refresh tokens. */
export const REFRESH_TOKEN_PREFIX = 'ghr_';

export interface SessionMeta {
  userAgent: string | null;
  ip: string | null;
}

export interface RefreshContext {
  userId: string;
  username: string;
  role: Role;
  sessionId: string;
  /** The scope the session was first granted. */
  sessionScope: string;
  /** When the session's sign-in happened, ms since the epoch. */
  authTime: number;
  /** What that sign-in proved (RFC 8176), carried by every access token of the session. */
  amr: string[];
}

export interface RefreshResult extends RefreshContext {
  refreshToken: string;
  /** When `refreshToken` expires, ms since the epoch. */
  refreshExpiresAt: number;
  /** The scope the route decided to grant (from `authorize`). */
  grantedScope: string;
}

/** `/auth/logout`'s scopes: this session, every other one, or all of the user's. */
export type LogoutScope = 'local' | 'others' | 'global';

export interface SessionView {
  id: string;
  created_at: string;
  last_used_at: string;
  user_agent: string | null;
  ip: string | null;
}

export interface SessionOptions {
  refreshTtlMs: number;
  sessionMaxMs: number;
  graceMs: number;
  retentionMs: number;
  secret: string;
  /** Earlier secrets: successors made under them are still found by a retry. */
  previousSecrets?: readonly string[];
  /** Prefix of every refresh token (default `ghr_`). */
  prefix?: string;
  onReuse: (info: { userId: string; sessionId: string; meta: SessionMeta }) => void;
  /** After every "end the user's sessions" (logout global/others, password change…): what else ends with them (legacy tokens). */
  onUserSessionsEnded?: (userId: string, keep: string | undefined) => Promise<void>;
}

// One description for every way a refresh token fails (the codes, which reach the logs, tell them apart).
const INVALID = (code: ErrorCode = 'refresh_token_invalid') => new AuthError(code, 'The refresh token is invalid, expired or revoked');

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/** The shape of a refresh token with this prefix: 256 bits, base64url. */
function refreshTokenPattern(prefix = REFRESH_TOKEN_PREFIX): RegExp {
  return new RegExp(`^${prefix}[A-Za-z0-9_-]{43}$`);
}

export class Sessions {
  /** The current secret's key first, then the previous secrets'. */
  private readonly successorKeys: Buffer[];
  private readonly prefix: string;
  private readonly shape: RegExp;
  private housekeeper: NodeJS.Timeout | undefined;
  private housekeeping: Promise<void> | undefined;

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly revocations: Revocations,
    private readonly opts: SessionOptions,
  ) {
    this.successorKeys = [opts.secret, ...(opts.previousSecrets ?? [])].map((s) => deriveKey(s, 'refresh-token successor v1'));
    this.prefix = opts.prefix ?? REFRESH_TOKEN_PREFIX;
    this.shape = refreshTokenPattern(this.prefix);
  }

  /** Whether a string has the shape of one of our refresh tokens (says nothing of its validity). */
  looksLikeRefreshToken(token: string): boolean {
    return this.shape.test(token);
  }

  private successorOf(token: string, key = this.successorKeys[0]!): string {
    return this.prefix + createHmac('sha256', key).update(token).digest('base64url');
  }

  /** Opens a session at login (`amr`: what the login proved); returns its id and first refresh token. */
  async open(
    userId: string,
    scope: string,
    meta: SessionMeta,
    amr: readonly string[],
  ): Promise<{ sessionId: string; refreshToken: string; createdAt: number; refreshExpiresAt: number }> {
    const now = this.clock.now();
    const sessionId = randomUUID();
    const refreshToken = this.prefix + randomBytes(32).toString('base64url');
    const sessionEnd = now + this.opts.sessionMaxMs;
    const refreshExpiresAt = Math.min(now + this.opts.refreshTtlMs, sessionEnd);
    await this.db.query(
      `WITH s AS (
         INSERT INTO sessions (id, user_id, scope, created_at, last_used_at, expires_at, user_agent, ip, amr)
         VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $10) RETURNING id)
       INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
       SELECT $8, id, $4, $9 FROM s`,
      [
        sessionId,
        userId,
        scope,
        new Date(now),
        new Date(sessionEnd),
        meta.userAgent,
        meta.ip,
        hashToken(refreshToken),
        new Date(refreshExpiresAt),
        [...amr],
      ],
    );
    return { sessionId, refreshToken, createdAt: now, refreshExpiresAt };
  }

  /**
   * The refresh grant. `authorize` sees the session and its user before
   * anything changes and returns the scope to grant (or throws): a request
   * that fails for any reason never uses up its refresh token.
   */
  async refresh(token: string, meta: SessionMeta, authorize: (ctx: RefreshContext) => string | Promise<string>): Promise<RefreshResult> {
    if (!this.looksLikeRefreshToken(token)) throw INVALID();
    const now = this.clock.now();
    const hash = hashToken(token);
    const row = (
      await this.db.query<{
        used_at: Date | null;
        token_expires_at: Date;
        session_id: string;
        scope: string;
        revoked_at: Date | null;
        session_expires_at: Date;
        session_created_at: Date;
        amr: string[];
        user_id: string;
        username: string;
        role: Role;
        disabled: boolean;
      }>(
        `SELECT t.used_at, t.expires_at AS token_expires_at, s.id AS session_id, s.scope, s.revoked_at,
                s.expires_at AS session_expires_at, s.created_at AS session_created_at, s.amr, u.id AS user_id, u.username, u.role, u.disabled
           FROM refresh_tokens t
           JOIN sessions s ON s.id = t.session_id
           JOIN users u ON u.id = s.user_id
          WHERE t.token_hash = $1`,
        [hash],
      )
    ).rows[0];
    if (!row || row.disabled) throw INVALID();
    if (row.revoked_at) throw INVALID('session_revoked');
    if (row.token_expires_at.getTime() <= now || row.session_expires_at.getTime() <= now) throw INVALID('refresh_token_expired');

    const ctx: RefreshContext = {
      userId: row.user_id,
      username: row.username,
      role: row.role,
      sessionId: row.session_id,
      sessionScope: row.scope,
      authTime: row.session_created_at.getTime(),
      amr: row.amr,
    };
    const grantedScope = await authorize(ctx);
    const successor = this.successorOf(token);

    let usedAt = row.used_at;
    if (!usedAt) {
      const refreshExpiresAt = Math.min(now + this.opts.refreshTtlMs, row.session_expires_at.getTime());
      const won = await this.rotate(hash, successor, refreshExpiresAt, now, meta);
      if (won) return { ...ctx, refreshToken: successor, refreshExpiresAt, grantedScope };
      // Another request rotated it first: fall through to the retry rules.
      usedAt = (
        await this.db.query<{ used_at: Date | null }>('SELECT used_at FROM refresh_tokens WHERE token_hash = $1', [hash])
      ).rows[0]?.used_at ?? null;
      if (!usedAt) throw INVALID(); // deleted meanwhile
    }

    if (now - usedAt.getTime() <= this.opts.graceMs) {
      // The successor made under the current secret, or under a previous one (the first request ran before a secret change).
      const candidates = this.successorKeys.map((k) => this.successorOf(token, k));
      const next = (
        await this.db.query<{ token_hash: string; used_at: Date | null; expires_at: Date }>(
          'SELECT token_hash, used_at, expires_at FROM refresh_tokens WHERE token_hash = ANY($1::text[])',
          [candidates.map(hashToken)],
        )
      ).rows[0];
      // A retry (lost response, second tab) until the successor is used itself.
      if (next && !next.used_at && next.expires_at.getTime() > now) {
        return { ...ctx, refreshToken: candidates.find((c) => hashToken(c) === next.token_hash)!, refreshExpiresAt: next.expires_at.getTime(), grantedScope };
      }
    }

    // Reuse of a rotated token: assume it was stolen and end the session.
    const ended = await this.revokeWhere('id = $1', [row.session_id]);
    if (ended.length) this.opts.onReuse({ userId: row.user_id, sessionId: row.session_id, meta });
    throw INVALID('refresh_token_reused');
  }

  /** Marks the token used and stores its successor, in one statement: exactly one request wins. */
  private async rotate(
    hash: string,
    successor: string,
    expiresAt: number,
    now: number,
    meta: SessionMeta,
  ): Promise<boolean> {
    const r = await this.db.query(
      `WITH used AS (
         UPDATE refresh_tokens SET used_at = $3 WHERE token_hash = $1 AND used_at IS NULL RETURNING session_id),
       touched AS (
         UPDATE sessions SET last_used_at = $3, user_agent = $5, ip = $6
          WHERE id = (SELECT session_id FROM used) AND revoked_at IS NULL RETURNING id)
       INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
       SELECT $2, id, $3, $4 FROM touched
       ON CONFLICT (token_hash) DO NOTHING`,
      [hash, hashToken(successor), new Date(now), new Date(expiresAt), meta.userAgent, meta.ip],
    );
    return r.rowCount === 1;
  }

  /** Revokes the session a refresh token belongs to (RFC 7009): the session ended, if one did. Unknown tokens are ignored. */
  async revokeByRefreshToken(token: string): Promise<{ sessionId: string; userId: string } | undefined> {
    if (!this.looksLikeRefreshToken(token)) return undefined;
    const [ended] = await this.revokeRows('id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)', [hashToken(token)]);
    return ended && { sessionId: ended.id, userId: ended.user_id };
  }

  /** Ends one of the user's sessions; false if it is not theirs or already over. */
  async revokeSession(userId: string, sessionId: string): Promise<boolean> {
    return (await this.revokeWhere('id = $1 AND user_id = $2', [sessionId, userId])).length > 0;
  }

  /**
   * The live session a refresh token names, without using the token up: the
   * token unused, or used within the grace window (a retry's), and unexpired;
   * the session neither revoked nor expired; its user enabled.
   */
  async sessionOf(token: string): Promise<{ sessionId: string; userId: string; username: string } | undefined> {
    if (!this.looksLikeRefreshToken(token)) return undefined;
    const now = this.clock.now();
    const r = await this.db.query<{ session_id: string; user_id: string; username: string }>(
      `SELECT s.id AS session_id, u.id AS user_id, u.username
         FROM refresh_tokens t
         JOIN sessions s ON s.id = t.session_id
         JOIN users u ON u.id = s.user_id
        WHERE t.token_hash = $1 AND t.expires_at > $2 AND (t.used_at IS NULL OR t.used_at >= $3)
          AND s.revoked_at IS NULL AND s.expires_at > $2 AND NOT u.disabled`,
      [hashToken(token), new Date(now), new Date(now - this.opts.graceMs)],
    );
    const row = r.rows[0];
    return row && { sessionId: row.session_id, userId: row.user_id, username: row.username };
  }

  /** Logout: ends this session (local), every other one (others), or all of the user's (global). */
  async logout(userId: string, sessionId: string, scope: LogoutScope): Promise<void> {
    if (scope === 'local') await this.revokeSession(userId, sessionId);
    else await this.revokeUserSessions(userId, scope === 'others' ? sessionId : undefined);
  }

  /** Ends every live session of the user, except `keep` if given. */
  async revokeUserSessions(userId: string, keep?: string): Promise<string[]> {
    const ended = keep
      ? await this.revokeWhere('user_id = $1 AND id <> $2', [userId, keep])
      : await this.revokeWhere('user_id = $1', [userId]);
    await this.opts.onUserSessionsEnded?.(userId, keep);
    return ended;
  }

  /**
   * Ends the sessions `where` names and returns the ids this call ended.
   * Every session it names is announced, ended by this call or before it
   * (within the denylist's horizon): a node that died between its commit
   * and its announcement left a session revoked in PostgreSQL but unknown
   * to the other nodes, and the client's retry here must tell them. The
   * change-feed rows are written by the same statement.
   */
  private async revokeWhere(where: string, params: unknown[]): Promise<string[]> {
    return (await this.revokeRows(where, params)).map((x) => x.id);
  }

  /** revokeWhere's statement: the sessions this call ended, with their users. */
  private async revokeRows(where: string, params: unknown[]): Promise<Array<{ id: string; user_id: string }>> {
    const now = this.clock.now();
    const [at, since, horizon] = [params.length + 1, params.length + 2, params.length + 3];
    const r = await this.db.query<{ id: string; user_id: string; revoked_at: Date; ended: boolean }>(
      `WITH named AS (
         SELECT id, user_id, revoked_at FROM sessions WHERE ${where} AND (revoked_at IS NULL OR revoked_at > $${since})),
       ended AS (
         UPDATE sessions SET revoked_at = $${at} WHERE id IN (SELECT id FROM named) AND revoked_at IS NULL RETURNING id),
       feed AS (
         INSERT INTO security_events (payload)
         SELECT ${sidEventSql('id', `COALESCE(revoked_at, $${at})`, `$${horizon}::bigint`)} FROM named)
       SELECT n.id, n.user_id, COALESCE(n.revoked_at, $${at}) AS revoked_at, e.id IS NOT NULL AS ended
         FROM named n LEFT JOIN ended e USING (id)`,
      [...params, new Date(now), new Date(now - this.revocations.horizonMs), this.revocations.horizonMs],
    );
    // A session another request ended between this statement's read and its update counts from now (a little later: safe).
    if (r.rows.length) await this.revocations.sessionsRevoked(r.rows.map((x) => ({ id: x.id, revokedAt: x.revoked_at.getTime() })));
    return r.rows.filter((x) => x.ended);
  }

  /** The user's live sessions, most recently used first. */
  async list(userId: string): Promise<SessionView[]> {
    const now = new Date(this.clock.now());
    const r = await this.db.query<{
      id: string;
      created_at: Date;
      last_used_at: Date;
      user_agent: string | null;
      ip: string | null;
    }>(
      `SELECT s.id, s.created_at, s.last_used_at, s.user_agent, s.ip
         FROM sessions s
        WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2
          AND EXISTS (SELECT 1 FROM refresh_tokens t
                       WHERE t.session_id = s.id AND t.used_at IS NULL AND t.expires_at > $2)
        ORDER BY s.last_used_at DESC, s.id`,
      [userId, now],
    );
    return r.rows.map((s) => ({
      id: s.id,
      created_at: s.created_at.toISOString(),
      last_used_at: s.last_used_at.toISOString(),
      user_agent: s.user_agent,
      ip: s.ip,
    }));
  }

  /**
   * Deletes sessions and tokens that ended more than the retention period
   * ago, in small batches, on one node at a time. Returns rows deleted.
   */
  async housekeep(batch = 1000): Promise<number> {
    // Never sooner than the denylist needs the record: a session deleted while
    // its access tokens live would be forgotten by a node that rebuilds.
    const cutoff = new Date(this.clock.now() - Math.max(this.opts.retentionMs, this.revocations.horizonMs));
    const now = new Date(this.clock.now());
    let total = 0;
    const statements: Array<[string, unknown[]]> = [
      [
        `DELETE FROM sessions WHERE id IN (SELECT id FROM sessions
           WHERE revoked_at < $1 OR expires_at < $1
              OR (last_used_at < $1 AND NOT EXISTS (SELECT 1 FROM refresh_tokens t
                    WHERE t.session_id = sessions.id AND t.expires_at > $1))
           LIMIT ${batch})`,
        [cutoff],
      ],
      [`DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash FROM refresh_tokens WHERE expires_at < $1 LIMIT ${batch})`, [cutoff]],
      [`DELETE FROM revoked_access_tokens WHERE jti IN (SELECT jti FROM revoked_access_tokens WHERE expires_at < $1 LIMIT ${batch})`, [now]],
      // The change feed's rows, by the database's own clock (which wrote them).
      [`DELETE FROM security_events WHERE id IN (SELECT id FROM security_events WHERE at < now() - $1 * interval '1 millisecond' LIMIT ${batch})`, [FEED_RETENTION_MS]],
    ];
    for (const [sql, params] of statements) {
      for (;;) {
        const n = await this.db.transaction(async (tx: Queryable) => {
          const got = await tx.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS ok', [0x6768686b]);
          if (!got.rows[0]?.ok) return 0; // another node is on it
          return (await tx.query(sql, params)).rowCount;
        });
        total += n;
        if (n < batch) break;
      }
    }
    return total;
  }

  /**
   * Runs `tasks` (by default housekeep(); the core adds the audit log's
   * pruning) one after the other every `intervalMs` in the background (the first run at
   * a random point of the first interval, so nodes that restart often still
   * clean, and nodes started together do not collide); one run at a time.
   */
  startHousekeeping(intervalMs: number, onError: (err: unknown) => void, tasks: Array<() => Promise<unknown>> = [() => this.housekeep()]): void {
    const run = () => {
      if (this.housekeeping) return;
      // Each task on its own: one that fails does not stop the others.
      this.housekeeping = tasks
        .reduce<Promise<unknown>>((prev, task) => prev.then(() => task().catch(onError)), Promise.resolve())
        .then(() => undefined)
        .finally(() => {
          this.housekeeping = undefined;
        });
    };
    this.housekeeper = setTimeout(() => {
      run();
      this.housekeeper = setInterval(run, intervalMs);
      this.housekeeper.unref();
    }, Math.floor(Math.random() * intervalMs));
    this.housekeeper.unref();
  }

  /** Stops housekeeping and waits for a run in progress (the database is closed next). */
  async stop(): Promise<void> {
    if (this.housekeeper) clearInterval(this.housekeeper);
    await this.housekeeping;
  }
}
