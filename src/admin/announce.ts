// Telling running nodes that a user changed, from outside a node (the CLI).
// Nodes cache user states and forget one on a `{type: "user"}` event (see
// src/auth/event-bus.ts): on PostgreSQL LISTEN/NOTIFY when only DATABASE_URL
// is set, on Redis pub/sub (`${REDIS_PREFIX}events`) when REDIS_URL is set.
// The embedded database needs nothing: no node can be running on it while
// the CLI holds its data directory.
import { Redis } from 'ioredis';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';

/** The channel names of src/auth/event-bus.ts (a node's bus). */
export const PG_EVENTS_CHANNEL = 'gatehouse_events';
export const redisEventsChannel = (prefix: string) => `${prefix}events`;

/** Returns the ways the change could not be announced (empty: every node hears of it). */
export async function announceUserChange(db: Database, config: Config, userId: string): Promise<string[]> {
  return announce(db, config, JSON.stringify({ type: 'user', id: userId }));
}

/** Sends one event (src/auth/event-bus.ts parseEvent) to every running node; returns the ways it could not be sent. */
export async function announce(db: Database, config: Config, payload: string): Promise<string[]> {
  const failed: string[] = [];
  if (db.kind === 'postgres') {
    // Harmless when the nodes listen on Redis instead.
    await db.query('SELECT pg_notify($1, $2)', [PG_EVENTS_CHANNEL, payload]).catch(() => failed.push('PostgreSQL NOTIFY'));
  }
  if (config.redisUrl) {
    const redis = new Redis(config.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000, retryStrategy: () => null });
    redis.on('error', () => {});
    try {
      await redis.connect();
      await redis.publish(redisEventsChannel(config.redisPrefix), payload);
    } catch {
      failed.push('Redis');
    } finally {
      redis.disconnect();
    }
  }
  return failed;
}
