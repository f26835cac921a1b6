// Secrets the service must read back (TOTP seeds), sealed at rest with
// AES-256-GCM under a key derived from SECRET_KEY by HKDF with a label of its
// own. A sealed value names the key that sealed it (a short id derived from
// the key), so a box made of the current secret and earlier ones (rotation)
// opens values sealed under any of them, and `stale` says which to reseal.
// The associated data binds a value to its owner: a sealed secret copied
// onto another account does not open.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { deriveKey } from './derived-keys.js';

const VERSION = 'v1';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

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
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(Buffer.from(`${VERSION}.${id}.${owner}`, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return [VERSION, id, nonce.toString('base64url'), body.toString('base64url')].join('.');
  }

  /** The plaintext; throws when no key of the box opens it or it was altered (or belongs to another owner). */
  open(sealed: string, owner: string): string {
    const [version, id, nonceText, bodyText, extra] = sealed.split('.');
    const entry = this.keys.find((k) => k.id === id);
    if (version !== VERSION || !entry || !nonceText || !bodyText || extra !== undefined) throw new Error('sealed secret: unknown format or key');
    const nonce = Buffer.from(nonceText, 'base64url');
    const body = Buffer.from(bodyText, 'base64url');
    if (nonce.length !== NONCE_BYTES || body.length < TAG_BYTES) throw new Error('sealed secret: malformed');
    const decipher = createDecipheriv('aes-256-gcm', entry.key, nonce);
    decipher.setAAD(Buffer.from(`${version}.${id}.${owner}`, 'utf8'));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
  }

  /** Sealed under an earlier key: reseal it with the current one when convenient. */
  stale(sealed: string): boolean {
    return sealed.split('.')[1] !== this.keys[0]!.id;
  }
}
