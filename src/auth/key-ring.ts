// The keys a node signs and verifies with, at a given instant.
//
// Keys that sign form a chain ordered by activation: at any instant the
// latest one already active signs; the one after it is "next" (published,
// not yet signing); one that a later key superseded is "retired" and stays
// published (and accepted) until every token it can have signed has
// expired: superseded at + access token lifetime + leeway. Keys that only
// verify (previous HS256 secrets) are accepted for as long as they are
// configured. Keys of an algorithm no longer configured (key-store.ts) only
// verify, and by the same rule: until its retirement + lifetime + leeway.
//
// The ring holds a snapshot; `replace` swaps it (a reload from PostgreSQL
// after a rotation). Signing and verifying read it without waiting.
import type { JsonWebKey } from 'node:crypto';
import type { SigningKey } from './keys.js';

/** A key of an algorithm that ALGORITHM no longer names: it verifies, never signs. */
export interface RetiredKey {
  key: SigningKey;
  /** When its algorithm stopped signing (ms); null while some node still signs with it. */
  retiredAt: number | null;
}

export class KeyRing {
  /** Signing keys, oldest activation first. */
  private chain: SigningKey[] = [];
  private byKid = new Map<string, { key: SigningKey; until: number }>();

  constructor(
    /** Until when (ms) a key superseded at `atMs` is published and accepted. */
    readonly retiredUntil: (atMs: number) => number,
    keys?: SigningKey[],
  ) {
    if (keys) this.replace(keys);
  }

  replace(fresh: SigningKey[], retired: RetiredKey[] = []): void {
    if (!fresh.some((k) => k.signKey)) throw new Error('no signing key');
    // A kid names one key for good: the object already held is kept (and the verifier cached for it).
    const held = (k: SigningKey) => this.byKid.get(k.kid)?.key ?? k;
    const keys = fresh.map(held);
    const chain = keys.filter((k) => k.signKey).sort((a, b) => a.activatesAt - b.activatesAt);
    const byKid = new Map<string, { key: SigningKey; until: number }>();
    chain.forEach((key, i) => {
      const next = chain[i + 1];
      byKid.set(key.kid, { key, until: next ? this.retiredUntil(next.activatesAt) : Infinity });
    });
    for (const key of keys) if (!key.signKey) byKid.set(key.kid, { key, until: Infinity });
    for (const r of retired) {
      if (!byKid.has(r.key.kid)) byKid.set(r.key.kid, { key: held(r.key), until: r.retiredAt === null ? Infinity : this.retiredUntil(r.retiredAt) });
    }
    this.chain = chain;
    this.byKid = byKid;
  }

  /** The key that signs at `now`: the latest active one (or, with a clock before them all, the first). */
  signer(now: number): SigningKey {
    let signer = this.chain[0]!;
    for (const key of this.chain) if (key.activatesAt <= now) signer = key;
    return signer;
  }

  /** The key a kid names, if it is published at `now`; undefined for anything else. */
  find(kid: unknown, now: number): SigningKey | undefined {
    if (typeof kid !== 'string') return undefined;
    const entry = this.byKid.get(kid);
    return entry && entry.until > now ? entry.key : undefined;
  }

  /** Until when (ms) a key is published; Infinity while nothing superseded it. */
  publishedUntil(kid: string): number | undefined {
    return this.byKid.get(kid)?.until;
  }

  /** The public keys published at `now` (the one signing first). */
  jwks(now: number): JsonWebKey[] {
    const signer = this.signer(now);
    return [...this.byKid.values()]
      .filter((e) => e.key.jwk && e.until > now)
      .sort((a, b) => Number(b.key === signer) - Number(a.key === signer) || b.key.activatesAt - a.key.activatesAt)
      .map((e) => e.key.jwk!);
  }

  /** Every key's kid, for logs and tests. */
  get kids(): string[] {
    return [...this.byKid.keys()];
  }
}
