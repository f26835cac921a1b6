// Secrets the service must read back (TOTP seeds), sealed at rest with
// AES-256-GCM under a key derived from SECRET_KEY by HKDF with a label of its
// own. A sealed value names the key that sealed it (a short id derived from
// the key), so a box made of the current secret and earlier ones (rotation)
// opens values sealed under any of them, and `stale` says which to reseal.
// The associated data binds a value to its owner: a sealed secret copied
// onto another account does not open. The cipher itself is sealed.ts's.
import { createHash } from 'node:crypto';
import { deriveKey } from './derived-keys.js';
import { IV_BYTES, openBytes, sealBytes, TAG_BYTES } from './sealed.js';

const VERSION = 'v1';

interface BoxKey {
  id: string;
  key: Buffer;
}

export class SecretBox {
  private readonly keys: BoxKey[];

  /** `secrets[0]` seals; every one of them opens (the later ones: previous secrets, during a rotation). */
  constructor(secrets: readonly string[]) {
    if (secrets.length === 0) throw new Error('SecretBox needs at least one secret');
    this.keys = secrets.map((s) => {
      const key = deriveKey(s, 'mfa secret box v1');
      // Names the key without revealing anything usable about it.
      const id = createHash('sha256').update('gatehouse secret-box key id').update(key).digest('base64url').slice(0, 8);
      return { id, key };
    });
  }

  /** `v1.<key id>.<nonce>.<ciphertext><tag>`, base64url parts. */
  seal(plaintext: string, owner: string): string {
    const { id, key } = this.keys[0]!;
    // sealBytes' iv‖tag‖ciphertext, laid out as this format has it.
    const sealed = sealBytes(key, plaintext, `${VERSION}.${id}.${owner}`);
    const nonce = sealed.subarray(0, IV_BYTES);
    const body = Buffer.concat([sealed.subarray(IV_BYTES + TAG_BYTES), sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES)]);
    return [VERSION, id, nonce.toString('base64url'), body.toString('base64url')].join('.');
  }

  /** The plaintext; throws when no key of the box opens it or it was altered (or belongs to another owner). */
  open(sealed: string, owner: string): string {
    const [version, id, nonceText, bodyText, extra] = sealed.split('.');
    const entry = this.keys.find((k) => k.id === id);
    if (version !== VERSION || !entry || !nonceText || !bodyText || extra !== undefined) throw new Error('sealed secret: unknown format or key');
    const nonce = Buffer.from(nonceText, 'base64url');
    const body = Buffer.from(bodyText, 'base64url');
    if (nonce.length !== IV_BYTES || body.length < TAG_BYTES) throw new Error('sealed secret: malformed');
    const tag = body.subarray(body.length - TAG_BYTES);
    const plaintext = openBytes(entry.key, Buffer.concat([nonce, tag, body.subarray(0, body.length - TAG_BYTES)]), `${version}.${id}.${owner}`);
    if (plaintext === undefined) throw new Error('sealed secret: altered, or sealed for another owner');
    return plaintext.toString('utf8');
  }

  /** Sealed under an earlier key: reseal it with the current one when convenient. */
  stale(sealed: string): boolean {
    return sealed.split('.')[1] !== this.keys[0]!.id;
  }
}
