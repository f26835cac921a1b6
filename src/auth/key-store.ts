// Signing keys kept in PostgreSQL (migrations/auth/007_signing_keys.sql):
// ALGORITHM EdDSA, ES256 or RS256 with no configured private key. Private
// halves are sealed (sealed.ts) under a key derived from SECRET_KEY; a key
// sealed under a secret now listed in PREVIOUS_SECRET_KEYS still opens and
// is sealed again under the current one.
//
// The first node to start generates the first key (under an advisory lock:
// nodes starting together end up with one key). `rotate-keys` (src/cli.ts)
// adds a key that activates after the publish delay and writes a `keys`
// event in the same transaction (change feed, then NOTIFY or Redis): every
// node reloads within a second or so, and every 60 s anyway.
import type { Clock } from '../clock.js';
import type { Database, Queryable } from '../db/client.js';
import type { JwtAlgorithm } from './algorithms.js';
import { parsePrivateKey } from './algorithms.js';
import { feedInsert } from './change-feed.js';
import { deriveKey } from './derived-keys.js';
import type { EventBus } from './event-bus.js';
import type { KeyRing } from './key-ring.js';
import { asymmetricKey, generatePrivateKey, type SigningKey } from './keys.js';
import { seal, unseal } from './sealed.js';

type AsymmetricAlgorithm = Exclude<JwtAlgorithm, 'HS256'>;

/** Serializes key generation and rotation across nodes and the CLI ("ghky"). */
const KEYS_LOCK = 0x6768_6b79;
/** The event every node reloads its keys on (event-bus.ts). */
export const KEYS_EVENT = JSON.stringify({ type: 'keys' });
/** How often a node reloads its keys whatever the events did. */
export const KEYS_RELOAD_MS = 60_000;

export class KeyDecryptionError extends Error {
  constructor(kid: string) {
    super(
      `the stored signing key ${kid} cannot be decrypted with SECRET_KEY (nor with PREVIOUS_SECRET_KEYS): ` +
        'SECRET_KEY is not the one the key was stored with; restore it, or list the old one in PREVIOUS_SECRET_KEYS',
    );
    this.name = 'KeyDecryptionError';
  }
}

interface Row {
  kid: string;
  private_key: string;
  activates_at: Date;
}

export class KeyStore {
  private readonly sealKey: Buffer;
  private readonly openKeys: Buffer[];

  constructor(
    private readonly db: Database,
    private readonly algorithm: AsymmetricAlgorithm,
    secrets: { current: string; previous: readonly string[] },
  ) {
    this.sealKey = deriveKey(secrets.current, 'signing-key encryption v1');
    this.openKeys = [this.sealKey, ...secrets.previous.map((s) => deriveKey(s, 'signing-key encryption v1'))];
  }

  /** Makes sure a key exists: adopts `initialPem` (a legacy development key) or generates one, active at once. */
  async ensure(now: number, initialPem?: string): Promise<void> {
    const has = async (q: Queryable) =>
      (await q.query('SELECT 1 FROM signing_keys WHERE algorithm = $1 LIMIT 1', [this.algorithm])).rows.length > 0;
    if (await has(this.db)) return;
    const key = await asymmetricKey(this.algorithm, initialPem ? parsePrivateKey(initialPem) : generatePrivateKey(this.algorithm), now);
    await this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [KEYS_LOCK]);
      if (await has(tx)) return; // another node was first
      await this.insert(tx, key);
    });
  }

  /** Adds a key that signs from `activatesAt`; tells every node. Returns its kid and the kid of the key it supersedes. */
  async rotate(activatesAt: number): Promise<{ kid: string; previous: string | undefined }> {
    const key = await asymmetricKey(this.algorithm, generatePrivateKey(this.algorithm), activatesAt);
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [KEYS_LOCK]);
      const last = await tx.query<{ kid: string }>(
        'SELECT kid FROM signing_keys WHERE algorithm = $1 ORDER BY activates_at DESC LIMIT 1',
        [this.algorithm],
      );
      await this.insert(tx, key);
      // The change feed row, in the same transaction: no node misses the rotation.
      await tx.query(feedInsert('$1'), [KEYS_EVENT]);
      return { kid: key.kid, previous: last.rows[0]?.kid };
    });
  }

  private async insert(q: Queryable, key: SigningKey): Promise<void> {
    await q.query('INSERT INTO signing_keys (kid, algorithm, public_jwk, private_key, activates_at) VALUES ($1, $2, $3, $4, $5)', [
      key.kid,
      key.algorithm,
      JSON.stringify(key.jwk),
      seal(this.sealKey, key.signKey as string, key.kid),
      new Date(key.activatesAt),
    ]);
  }

  /** Every stored key of the algorithm, opened. Throws KeyDecryptionError when one cannot be. */
  async load(): Promise<SigningKey[]> {
    const rows = (
      await this.db.query<Row>('SELECT kid, private_key, activates_at FROM signing_keys WHERE algorithm = $1 ORDER BY activates_at', [this.algorithm])
    ).rows;
    const keys: SigningKey[] = [];
    for (const row of rows) {
      let pem: string | undefined;
      for (const [i, k] of this.openKeys.entries()) {
        pem = unseal(k, row.private_key, row.kid);
        if (pem === undefined) continue;
        if (i > 0) {
          // Sealed under a previous SECRET_KEY: sealed again under the current one.
          await this.db.query('UPDATE signing_keys SET private_key = $2 WHERE kid = $1', [row.kid, seal(this.sealKey, pem, row.kid)]);
        }
        break;
      }
      if (pem === undefined) throw new KeyDecryptionError(row.kid);
      const key = await asymmetricKey(this.algorithm, parsePrivateKey(pem), row.activates_at.getTime());
      // The row's kid names the key; a sealed key moved onto another row did not open (associated data).
      keys.push(key);
    }
    return keys;
  }

  /** Deletes keys no longer published (superseded long enough ago); the newest is never deleted. Returns how many. */
  async prune(ring: KeyRing, now: number): Promise<number> {
    // Keys added since the ring's last reload are newer than all it holds: never among these.
    const gone = ring.kids.filter((kid) => (ring.publishedUntil(kid) ?? Infinity) <= now);
    if (!gone.length) return 0;
    return (await this.db.query('DELETE FROM signing_keys WHERE kid = ANY($1::text[])', [gone])).rowCount;
  }
}

/**
 * Keeps a node's ring in step with the store: on a `keys` event (bus or
 * change feed), on a bus resync, and every KEYS_RELOAD_MS. A reload that
 * fails keeps the keys the node has (and is logged).
 */
export class KeyFollower {
  private timer: NodeJS.Timeout | undefined;
  private loading: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly store: KeyStore,
    private readonly ring: KeyRing,
    bus: EventBus,
    private readonly clock: Clock,
    private readonly warn: (msg: string, err?: unknown) => void,
  ) {
    bus.subscribe((e) => {
      if (e.type === 'keys') void this.reload();
    });
    bus.onResync(() => this.reload());
  }

  start(): void {
    this.timer = setInterval(() => void this.reload(), KEYS_RELOAD_MS);
    this.timer.unref();
  }

  /** One reload at a time; one asked for meanwhile runs after it. */
  reload(): Promise<void> {
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = (async () => {
      do {
        this.again = false;
        try {
          const keys = await this.store.load();
          if (keys.length) this.ring.replace(keys);
        } catch (err) {
          this.warn('could not reload the signing keys; keeping the ones loaded', err);
        }
      } while (this.again);
    })().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  prune(): Promise<number> {
    return this.store.prune(this.ring, this.clock.now());
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
