// Cross-node events: revocations and user-state changes. Each node keeps a
// local copy of what the request path needs (denylist, user states) and
// this bus keeps the copies in step. While the bus is not `healthy` (its
// connection dropped, events may have been missed) the request path asks
// PostgreSQL instead; on reconnect every `onResync` handler rebuilds the
// local copy from PostgreSQL before the fast path resumes.
//
// Health follows the subscription, never a guess: a connection that drops
// while a resync is running does not let that resync declare the bus
// healthy (each loss starts a new generation), and a resync that failed
// (PostgreSQL away) is tried again by the heartbeat. Publishing never
// throws into a request and never waits long: PostgreSQL already holds the
// change (and a row of the change feed, src/auth/change-feed.ts, which
// every node reads once a second whatever the bus does); an event that
// could not be sent is kept and sent again once the bus is back, for the
// peers whose own subscription never dropped (events are idempotent, so a
// repeat does no harm). While the bus is known to be down an event is
// queued at once, and a send that has not gone through within
// PUBLISH_WAIT_MS is left to finish (or fail) in the background, queued.
import { Redis } from 'ioredis';
import pg from 'pg';
import { isUuid } from './ids.js';

export type GatehouseEvent =
  | { type: 'user'; id: string }
  | { type: 'jti'; jti: string; until: number }
  | { type: 'sid'; sid: string; until: number }
  /** The signing keys changed (a rotation): reload them from PostgreSQL. */
  | { type: 'keys' };

const isTime = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;

/**
 * Whether a message read from Redis or NOTIFY is an event of ours, exactly:
 * anything else (another program's message on our channel, a forged or
 * truncated one) is dropped before it can touch a denylist or a cache.
 */
