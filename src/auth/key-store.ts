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
//
// Changing ALGORITHM is a rotation with no publish delay: every node, with
// stored keys or not, records at start which algorithm signs
// (011_signing_algorithms.sql), so the previous one is retired at one
// instant for all nodes and restarts. Its keys (stored ones, or SECRET_KEY
// and PREVIOUS_SECRET_KEYS for HS256) verify, and stored ones are published,
// until every token they can have signed has expired; then housekeeping
// deletes them.
import type { Clock } from '../clock.js';
import type { Database, Queryable } from '../db/client.js';
import type { JwtAlgorithm } from './algorithms.js';
import { parsePrivateKey } from './algorithms.js';
import { feedInsert } from './change-feed.js';
import { deriveKey } from './derived-keys.js';
import type { EventBus } from './event-bus.js';
import type { KeyRing, RetiredKey } from './key-ring.js';
import { asymmetricKey, generatePrivateKey, hmacKey, type SigningKey } from './keys.js';
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
  algorithm: JwtAlgorithm;
  private_key: string;
  activates_at: Date;
}

/** What a node's ring holds (KeyRing.replace). */
export interface RingKeys {
  /** The configured algorithm's keys: configuration's, or the stored ones. */
  keys: SigningKey[];
  /** Keys of the algorithms it replaced, verify only. */
  retired: RetiredKey[];
}

export class KeyStore {
  private readonly sealKey: Buffer;
  private readonly openKeys: Buffer[];
  private readonly secrets: readonly string[];

  constructor(
    private readonly db: Database,
    private readonly algorithm: JwtAlgorithm,
    secrets: { current: string; previous: readonly string[] },
    private readonly opts: {
      /** The keys configuration fixes (keys.ts configuredKeys): then none of this algorithm is stored. */
      fixed?: SigningKey[];
      /** Told about a stored key of a retired algorithm that no secret opens (its tokens are refused). */
      warn?: (msg: string) => void;
    } = {},
  ) {
    this.sealKey = deriveKey(secrets.current, 'signing-key encryption v1');
    this.openKeys = [this.sealKey, ...secrets.previous.map((s) => deriveKey(s, 'signing-key encryption v1'))];
    this.secrets = [secrets.current, ...secrets.previous];
  }

  private get asymmetric(): AsymmetricAlgorithm {
    if (this.algorithm === 'HS256') throw new Error('HS256 keys are SECRET_KEY: none is stored');
    return this.algorithm;
  }

  private async hasKey(q: Queryable): Promise<boolean> {
    return (await q.query('SELECT 1 FROM signing_keys WHERE algorithm = $1 LIMIT 1', [this.algorithm])).rows.length > 0;
  }

  /** Under the keys lock: stores a first key if there is none, adopting `initialPem` (a legacy development key) or generating one, active at once. */
  private async storeFirstKey(tx: Queryable, now: number, initialPem: string | undefined): Promise<void> {
    if (await this.hasKey(tx)) return; // another node was first
    await this.insert(tx, await asymmetricKey(this.asymmetric, initialPem ? parsePrivateKey(initialPem) : generatePrivateKey(this.asymmetric), now));
  }

