// The signing algorithms and the private key each one needs. Shared by
// config.ts (which refuses a wrong key at start, naming the variable) and
// keys.ts (which loads the key); neither imports the other.
import { createPrivateKey, type JsonWebKey, type KeyObject } from 'node:crypto';

export const ALGORITHMS = ['HS256', 'EdDSA', 'ES256', 'RS256'] as const;
export type JwtAlgorithm = (typeof ALGORITHMS)[number];

/** What is wrong with this key for this algorithm, or undefined. */
export function keyProblem(algorithm: JwtAlgorithm, key: KeyObject): string | undefined {
  const expected = { EdDSA: 'ed25519', ES256: 'ec', RS256: 'rsa' }[algorithm as 'EdDSA' | 'ES256' | 'RS256'];
  if (key.type !== 'private') return 'needs a private key';
  if (key.asymmetricKeyType !== expected) return `needs a ${expected} private key, got ${key.asymmetricKeyType}`;
  if (algorithm === 'ES256' && key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') return 'needs a P-256 key';
  // RFC 7518 §3.3: 2048 bits or more.
  if (algorithm === 'RS256' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) return 'needs an RSA key of at least 2048 bits';
  return undefined;
}

/** A configured private key: PEM, or a private JWK as JSON. Throws when it is neither. */
export function parsePrivateKey(text: string): KeyObject {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) return createPrivateKey({ key: JSON.parse(trimmed) as JsonWebKey, format: 'jwk' });
  return createPrivateKey(text);
}

/** What is wrong with a configured private key for this algorithm, or undefined (config.ts reports it as JWT_PRIVATE_KEY). */
export function privateKeyProblem(algorithm: JwtAlgorithm, text: string): string | undefined {
  let key: KeyObject;
  try {
    key = parsePrivateKey(text);
  } catch {
    return 'is not a PEM private key or a private JWK';
  }
  return keyProblem(algorithm, key);
}
