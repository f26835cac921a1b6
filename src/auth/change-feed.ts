// The change feed: every node reads `security_events` (migrations/auth/
// 005_security_events.sql) once a second and applies what it has not seen,
// whatever the event bus did. Why a feed and not a second publish (NOTIFY
// as well as Redis): a publish happens after the commit, so it is lost when
// the node that committed dies first, and when that node's only working
// link is the one it cannot publish on. A row written by the same statement
// (or transaction) as the change exists exactly when the change does, and
// every node reads it through its ordinary pool, the link it needs for
// every login anyway. So, for each single link that can fail:
//   - node A ↔ Redis: A's change is a feed row; B, on the fast path with
//     its own Redis link, reads it within a poll (and A, unhealthy, asks
//     PostgreSQL on every request);
//   - node B ↔ Redis (or B's LISTEN connection): B is unhealthy and asks
//     PostgreSQL on every request; the feed changes nothing there;
//   - node ↔ PostgreSQL: that node cannot commit a revocation at all (503);
//     others' changes still reach it over Redis, and the feed catches up
//     from where it stopped once the link is back;
//   - a node dead between its commit and its publish: the row is there.
// Redis (or NOTIFY) stays the fast path (milliseconds); the feed bounds a
// missed event to one poll.
//
// Missing no row: ids are drawn before commit, so a row with a smaller id
// can become visible after one with a larger id. Each read therefore asks
// for rows whose writing transaction (`tx`) is not older than the oldest
// transaction that was still running at the previous read (its snapshot's
// xmin): every transaction that had not committed then has an id at least
// that. Rows read twice are skipped by id. The cost: while some
// transaction stays open for long, the rows since it are read again each
// second (and skipped); housekeeping keeps at most an hour of them.
import type { Queryable } from '../db/client.js';

export const FEED_POLL_MS = 1_000;
/** Rows older than this are deleted by housekeeping. */
export const FEED_RETENTION_MS = 60 * 60_000;
/** A node that could not read the feed for this long rebuilds instead (the rows it missed may be gone). */
const STALE_MS = FEED_RETENTION_MS / 2;
const PAGE = 1_000;

/** Appends one event row (`$n` is its JSON payload): to go in the statement or transaction of the change. */
export const feedInsert = (param: string) => `INSERT INTO security_events (payload) VALUES (${param})`;

/** `json_build_object` of a `sid` event whose session was revoked at `revokedAt` (SQL expressions), for `horizon` ms. */
export const sidEventSql = (id: string, revokedAt: string, horizon: string) =>
  `json_build_object('type', 'sid', 'sid', ${id}, 'until', (extract(epoch FROM ${revokedAt}) * 1000)::bigint + ${horizon})::text`;

export class ChangeFeed {
  /** xmin of the previous read's snapshot (xid8, as a decimal string). */
  private bound: bigint | undefined;
  /** Ids read at or above `bound`: they may be read again. */
  private seen = new Set<string>();
  private lastOk = 0;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly db: Queryable,
    /** Hands a payload to the bus's subscribers (validated there). */
    private readonly deliver: (raw: string) => void,
    /** Rebuilds every local copy from PostgreSQL. */
    private readonly rebuild: () => Promise<void>,
    private readonly log: (msg: string, err?: unknown) => void,
    private readonly intervalMs = FEED_POLL_MS,
  ) {}

  /** Takes the starting position: call before the first rebuild, so nothing committed after it is missed. */
  async prime(): Promise<void> {
    const r = await this.db.query<{ xmin: string }>('SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin');
    this.bound = BigInt(r.rows[0]!.xmin);
    this.lastOk = Date.now();
  }

  start(): void {
    this.timer = setInterval(() => void this.poll(), this.intervalMs);
    this.timer.unref();
  }

  /** One read (one at a time); failures are logged and retried at the next tick. */
  poll(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.polling ??= this.read()
      .catch((err) => this.log('change feed: could not read security_events; retrying every second', err))
      .finally(() => {
        this.polling = undefined;
      });
    return this.polling;
  }

  private async read(): Promise<void> {
    if (this.bound === undefined || Date.now() - this.lastOk > STALE_MS) {
      await this.prime();
      await this.rebuild();
      this.seen.clear();
      return;
    }
    let next: bigint | undefined;
    const seen = new Set<string>();
    let after = '0';
    for (;;) {
      // The snapshot's xmin comes with the rows, from the same statement.
      const r = await this.db.query<{ xmin: string; id: string | null; tx: string | null; payload: string | null }>(
        `SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin, e.id::text AS id, e.tx::text AS tx, e.payload
           FROM (SELECT 1) one
           LEFT JOIN LATERAL (SELECT id, tx, payload FROM security_events
                               WHERE tx >= $1::xid8 AND id > $2::bigint ORDER BY id LIMIT ${PAGE}) e ON true`,
        [String(this.bound), after],
      );
      next ??= BigInt(r.rows[0]!.xmin); // the first page's is the lowest
      const rows = r.rows.filter((x) => x.id !== null);
      for (const row of rows) {
        if (!this.seen.has(row.id!)) this.deliver(row.payload!);
        if (BigInt(row.tx!) >= next) seen.add(row.id!);
      }
      if (rows.length < PAGE) break;
      after = rows[rows.length - 1]!.id!;
    }
    if (next > this.bound) this.bound = next;
    this.seen = seen;
    this.lastOk = Date.now();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.polling;
  }
}
