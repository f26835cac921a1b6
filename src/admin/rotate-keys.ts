// `npm run cli -- rotate-keys`: a new signing key, published at once, signing
// after KEY_PUBLISH_DELAY_SECONDS; the key signing now is retired then and
// stays published until every token it signed has expired (each node works
// that out from its own token lifetime), then housekeeping deletes it.
// Running nodes reload their keys on the event (change feed row written
// with the key, plus NOTIFY or Redis at once), and every minute anyway.
import type { FastifyBaseLogger } from 'fastify';
import { AuditLog } from '../auth/audit.js';
import { KEYS_EVENT, KeyStore } from '../auth/key-store.js';
import { legacyDevelopmentKey } from '../auth/keys.js';
import { systemClock, type Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { announce } from './announce.js';

export class RotationRefused extends Error {}

export interface Rotation {
  kid: string;
  previous: string | undefined;
  activatesAt: Date;
  /** The ways running nodes could not be told at once (they reload within a minute anyway). */
  unannounced: string[];
}

export async function rotateKeys(db: Database, config: Config, clock: Clock = systemClock): Promise<Rotation> {
  if (config.algorithm === 'HS256') {
    throw new RotationRefused('ALGORITHM is HS256: rotate by setting a new SECRET_KEY and listing the old one in PREVIOUS_SECRET_KEYS');
  }
  if (config.jwtPrivateKey) {
    throw new RotationRefused('a private key is configured (JWT_PRIVATE_KEY): it is rotated by configuration; unset it to let the service keep and rotate its own keys');
  }
  const store = new KeyStore(db, config.algorithm, { current: config.secretKey, previous: config.previousSecretKeys });
  const now = clock.now();
  await store.ensure(now, legacyDevelopmentKey(config.algorithm, config.dataDir));
  // Refuses (KeyDecryptionError) when SECRET_KEY is not the one the keys were stored with: no key added that no node can open.
  await store.load();
  const activatesAt = new Date(now + config.keyPublishDelaySeconds * 1000);
  const { kid, previous } = await store.rotate(activatesAt.getTime());
  const unannounced = await announce(db, config, KEYS_EVENT);
  await recordRotation(db, config, clock, { kid, previous, activates_at: activatesAt.toISOString(), algorithm: config.algorithm });
  return { kid, previous, activatesAt, unannounced };
}

async function recordRotation(db: Database, config: Config, clock: Clock, detail: Record<string, unknown>): Promise<void> {
  const log = {
    warn: (_o: unknown, msg: string) => console.warn(`gatehouse: ${msg}`),
    error: (_o: unknown, msg: string) => console.error(`gatehouse: ${msg}`),
  } as unknown as FastifyBaseLogger;
  const audit = new AuditLog(db, clock, { enabled: true, retentionMs: config.auditRetentionDays * 86_400_000, flushMs: 1000, batchSize: 10, maxBuffered: 10 }, log);
  audit.record({ type: 'keys_rotated', detail });
  await audit.close();
}
