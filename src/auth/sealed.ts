// Secrets kept at rest that must be recoverable: AES-256-GCM under a key
// derived from SECRET_KEY for one purpose (derived-keys.ts), bound to what
// they belong to by associated data (a sealed value copied onto another row
// does not open). The one place AES-256-GCM is used: sealBytes/openBytes
// (iv‖tag‖ciphertext) for callers with their own framing (secret-box.ts, the
// mail outbox), seal/unseal for text: "v1.<iv>.<ciphertext>.<tag>", base64url.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export const IV_BYTES = 12;
export const TAG_BYTES = 16;

/** iv‖tag‖ciphertext, a fresh random iv each time. */
export function sealBytes(key: Buffer, plaintext: Buffer | string, aad: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([typeof plaintext === 'string' ? cipher.update(plaintext, 'utf8') : cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), ct]);
}

/** The plaintext, or undefined when `key` (or the associated data) is not the one it was sealed with, or `sealed` was altered. */
export function openBytes(key: Buffer, sealed: Buffer | Uint8Array, aad: string): Buffer | undefined {
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (buf.length < IV_BYTES + TAG_BYTES) return undefined;
  try {
    // The tag length is fixed: GCM would otherwise accept a truncated tag.
    const decipher = createDecipheriv('aes-256-gcm', key, buf.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(buf.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    return Buffer.concat([decipher.update(buf.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
  } catch {
    return undefined;
  }
}

export function seal(key: Buffer, plaintext: string, aad: string): string {
  const sealed = sealBytes(key, plaintext, aad);
  const [iv, tag, ct] = [sealed.subarray(0, IV_BYTES), sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES), sealed.subarray(IV_BYTES + TAG_BYTES)];
  return ['v1', ...[iv, ct, tag].map((x) => x.toString('base64url'))].join('.');
}

/** The plaintext, or undefined when `key` (or the associated data) is not the one it was sealed with. */
export function unseal(key: Buffer, sealed: string, aad: string): string | undefined {
  const [v, ivText, ctText, tagText] = sealed.split('.');
  if (v !== 'v1' || ivText === undefined || ctText === undefined || tagText === undefined) return undefined;
  const [iv, ct, tag] = [ivText, ctText, tagText].map((x) => Buffer.from(x, 'base64url')) as [Buffer, Buffer, Buffer];
  // Checked before joining the parts: a short tag would otherwise borrow ciphertext bytes.
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) return undefined;
  return openBytes(key, Buffer.concat([iv, tag, ct]), aad)?.toString('utf8');
}
