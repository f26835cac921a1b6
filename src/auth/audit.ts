// The audit log: every security event as a row of `audit_events`, written
// off the request path. `record()` only appends to an in-memory buffer (no
// await, no I/O); the buffer is written with one INSERT per batch, every
// `flushMs` or as soon as `batchSize` events wait. While PostgreSQL does not
// take them, events wait in the buffer up to `maxBuffered`; past that the
// oldest are dropped and counted, said once in the log when it starts and
// once, with the count, when writing works again. close() writes whatever
// waits (the plugin calls it on onClose, before the database closes).
// Rows older than the retention are pruned by the core's housekeeping.
import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../clock.js';
import type { Database } from '../db/client.js';
import { cursorTs, page, type Keyset } from '../http/pagination.js';
import type { SessionMeta } from './sessions.js';

/** docs/API.md "Audit log": the types this service records. */
export const AUDIT_TYPES = [
  'register',
  'login',
  'login_failed',
  'refresh',
  'refresh_reuse',
  'logout',
  'revoke',
  'session_deleted',
  'password_changed',
  'user_updated',
  'rate_limited',
  // Account recovery and email (issue 12).
  'password_reset_requested',
  'password_reset',
  'email_verified',
  'email_changed',
  // Second factors (issues 13, 14).
  'mfa_enabled',
  'mfa_disabled',
  'mfa_failed',
  'passkey_added',
  'passkey_removed',
  // Signing keys and the FastAPI move (issue 10).
  'keys_rotated',
  'signing_algorithm_changed',
] as const;
export type AuditType = (typeof AUDIT_TYPES)[number];

/** What a call site says about an event; the log adds the id and the time. */
export interface AuditRecord {
  type: AuditType;
  /** The account the event is about (null: no account matched). */
  userId?: string | null;
  /** The account's username, or what was typed on a failed login. Never a password. */
  username?: string | null;
  sessionId?: string | null;
  /** Who acted, when not the user themselves (an administrator). */
  actorId?: string | null;
  /** The client: IP and user agent. */
  meta?: SessionMeta;
  /** A small object: `{"scope": "others"}`, `{"fields": ["role"]}`. Never a secret. */
  detail?: Record<string, unknown>;
}

export interface AuditEventView {
  id: string;
  at: string;
  type: AuditType;
  user_id: string | null;
  username: string | null;
  ip: string | null;
  user_agent: string | null;
  session_id: string | null;
  detail: Record<string, unknown>;
}

export interface AuditOptions {
  /** false: record() does nothing (the routes answer empty lists). */
  enabled: boolean;
  retentionMs: number;
  flushMs: number;
  batchSize: number;
  maxBuffered: number;
}

/** A row of audit_events as buffered: the view plus who acted. */
interface Row extends AuditEventView {
  actor_id: string | null;
}

/** Longest username kept (an email address is at most 320 characters). */
export const AUDIT_USERNAME_MAX = 320;
const USER_AGENT_MAX = 512;
const IP_MAX = 64;

const truncate = (s: string | null | undefined, max: number): string | null => (s == null ? null : s.length > max ? s.slice(0, max) : s);

/**
 * Text PostgreSQL accepts: no NUL (text and jsonb refuse it) and no lone
 * surrogate (jsonb refuses it; truncation can cut a pair). One event typed
 * that way must not sink the batch it is in.
 */
function storable(s: string): string {
  // String.prototype.toWellFormed (Node 20; the TypeScript lib here predates ES2024).
  return (s as string & { toWellFormed(): string }).toWellFormed().replaceAll('\u0000', '\uFFFD');
}

// A data error (SQLSTATE class 22) is about a row; anything else is about the database.
const isDataError = (err: unknown) => /^22/.test(String((err as { code?: unknown }).code ?? ''));

const INSERT = `INSERT INTO audit_events (id, at, type, user_id, username, ip, user_agent, session_id, actor_id, detail)
  SELECT id, at, type, user_id, username, ip, user_agent, session_id, actor_id, coalesce(detail, '{}')
    FROM jsonb_to_recordset($1::jsonb) AS r(id uuid, at timestamptz, type text, user_id uuid, username text, ip text,
                                           user_agent text, session_id uuid, actor_id uuid, detail jsonb)`;

