// Cross-node events: revocations and user-state changes. Each node keeps a
// local copy of what the request path needs (denylist, user states) and
// this bus keeps the copies in step. While the bus is not `healthy` (its
// connection dropped, events may have been missed) the request path asks
// PostgreSQL instead; on reconnect every `onResync` handler rebuilds the
// local copy from PostgreSQL before the fast path resumes.
import { Redis } from 'ioredis';
import pg from 'pg';

export type GatehouseEvent =
  | { type: 'user'; id: string }
  | { type: 'jti'; jti: string; until: number }
  | { type: 'sid'; sid: string; until: number };

export interface EventBus {
  readonly kind: 'local' | 'postgres' | 'redis';
  readonly healthy: boolean;
  publish(event: GatehouseEvent): Promise<void>;
  subscribe(handler: (event: GatehouseEvent) => void): void;
  onResync(handler: () => Promise<void>): void;
  start(): Promise<void>;
  close(): Promise<void>;
}

const CHANNEL = 'gatehouse_events';

abstract class BaseBus {
  protected handlers: Array<(e: GatehouseEvent) => void> = [];
  protected resyncers: Array<() => Promise<void>> = [];
  protected closed = false;
  healthy = false;

  constructor(protected readonly log: (msg: string, err?: unknown) => void) {}

  subscribe(handler: (event: GatehouseEvent) => void): void {
    this.handlers.push(handler);
  }

  onResync(handler: () => Promise<void>): void {
    this.resyncers.push(handler);
  }

  protected dispatch(raw: string): void {
    let event: GatehouseEvent;
    try {
      event = JSON.parse(raw) as GatehouseEvent;
    } catch {
      return;
    }
    for (const h of this.handlers) h(event);
  }

  /** Called once the subscription is live again: rebuild, then go fast. */
  protected async resync(): Promise<void> {
    for (const r of this.resyncers) await r();
    if (!this.closed) this.healthy = true;
  }
}

/** One process, embedded database: nothing to miss. */
export class LocalBus extends BaseBus implements EventBus {
  readonly kind = 'local' as const;
  override healthy = true;
  async start(): Promise<void> {}
  async publish(event: GatehouseEvent): Promise<void> {
    this.dispatch(JSON.stringify(event));
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

/** PostgreSQL LISTEN/NOTIFY on a dedicated connection, reconnecting with backoff. */
export class PgBus extends BaseBus implements EventBus {
  readonly kind = 'postgres' as const;
  private client: pg.Client | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs = 100;

  constructor(
    private readonly url: string,
    private readonly notify: (channel: string, payload: string) => Promise<void>,
    log: (msg: string, err?: unknown) => void,
  ) {
    super(log);
  }

  async start(): Promise<void> {
    await this.connect().catch((err) => this.lost(err));
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url, keepAlive: true });
    this.client = client;
    client.on('notification', (msg) => {
      if (msg.channel === CHANNEL && msg.payload) this.dispatch(msg.payload);
    });
    client.on('error', (err) => this.lost(err));
    client.on('end', () => this.lost());
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    await this.resync();
    this.backoffMs = 100;
  }

  private lost(err?: unknown): void {
    if (this.closed) return;
    const wasHealthy = this.healthy;
    this.healthy = false;
    if (wasHealthy) this.log('event bus (PostgreSQL LISTEN) lost; checking PostgreSQL on every request until it is back', err);
    const client = this.client;
    this.client = undefined;
    client?.removeAllListeners();
    client?.on('error', () => {});
    client?.end().catch(() => {});
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect().catch((e) => this.lost(e));
    }, this.backoffMs);
    this.retryTimer.unref();
    this.backoffMs = Math.min(this.backoffMs * 2, 5_000);
  }

  async publish(event: GatehouseEvent): Promise<void> {
    await this.notify(CHANNEL, JSON.stringify(event));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.healthy = false;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.client?.end().catch(() => {});
  }
}

/**
 * Redis pub/sub. A subscriber connection and a command connection; a
 * heartbeat notices a Redis that hangs as well as one that goes away.
 */
export class RedisBus extends BaseBus implements EventBus {
  readonly kind = 'redis' as const;
  private readonly sub: Redis;
  readonly pub: Redis;
  private heartbeat: NodeJS.Timeout | undefined;
  private syncing = false;

  private readonly channel: string;

  constructor(url: string, prefix: string, log: (msg: string, err?: unknown) => void) {
    super(log);
    this.channel = `${prefix}events`;
    const opts = {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      autoResubscribe: false,
      connectTimeout: 2_000,
      retryStrategy: (times: number) => Math.min(50 * 2 ** times, 2_000),
    };
    this.sub = new Redis(url, opts);
    this.pub = new Redis(url, { ...opts, enableOfflineQueue: false });
    this.sub.on('error', () => {});
    this.pub.on('error', () => {});
    this.sub.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.dispatch(message);
    });
    this.sub.on('ready', () => void this.onReady());
    this.sub.on('close', () => this.lost());
  }

  async start(): Promise<void> {
    await Promise.all([this.sub.connect().catch(() => {}), this.pub.connect().catch(() => {})]);
    this.heartbeat = setInterval(() => void this.beat(), 1_000);
    this.heartbeat.unref();
    if (this.sub.status === 'ready' && !this.healthy && !this.syncing) await this.onReady();
  }

  private async onReady(): Promise<void> {
    if (this.syncing || this.closed) return;
    this.syncing = true;
    try {
      await this.sub.subscribe(this.channel);
      await this.resync();
    } catch (err) {
      this.lost(err);
    } finally {
      this.syncing = false;
    }
  }

  private async beat(): Promise<void> {
    if (!this.healthy) return;
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('Redis heartbeat timed out')), 1_000).unref());
    try {
      await Promise.race([this.sub.ping(), timeout]);
    } catch (err) {
      this.lost(err);
      this.sub.disconnect(true); // reconnect, then onReady resyncs
    }
  }

  private lost(err?: unknown): void {
    if (this.closed) return;
    if (this.healthy) this.log('event bus (Redis) lost; checking PostgreSQL on every request until it is back', err);
    this.healthy = false;
  }

  async publish(event: GatehouseEvent): Promise<void> {
    // PostgreSQL already holds the change; peers that miss this message are
    // in fallback mode (their subscription is down too) and will resync.
    await this.pub.publish(this.channel, JSON.stringify(event)).catch((err) => this.log('could not publish to Redis', err));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.healthy = false;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.sub.disconnect();
    this.pub.disconnect();
  }
}
