// The transactional outbox (migrations/auth/008_mail.sql): a mail is a row
// written in the same transaction as whatever it announces (a token, a
// changed password), so a mail is never lost and never sent for something
// that rolled back. Every node runs a sender:
//
// - it claims one due row at a time with a single UPDATE … WHERE id =
//   (SELECT … FOR UPDATE SKIP LOCKED): nodes never wait for, nor take, the
//   same row; the claim is a lease (`locked_until`), so a node killed while
//   delivering hands the row to another when the lease ends;
// - it hands the mail to the transport, and marks the row sent by the very
//   next statement after the SMTP server's acceptance. Only a node dying in
//   between those two (a single round trip to PostgreSQL, well under a
//   millisecond to a few) sends the mail twice: at-least-once delivery with
//   that window as small as it can be, because an SMTP acceptance and a
//   database commit cannot be made atomic;
// - a failure (the SMTP server down or refusing) frees the row for a retry
//   after a backoff that doubles (base, 2×base… up to the maximum, with
//   ±20% jitter so nodes do not retry in step); a mail older than
//   `giveUpMs` is given up (kept, without its content, with its last error),
//   and so at once is a mail the server refuses for good (MailRejected: a
//   recipient that does not exist, content it will never take);
// - rows of kind 'password_reset_request' are turned into a token and a
//   mail (or into nothing, for an unknown address) by `expand`, in one
//   transaction that also deletes the request.
//
// Payloads can hold tokens: they are sealed (sealed.ts, the row's kind as
// associated data) under a key derived from SECRET_KEY, and erased once
// sent. A node pokes its own sender after a commit; the others find the row
// at their next poll.
import type { Database, Queryable } from '../../db/client.js';
import { deriveKey } from '../derived-keys.js';
import { openBytes, sealBytes } from '../sealed.js';
import { MailRejected, type MailTransport, type OutgoingMail } from './transport.js';

export interface OutboxOptions {
  /** How long a claimed row is a node's own (longer than the SMTP timeouts). */
  leaseMs: number;
  /** How often an idle sender looks for due rows. */
  pollMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** A mail that could not be delivered for this long is given up. */
  giveUpMs: number;
}

type Kind = 'mail' | 'password_reset_request';

interface ClaimedRow {
  id: number;
  kind: Kind;
  payload: Buffer | Uint8Array | null;
  attempts: number;
  created_at: Date;
}

/** expand() of a password_reset_request row, in the transaction that deletes it. */
export type RequestExpander = (tx: Queryable, request: unknown) => Promise<void>;

const PRUNE_EVERY_MS = 10 * 60_000;
/** Sent and given-up rows are kept this long (without content), for the operator. */
const KEEP_MS = 7 * 24 * 3600_000;
/** How long stop() waits for a delivery in flight before closing anyway. */
const STOP_WAIT_MS = 10_000;

class LeaseLost extends Error {}

export class MailOutbox {
  private readonly key: Buffer;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = true;
  private lastPrune = 0;
  /** The earliest retry this node scheduled: it looks again then, not only at the next poll. */
  private wakeAt = Infinity;
  /** Test and operator insight: deliveries made by this node. */
  delivered = 0;

  constructor(
    private readonly db: Database,
    private readonly transport: MailTransport,
    secret: string,
    private readonly opts: OutboxOptions,
    private readonly warn: (msg: string, err?: unknown) => void,
    private readonly expand: RequestExpander,
  ) {
    this.key = deriveKey(secret, 'mail outbox v1');
  }

  get description(): string {
    return this.transport.description;
  }

  /** Queues a mail, in the caller's transaction. Call poke() after the commit. */
  async enqueue(q: Queryable, mail: OutgoingMail): Promise<void> {
    await this.insert(q, 'mail', mail);
  }

  /** Queues a reset request for an address not looked up yet (the same statement for any address). */
  async enqueueRequest(request: object): Promise<void> {
    await this.insert(this.db, 'password_reset_request', request);
  }

