// Secrets kept at rest that must be recoverable: AES-256-GCM under a key
// derived from SECRET_KEY for one purpose (derived-keys.ts), bound to what
// they belong to by associated data (a sealed value copied onto another row
// does not open). Format: "v1.<iv>.<ciphertext>.<tag>", base64url.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export function seal(key: Buffer, plaintext: string, aad: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['v1', iv, ct, cipher.getAuthTag()].map((x) => (typeof x === 'string' ? x : x.toString('base64url'))).join('.');
}

/** The plaintext, or undefined when `key` (or the associated data) is not the one it was sealed with. */
export function unseal(key: Buffer, sealed: string, aad: string): string | undefined {
  const [v, iv, ct, tag] = sealed.split('.');
  if (v !== 'v1' || iv === undefined || ct === undefined || tag === undefined) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}