  /** Makes sure a key exists (rotate-keys: without recording which algorithm signs). */
  async ensure(now: number, initialPem?: string): Promise<void> {
    if (await this.hasKey(this.db)) return;
    await this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [KEYS_LOCK]);
      await this.storeFirstKey(tx, now, initialPem);
    });
  }

  /**
   * At a node's start: records that ALGORITHM signs from `now`, retiring any
   * other; with no configured key, makes sure one is stored (as ensure). A
   * change of algorithm tells the running nodes (their rings learn the new
   * keys, or the retirement). Returns the algorithms this start retired
   * (none unless ALGORITHM changed), for the audit log.
   */
  async start(now: number, initialPem?: string): Promise<{ retired: string[] }> {
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [KEYS_LOCK]);
      const at = new Date(now);
      const retired = await tx.query<{ algorithm: string }>(
        'UPDATE signing_algorithms SET retired_at = $2 WHERE algorithm <> $1 AND retired_at IS NULL RETURNING algorithm',
        [this.algorithm, at],
      );
      const resumed = await tx.query(
        `INSERT INTO signing_algorithms (algorithm) VALUES ($1)
         ON CONFLICT (algorithm) DO UPDATE SET retired_at = NULL WHERE signing_algorithms.retired_at IS NOT NULL`,
        [this.algorithm],
      );
      if (!this.opts.fixed) await this.storeFirstKey(tx, now, initialPem);
      if (this.algorithm !== 'HS256') {
        // HS256 before this was recorded: it stopped when this algorithm's first stored key came (the switch, or
        // the first start of a new deployment); with none stored (a configured key), long ago. Never later: a
        // holder of SECRET_KEY must not mint tokens we accept past that.
        await tx.query(
          `INSERT INTO signing_algorithms (algorithm, retired_at)
           VALUES ('HS256', COALESCE((SELECT min(activates_at) FROM signing_keys WHERE algorithm = $1), 'epoch'))
           ON CONFLICT (algorithm) DO NOTHING`,
          [this.algorithm],
        );
      }
      if (retired.rowCount || resumed.rowCount) await tx.query(feedInsert('$1'), [KEYS_EVENT]);
      return { retired: retired.rows.map((r) => r.algorithm).sort() };
    });
  }

  /** Adds a key that signs from `activatesAt`; tells every node. Returns its kid and the kid of the key it supersedes. */
  async rotate(activatesAt: number): Promise<{ kid: string; previous: string | undefined }> {
    const key = await asymmetricKey(this.asymmetric, generatePrivateKey(this.asymmetric), activatesAt);
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

  /** The opened private key (PEM), sealed again under SECRET_KEY if it was under a previous one; undefined if none opens it. */
  private async open(row: Row): Promise<string | undefined> {
    for (const [i, k] of this.openKeys.entries()) {
      const pem = unseal(k, row.private_key, row.kid);
      if (pem === undefined) continue;
      if (i > 0) await this.db.query('UPDATE signing_keys SET private_key = $2 WHERE kid = $1', [row.kid, seal(this.sealKey, pem, row.kid)]);
      return pem;
    }
    return undefined;
  }

  /**
   * The ring's keys: this algorithm's (configured, or stored and opened:
   * throws KeyDecryptionError when one cannot be), and those of retired
   * algorithms with their retirement. A retired key is opened too: only a
   * key sealed by a holder of SECRET_KEY is accepted, never a row someone
   * merely wrote.
   */
  async load(): Promise<RingKeys> {
    const retiredAt = new Map(
      (await this.db.query<{ algorithm: JwtAlgorithm; retired_at: Date | null }>('SELECT algorithm, retired_at FROM signing_algorithms')).rows.map((r) => [
        r.algorithm,
        r.retired_at?.getTime() ?? null,
      ]),
    );
    const rows = (await this.db.query<Row>('SELECT kid, algorithm, private_key, activates_at FROM signing_keys ORDER BY activates_at')).rows;
    const keys: SigningKey[] = this.opts.fixed ? [...this.opts.fixed] : [];
    const retired: RetiredKey[] = [];
    for (const row of rows) {
      const current = row.algorithm === this.algorithm;
      const at = retiredAt.get(row.algorithm);
      // Stored keys of a configured one are not used; a key of an algorithm never recorded is not ours to accept.
      if (current ? this.opts.fixed !== undefined : at === undefined) continue;
      const pem = await this.open(row);
      if (pem === undefined) {
        if (current) throw new KeyDecryptionError(row.kid);
        this.opts.warn?.(`the stored ${row.algorithm} key ${row.kid} of a previous ALGORITHM cannot be decrypted with SECRET_KEY (nor with PREVIOUS_SECRET_KEYS): tokens it signed are refused`);
        continue;
      }
      // The row's kid names the key; a sealed key moved onto another row did not open (associated data).
      const key = await asymmetricKey(row.algorithm, parsePrivateKey(pem), row.activates_at.getTime());
      if (current) keys.push(key);
      else retired.push({ key: { ...key, signKey: undefined }, retiredAt: at! });
    }
    const hs256 = retiredAt.get('HS256');
    if (this.algorithm !== 'HS256' && hs256 !== undefined) {
      for (const secret of new Set(this.secrets)) retired.push({ key: hmacKey(secret, false), retiredAt: hs256 });
    }
    return { keys, retired };
  }

  /**
   * Deletes keys no longer published: this algorithm's superseded long
   * enough ago (the newest is never among them), and every key of an
   * algorithm retired long enough ago. Returns how many.
   */
  async prune(ring: KeyRing, now: number): Promise<number> {
    // Keys added since the ring's last reload are newer than all it holds: never among these.
    const gone = ring.kids.filter((kid) => (ring.publishedUntil(kid) ?? Infinity) <= now);
    // Under the lock: a node starting with a retired algorithm again either sees its keys gone (and makes one) or keeps them.
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [KEYS_LOCK]);
      const retired = (
        await tx.query<{ algorithm: string; retired_at: Date }>('SELECT algorithm, retired_at FROM signing_algorithms WHERE algorithm <> $1 AND retired_at IS NOT NULL', [
          this.algorithm,
        ])
      ).rows.filter((r) => ring.retiredUntil(r.retired_at.getTime()) <= now);
      const deleted = await tx.query('DELETE FROM signing_keys WHERE (algorithm = $1 AND kid = ANY($2::text[])) OR algorithm = ANY($3::text[])', [
        this.algorithm,
        gone,
        retired.map((r) => r.algorithm),
      ]);
      return deleted.rowCount;
    });
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
          const { keys, retired } = await this.store.load();
          if (keys.length) this.ring.replace(keys, retired);
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