export class AuditLog {
  private buffer: Row[] = [];
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** While PostgreSQL refuses batches: size-triggered flushes wait for the timer. */
  private failing = false;
  /** Events dropped since writing last worked (said in the log when it works again). */
  private droppedSinceOk = 0;
  /** Events dropped since start. */
  dropped = 0;

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly opts: AuditOptions,
    private readonly log: FastifyBaseLogger,
  ) {}

  get enabled(): boolean {
    return this.opts.enabled;
  }

  /** Events waiting to be written. */
  get pending(): number {
    return this.buffer.length;
  }

  /** Appends an event to the buffer; never waits, never throws. */
  record(e: AuditRecord): void {
    if (!this.opts.enabled) return;
    this.buffer.push({
      id: randomUUID(),
      at: new Date(this.clock.now()).toISOString(),
      type: e.type,
      user_id: e.userId ?? null,
      username: truncate(e.username, AUDIT_USERNAME_MAX),
      ip: truncate(e.meta?.ip, IP_MAX),
      user_agent: truncate(e.meta?.userAgent, USER_AGENT_MAX),
      session_id: e.sessionId ?? null,
      actor_id: e.actorId ?? null,
      detail: e.detail ?? {},
    });
    this.bound();
    if (this.buffer.length >= this.opts.batchSize && !this.failing) void this.flush();
  }

  /** Writes what waits, batch by batch; resolves when the buffer is empty or PostgreSQL refused a batch. */
  flush(): Promise<void> {
    this.flushing ??= this.drain().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async drain(): Promise<void> {
    while (this.buffer.length) {
      const batch = this.buffer.splice(0, this.opts.batchSize);
      try {
        await this.insert(batch);
      } catch (err) {
        if (isDataError(err)) {
          // Some row PostgreSQL cannot take: write the others one by one.
          if (await this.insertEach(batch)) continue;
          return;
        }
        this.refused(batch, err);
        return;
      }
      this.written();
    }
  }

  private async insert(rows: Row[]): Promise<void> {
    // Every string passes through storable(), whatever field or depth it is at.
    const json = JSON.stringify(rows, (_key, value: unknown) => (typeof value === 'string' ? storable(value) : value));
    await this.db.query(INSERT, [json]);
  }

  /** After a data error: each row alone; one that still fails is dropped. False when the database itself failed. */
  private async insertEach(rows: Row[]): Promise<boolean> {
    for (let i = 0; i < rows.length; i++) {
      try {
        await this.insert([rows[i]!]);
      } catch (err) {
        if (!isDataError(err)) {
          this.refused(rows.slice(i), err);
          return false;
        }
        this.drop(1);
        this.log.warn({ event: 'audit_event_dropped', type: rows[i]!.type, err: (err as Error).message }, 'audit log: an event PostgreSQL refused was dropped');
      }
    }
    this.written();
    return true;
  }

  /** A batch PostgreSQL did not take goes back to the front of the buffer (it is the oldest). */
  private refused(batch: Row[], err: unknown): void {
    this.buffer = batch.concat(this.buffer);
    if (!this.failing) {
      this.log.warn(
        { event: 'audit_log_unavailable', pending: this.buffer.length, max: this.opts.maxBuffered, err: (err as Error).message },
        'audit log: PostgreSQL does not take events; keeping them in memory (beyond the bound the oldest are dropped and counted)',
      );
    }
    this.failing = true;
    this.bound();
  }

  private written(): void {
    if (this.failing || this.droppedSinceOk) {
      this.log.warn(
        { event: 'audit_log_recovered', dropped: this.droppedSinceOk },
        `audit log: writing again; ${this.droppedSinceOk} events were dropped meanwhile`,
      );
    }
    this.failing = false;
    this.droppedSinceOk = 0;
  }

  /** Keeps the buffer within its bound by dropping the oldest events. */
  private bound(): void {
    const over = this.buffer.length - this.opts.maxBuffered;
    if (over <= 0) return;
    this.buffer.splice(0, over);
    if (this.droppedSinceOk === 0) {
      this.log.warn(
        { event: 'audit_events_dropped', max: this.opts.maxBuffered },
        'audit log: buffer full; dropping the oldest events until PostgreSQL takes them again',
      );
    }
    this.drop(over);
  }

  private drop(n: number): void {
    this.dropped += n;
    this.droppedSinceOk += n;
  }

  start(): void {
    if (!this.opts.enabled || this.timer) return;
    this.timer = setInterval(() => void this.flush(), this.opts.flushMs);
    this.timer.unref();
  }

  /** Stops the timer and writes everything that waits (the database closes next). */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
    // A batch refused at the last moment gets one more try before it is lost.
    if (this.buffer.length) await this.flush();
    if (this.buffer.length) {
      this.log.error({ event: 'audit_events_lost', count: this.buffer.length }, 'audit log: events could not be written before shutdown');
    }
  }

  /** Deletes events older than the retention, in batches. Returns rows deleted. */
  async prune(batch = 1000): Promise<number> {
    const cutoff = new Date(this.clock.now() - this.opts.retentionMs);
    let total = 0;
    for (;;) {
      const r = await this.db.query(
        `DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE at < $1 LIMIT ${batch})`,
        [cutoff],
      );
      total += r.rowCount;
      if (r.rowCount < batch) return total;
    }
  }

  /**
   * One page of events, newest first. `ownerView`: the events of that user
   * as they see them: the client (IP, user agent, session) of an event
   * someone else caused (an administrator's change) is not theirs to see.
   */
  async list(q: { userId?: string; type?: AuditType; limit: number; after?: Keyset; ownerView?: boolean }) {
    const params: unknown[] = [];
    const where: string[] = [];
    if (q.userId !== undefined) where.push(`user_id = $${params.push(q.userId)}::uuid`);
    if (q.type !== undefined) where.push(`type = $${params.push(q.type)}`);
    if (q.after) where.push(`(at, id) < ($${params.push(q.after.ts)}::timestamptz, $${params.push(q.after.id)}::uuid)`);
    params.push(q.limit + 1);
    const r = await this.db.query<Omit<Row, 'at'> & { at: Date; cursor_ts: string }>(
      `SELECT *, ${cursorTs('at')} AS cursor_ts FROM audit_events
        ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return page(r.rows, q.limit, (row): AuditEventView => {
      const hidden = q.ownerView && row.actor_id !== null && row.actor_id !== row.user_id;
      return {
        id: row.id,
        at: row.at.toISOString(),
        type: row.type,
        user_id: row.user_id,
        username: row.username,
        ip: hidden ? null : row.ip,
        user_agent: hidden ? null : row.user_agent,
        session_id: hidden ? null : row.session_id,
        detail: row.detail,
      };
    });
  }
}