export function parseEvent(raw: string): GatehouseEvent | undefined {
  if (raw.length > 512) return undefined;
  let e: Record<string, unknown>;
  try {
    e = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (e === null || typeof e !== 'object' || Array.isArray(e)) return undefined;
  const keys = Object.keys(e).length;
  if (e.type === 'user' && keys === 2 && isUuid(e.id)) return { type: 'user', id: e.id as string };
  if (e.type === 'jti' && keys === 3 && isUuid(e.jti) && isTime(e.until)) return { type: 'jti', jti: e.jti as string, until: e.until as number };
  if (e.type === 'keys' && keys === 1) return { type: 'keys' };
  if (e.type === 'sid' && keys === 3 && isUuid(e.sid) && isTime(e.until)) return { type: 'sid', sid: e.sid as string, until: e.until as number };
  return undefined;
}

/** Channel names: PostgreSQL NOTIFY, and Redis pub/sub under the deployment's prefix. */
export const PG_EVENTS_CHANNEL = 'gatehouse_events';
export const redisEventsChannel = (prefix: string) => `${prefix}events`;

export interface EventBus {
  readonly kind: 'local' | 'postgres' | 'redis';
  readonly healthy: boolean;
  /** Messages dropped because they were not valid events. */
  readonly dropped: number;
  /** Sends to every node (this one included). Never throws, never waits more than PUBLISH_WAIT_MS. */
  publish(event: GatehouseEvent): Promise<void>;
  /** A message read elsewhere (the change feed): validated, then handed to the subscribers. */
  deliver(raw: string): void;
  subscribe(handler: (event: GatehouseEvent) => void): void;
  onResync(handler: () => Promise<void>): void;
  start(): Promise<void>;
  close(): Promise<void>;
}

const CHANNEL = PG_EVENTS_CHANNEL;
/** application_name of a node's LISTEN connection (pg_stat_activity shows which one it is). */
export const PG_LISTENER_NAME = 'gatehouse-listen';
/** How long a command to the bus may take before it counts as failed. */
const COMMAND_TIMEOUT_MS = 1_000;
const HEARTBEAT_MS = 1_000;
/**
 * Redis: a PING every 250 ms, and one unanswered after 250 ms means a hung
 * connection (a local Redis answers in well under a millisecond; a false
 * alarm on a loaded machine costs a resync, never a wrong answer).
 */
export const REDIS_HEARTBEAT_MS = 250;
const REDIS_PING_TIMEOUT_MS = 250;
/** The longest a publish holds a request; after that the event waits in the queue. */
export const PUBLISH_WAIT_MS = 250;
/** Events kept for sending again while the bus is away (oldest dropped first). */
const MAX_PENDING = 10_000;

abstract class BaseBus {
  protected handlers: Array<(e: GatehouseEvent) => void> = [];
  protected resyncers: Array<() => Promise<void>> = [];
  protected closed = false;
  /** Bumped by every loss of the subscription: a resync begun before it cannot declare health. */
  protected generation = 0;
  private pending: string[] = [];
  private flushing = false;
  healthy = false;
  dropped = 0;

  constructor(protected readonly log: (msg: string, err?: unknown) => void) {}

  subscribe(handler: (event: GatehouseEvent) => void): void {
    this.handlers.push(handler);
  }

  onResync(handler: () => Promise<void>): void {
    this.resyncers.push(handler);
  }

  deliver(raw: string): void {
    this.dispatch(raw);
  }

  protected dispatch(raw: string): void {
    const event = parseEvent(raw);
    if (!event) {
      // Counted, and said once per 1 000: a flood of junk must not flood the log.
      if (this.dropped++ % 1000 === 0) this.log(`event bus: dropped a message that is not a valid event (${this.dropped} so far)`);
      return;
    }
    for (const h of this.handlers) h(event);
  }

  /** Delivers one serialized event to every node, or throws. */
  protected abstract send(raw: string): Promise<void>;

  /** Whether sending now is known to fail or hang (Redis: until the subscription is back). */
  protected knownDown(): boolean {
    return false;
  }

  async publish(event: GatehouseEvent): Promise<void> {
    const raw = JSON.stringify(event);
    if (this.knownDown()) return this.enqueue(raw);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), PUBLISH_WAIT_MS);
    });
    try {
      // A send still under way when the wait ends may yet arrive: then the queued copy is a harmless repeat.
      if ((await Promise.race([this.send(raw), late])) === 'late') return this.enqueue(raw);
    } catch (err) {
      return this.enqueue(raw, err);
    } finally {
      clearTimeout(timer);
    }
    if (this.pending.length) void this.flush();
  }

  private enqueue(raw: string, err?: unknown): void {
    if (this.pending.length === 0) this.log('could not publish an event; it will be sent again when the bus is back', err);
    if (this.pending.length >= MAX_PENDING) this.pending.shift();
    this.pending.push(raw);
  }

  /** Sends again what could not be sent; stops at the first failure. */
  protected async flush(): Promise<void> {
    if (this.flushing || this.closed) return;
    this.flushing = true;
    try {
      while (this.pending.length && !this.closed) {
        await this.send(this.pending[0]!);
        this.pending.shift();
      }
    } catch {
      // Still away: the next heartbeat or resync tries again.
    } finally {
      this.flushing = false;
    }
  }

  /** The subscription (of generation `gen`) is live: rebuild, then go fast. */
  protected async resync(gen: number): Promise<void> {
    for (const r of this.resyncers) await r();
    if (this.closed || gen !== this.generation) return;
    this.healthy = true;
    void this.flush();
  }

  /** The subscription may have missed events: every check goes to PostgreSQL until the next resync. */
  protected markLost(what: string, err?: unknown): void {
    this.generation++;
    if (this.healthy) this.log(`event bus (${what}) lost; checking PostgreSQL on every request until it is back`, err);
    this.healthy = false;
  }
}

/** One process, embedded database: nothing to miss. */
export class LocalBus extends BaseBus implements EventBus {
  readonly kind = 'local' as const;
  override healthy = true;
  async start(): Promise<void> {}
  protected async send(raw: string): Promise<void> {
    this.dispatch(raw);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

/**
 * PostgreSQL LISTEN/NOTIFY on a dedicated connection, reconnecting with
 * backoff; a heartbeat on that connection notices one that went silent.
 */
export class PgBus extends BaseBus implements EventBus {
  readonly kind = 'postgres' as const;
  private client: pg.Client | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private backoffMs = 100;

  constructor(
    private readonly url: string,
    private readonly notify: (channel: string, payload: string) => Promise<void>,
    log: (msg: string, err?: unknown) => void,
  ) {
    super(log);
  }

  async start(): Promise<void> {
    await this.connect().catch((err) => this.lost(undefined, err));
    this.heartbeat = setInterval(() => void this.beat(), HEARTBEAT_MS * 2);
    this.heartbeat.unref();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const gen = this.generation;
    const client = new pg.Client({
      connectionString: this.url,
      keepAlive: true,
      query_timeout: COMMAND_TIMEOUT_MS * 2,
      application_name: PG_LISTENER_NAME,
    });
    this.client = client;
    client.on('notification', (msg) => {
      if (msg.channel === CHANNEL && msg.payload) this.dispatch(msg.payload);
    });
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client));
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    await this.resync(gen);
    if (this.healthy) this.backoffMs = 100;
  }

