// The denylist: revoked access tokens (by jti) and revoked sessions (by
// sid). PostgreSQL is the record; each node keeps in memory only the entries
// that can still matter (an entry lives as long as an access token issued
// before it could), so memory stays bounded and a protected request costs
// no round trip. While the event bus is unhealthy, PostgreSQL is asked;
// when PostgreSQL cannot answer either, the request gets a 503 (never a
// guess either way).
import type { Clock } from '../clock.js';
import type { Queryable } from '../db/client.js';
import { feedInsert } from './change-feed.js';
import { storeUnavailable } from './errors.js';
import type { EventBus, GatehouseEvent } from './event-bus.js';
import type { TokenService } from './tokens.js';

/**
 * Margin added to how long a revoked session stays in memory: covers clock
 * skew between the node that revoked and the node that issued a token, and a
 * token issued by a refresh that raced the revocation.
 */
const MARGIN_MS = 60_000;

export class Revocations {
  private readonly jtis = new Map<string, number>();
  private readonly sids = new Map<string, number>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Queryable,
    private readonly bus: EventBus,
    private readonly clock: Clock,
    /** Token lifetimes and leeway: how long a revocation must be remembered. */
    private readonly tokens: Pick<TokenService, 'accessTtlSeconds' | 'usableUntilMs'>,
    private readonly onStoreError: (err: unknown) => void = () => {},
  ) {
    bus.subscribe((e) => this.apply(e));
    bus.onResync(() => this.rebuild());
  }

  /**
   * How long after a session's revocation its access tokens can still be
   * presented: PostgreSQL must keep the revoked session at least this long,
   * or a node that rebuilds (or checks in fallback) would forget it.
   */
  get horizonMs(): number {
    // The last moment a token issued now can be presented, less now.
    return this.tokens.usableUntilMs(this.tokens.accessTtlSeconds) + MARGIN_MS;
  }

  async isRevoked(jti: string, sid: string): Promise<boolean> {
    if (this.bus.healthy) {
      const now = this.clock.now();
      return (this.jtis.get(jti) ?? 0) > now || (this.sids.get(sid) ?? 0) > now;
    }
    try {
      const r = await this.db.query<{ revoked: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = $1)
             OR EXISTS (SELECT 1 FROM sessions WHERE id = $2 AND revoked_at IS NOT NULL) AS revoked`,
        [jti, sid],
      );
      return r.rows[0]?.revoked === true;
    } catch (err) {
      this.onStoreError(err);
      throw storeUnavailable();
    }
  }

  /**
   * Revokes one access token until it would have expired (RFC 7009), with
   * its change-feed row in the same statement; announced even when it was
   * revoked already (the node that revoked it may have died before saying so).
   */
  async revokeAccessToken(jti: string, expSeconds: number): Promise<void> {
    const until = this.tokens.usableUntilMs(expSeconds);
    const event: GatehouseEvent = { type: 'jti', jti, until };
    await this.db.query(
      `WITH denied AS (
         INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING)
       ${feedInsert('$3')}`,
      [jti, new Date(until), JSON.stringify(event)],
    );
    await this.announce(event);
  }

  /** Tells every node that these sessions (marked revoked in PostgreSQL at `revokedAt`, ms) are over. */
  async sessionsRevoked(sessions: ReadonlyArray<{ id: string; revokedAt: number }>): Promise<void> {
    await Promise.all(sessions.map((s) => this.announce({ type: 'sid', sid: s.id, until: s.revokedAt + this.horizonMs })));
  }

  private async announce(event: GatehouseEvent): Promise<void> {
    this.apply(event); // this node at once, whatever the bus does
    await this.bus.publish(event); // never throws: PostgreSQL already holds the change
  }

  private apply(e: GatehouseEvent): void {
    if (e.type === 'jti') this.jtis.set(e.jti, Math.max(e.until, this.jtis.get(e.jti) ?? 0));
    else if (e.type === 'sid') this.sids.set(e.sid, Math.max(e.until, this.sids.get(e.sid) ?? 0));
  }

  /** Reloads every entry that can still matter from PostgreSQL. */
  async rebuild(): Promise<void> {
    const now = this.clock.now();
    const jtis = await this.db.query<{ jti: string; expires_at: Date }>(
      'SELECT jti, expires_at FROM revoked_access_tokens WHERE expires_at > $1',
      [new Date(now)],
    );
    const sids = await this.db.query<{ id: string; revoked_at: Date }>(
      'SELECT id, revoked_at FROM sessions WHERE revoked_at IS NOT NULL AND revoked_at > $1',
      [new Date(now - this.horizonMs)],
    );
    for (const r of jtis.rows) this.apply({ type: 'jti', jti: r.jti, until: r.expires_at.getTime() });
    for (const r of sids.rows) this.apply({ type: 'sid', sid: r.id, until: r.revoked_at.getTime() + this.horizonMs });
  }

  /** Drops entries whose tokens can no longer be presented. */
  sweep(): void {
    const now = this.clock.now();
    for (const [k, until] of this.jtis) if (until <= now) this.jtis.delete(k);
    for (const [k, until] of this.sids) if (until <= now) this.sids.delete(k);
  }

  start(intervalMs = 60_000): void {
    this.sweeper = setInterval(() => this.sweep(), intervalMs);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
  }
}