  private async insert(q: Queryable, kind: Kind, payload: object): Promise<void> {
    const now = new Date();
    await q.query('INSERT INTO mail_outbox (kind, payload, created_at, next_attempt_at) VALUES ($1, $2, $3, $3)', [kind, this.seal(kind, payload), now]);
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** After a commit that queued something: look now (or in `delayMs`) rather than at the next poll. */
  poke(delayMs = 0): void {
    if (this.stopped) return;
    if (this.running) this.again = true;
    else this.schedule(delayMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.running) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.running, new Promise((r) => (timer = setTimeout(r, STOP_WAIT_MS)))]);
      clearTimeout(timer);
    }
    this.transport.close?.();
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.drain().finally(() => {
        this.running = undefined;
        if (this.stopped) return;
        const more = this.again;
        this.again = false;
        const untilRetry = Math.max(0, this.wakeAt - Date.now());
        this.wakeAt = Infinity;
        this.schedule(more ? 0 : Math.min(this.opts.pollMs, untilRetry));
      });
    }, ms);
    this.timer.unref();
  }

  /** Delivers every due row, one at a time. */
  private async drain(): Promise<void> {
    try {
      while (!this.stopped && (await this.deliverOne()));
      if (Date.now() - this.lastPrune > PRUNE_EVERY_MS) {
        this.lastPrune = Date.now();
        await this.db.query(`DELETE FROM mail_outbox WHERE (sent_at IS NOT NULL OR payload IS NULL) AND created_at < $1`, [new Date(Date.now() - KEEP_MS)]);
      }
    } catch (err) {
      this.warn('mail outbox: PostgreSQL did not answer; retrying', err);
    }
  }

  /** Claims and handles one due row; false when none is due. */
  async deliverOne(): Promise<boolean> {
    const now = Date.now();
    const r = await this.db.query<ClaimedRow>(
      `UPDATE mail_outbox SET locked_until = $1, attempts = attempts + 1
       WHERE id = (
         SELECT id FROM mail_outbox
         WHERE sent_at IS NULL AND payload IS NOT NULL AND next_attempt_at <= $2 AND (locked_until IS NULL OR locked_until <= $2)
         ORDER BY next_attempt_at, id LIMIT 1
         FOR UPDATE SKIP LOCKED)
       RETURNING id, kind, payload, attempts, created_at`,
      [new Date(now + this.opts.leaseMs), new Date(now)],
    );
    const row = r.rows[0];
    if (!row) return false;
    let content: unknown;
    try {
      content = this.open(row.kind, row.payload!);
    } catch {
      // Sealed under another SECRET_KEY: nobody can ever read it.
      await this.giveUp(row, 'cannot be decrypted (SECRET_KEY changed?)', 'mail given up: its content cannot be opened');
      return true;
    }
    try {
      if (row.kind === 'mail') {
        await this.transport.send(content as OutgoingMail);
        // The very next statement: the window in which a crash duplicates the mail.
        await this.db.query('UPDATE mail_outbox SET sent_at = $2, payload = NULL, locked_until = NULL, last_error = NULL WHERE id = $1', [row.id, new Date()]);
        this.delivered++;
      } else {
        await this.db.transaction(async (tx) => {
          await this.expand(tx, content);
          const done = await tx.query('DELETE FROM mail_outbox WHERE id = $1 AND attempts = $2', [row.id, row.attempts]);
          // Our lease ran out and another node has the row: its expansion counts, not ours.
          if (!done.rowCount) throw new LeaseLost();
        });
        this.again = true;
      }
    } catch (err) {
      if (err instanceof LeaseLost) return true;
      await this.retryLater(row, err);
    }
    return true;
  }

  private async retryLater(row: ClaimedRow, err: unknown): Promise<void> {
    // Only the SMTP reply code and a short reason: never the mail, and the address only as the server quoted it.
    const reason = describeError(err);
    if (err instanceof MailRejected) {
      await this.giveUp(row, reason, 'mail given up: the server refused it for good');
      return;
    }
    if (Date.now() - row.created_at.getTime() > this.opts.giveUpMs) {
      await this.giveUp(row, reason);
      return;
    }
    const backoff = Math.min(this.opts.retryMaxMs, this.opts.retryBaseMs * 2 ** Math.min(row.attempts - 1, 30));
    const delay = Math.round(backoff * (0.8 + Math.random() * 0.4));
    this.wakeAt = Math.min(this.wakeAt, Date.now() + delay);
    this.warn(`mail delivery failed (${transportName(err)}): retrying with backoff`, reason);
    await this.db.query('UPDATE mail_outbox SET locked_until = NULL, next_attempt_at = $3, last_error = $4 WHERE id = $1 AND attempts = $2', [
      row.id,
      row.attempts,
      new Date(Date.now() + delay),
      reason,
    ]);
  }

  private async giveUp(row: ClaimedRow, reason: string, why = 'mail given up: it could not be delivered in time'): Promise<void> {
    this.warn(why, reason);
    await this.db.query(
      `UPDATE mail_outbox SET payload = NULL, locked_until = NULL, next_attempt_at = 'infinity', last_error = $3 WHERE id = $1 AND attempts = $2`,
      [row.id, row.attempts, `gave up after ${row.attempts} attempts: ${reason}`],
    );
  }

  private seal(kind: Kind, value: object): Buffer {
    return sealBytes(this.key, JSON.stringify(value), kind);
  }

  /** Throws when the row does not open: deliverOne() gives it up. */
  private open(kind: Kind, sealed: Buffer | Uint8Array): unknown {
    const json = openBytes(this.key, sealed, kind);
    if (json === undefined) throw new Error('mail outbox: payload does not open');
    return JSON.parse(json.toString('utf8'));
  }
}

function transportName(err: unknown): string {
  if (err instanceof MailRejected) return `SMTP ${err.responseCode ?? 'rejected'}`;
  const e = err as { code?: string; responseCode?: number };
  return e.responseCode ? `SMTP ${e.responseCode}` : (e.code ?? 'error');
}

function describeError(err: unknown): string {
  const e = err as { code?: string; responseCode?: number; message?: string };
  return `${transportName(err)}: ${String(e.message ?? err).slice(0, 200)}`;
}
