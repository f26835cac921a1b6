// Keys derived from SECRET_KEY, one per purpose (HKDF-SHA256, RFC 5869, with
// the purpose as its info label): no two uses share a key, and each can be
// kept or rotated on its own when the secret changes.
import { hkdfSync } from 'node:crypto';

export type KeyPurpose = 'refresh-token successor v1' | 'mfa secret box v1';

export function deriveKey(secret: string, purpose: KeyPurpose, bytes = 32): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.alloc(0), `gatehouse ${purpose}`, bytes));
}