  private async beat(): Promise<void> {
    const client = this.client;
    if (this.closed || !client || !this.healthy) return;
    try {
      await client.query('SELECT 1');
    } catch (err) {
      this.lost(client, err);
    }
  }

  /** `client`: the connection that failed (a stale one's late events are ignored). */
  private lost(client: pg.Client | undefined, err?: unknown): void {
    if (this.closed) return;
    if (client && client !== this.client) return;
    this.markLost('PostgreSQL LISTEN', err);
    const old = this.client;
    this.client = undefined;
    old?.removeAllListeners();
    old?.on('error', () => {});
    old?.end().catch(() => {});
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect().catch((e) => this.lost(undefined, e));
    }, this.backoffMs);
    this.retryTimer.unref();
    this.backoffMs = Math.min(this.backoffMs * 2, 5_000);
  }

  protected async send(raw: string): Promise<void> {
    await this.notify(CHANNEL, raw);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.healthy = false;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    const client = this.client;
    this.client = undefined;
    client?.removeAllListeners();
    client?.on('error', () => {});
    await client?.end().catch(() => {});
  }
}

/**
 * Redis pub/sub on `${prefix}events`: a subscriber connection and a command
 * connection (also used by the rate limiter). 'ready' → subscribe → resync
 * → healthy; 'close' → unhealthy; a heartbeat PING notices a Redis that
 * hangs as well as one that goes away, and retries a resync that failed.
 * Commands time out, so a hung Redis never holds a request for long.
 */
export class RedisBus extends BaseBus implements EventBus {
  readonly kind = 'redis' as const;
  private readonly sub: Redis;
  readonly pub: Redis;
  private heartbeat: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;

  readonly channel: string;

  /** From a URL, or from a host's client (duplicated with our timeouts; the host's own connection is never used or closed). */
  constructor(source: string | Redis, prefix: string, log: (msg: string, err?: unknown) => void) {
    super(log);
    this.channel = redisEventsChannel(prefix);
    const opts = {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      autoResubscribe: false,
      connectTimeout: 2_000,
      commandTimeout: COMMAND_TIMEOUT_MS,
      retryStrategy: (times: number) => Math.min(50 * 2 ** times, 2_000),
    };
    const connect = () => (typeof source === 'string' ? new Redis(source, opts) : source.duplicate(opts));
    this.sub = connect();
    this.pub = connect();
    this.sub.on('error', () => {});
    this.pub.on('error', () => {});
    this.sub.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.dispatch(message);
    });
    this.sub.on('ready', () => void this.onReady());
    this.sub.on('close', () => this.markLost('Redis'));
  }

  async start(): Promise<void> {
    await Promise.all([this.sub.connect().catch(() => {}), this.pub.connect().catch(() => {})]);
    this.heartbeat = setInterval(() => void this.beat(), REDIS_HEARTBEAT_MS);
    this.heartbeat.unref();
    // Start on the fast path when Redis is there; without it, in fallback mode.
    if (this.sub.status === 'ready' && !this.healthy) await this.onReady();
  }

  private onReady(): Promise<void> {
    if (this.closed) return Promise.resolve();
    // One resync at a time; a 'ready' that arrives meanwhile is picked up by the heartbeat.
    if (this.syncing) return this.syncing;
    const gen = this.generation;
    this.syncing = (async () => {
      try {
        await this.sub.subscribe(this.channel);
        await this.resync(gen);
      } catch (err) {
        // A resync that failed (PostgreSQL away) leaves the bus unhealthy; the heartbeat retries.
        if (gen === this.generation) this.log('event bus (Redis) resync failed; retrying', err);
      } finally {
        this.syncing = undefined;
      }
    })();
    return this.syncing;
  }

  protected override knownDown(): boolean {
    return !this.healthy;
  }

  private beating = false;

  private async beat(): Promise<void> {
    if (this.closed || this.beating) return;
    this.beating = true;
    try {
      await this.beatOnce();
    } finally {
      this.beating = false;
    }
  }

  private async beatOnce(): Promise<void> {
    if (!this.healthy) {
      // Connected but not synced (a resync failed, or raced a reconnect): try again.
      if (this.sub.status === 'ready' && !this.syncing) await this.onReady();
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.sub.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no PONG within ${REDIS_PING_TIMEOUT_MS} ms`)), REDIS_PING_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      this.markLost('Redis', err);
      this.sub.disconnect(true); // reconnect; 'ready' then resyncs
      return;
    } finally {
      clearTimeout(timer);
    }
    await this.flush();
  }

  protected async send(raw: string): Promise<void> {
    await this.pub.publish(this.channel, raw);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.healthy = false;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.sub.disconnect();
    this.pub.disconnect();
  }
}
