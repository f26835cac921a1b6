// Signing keys: what each one is, and the keys configuration gives.
//
// HS256 uses the UTF-8 bytes of SECRET_KEY as the key, exactly as FastAPI
// apps do; PREVIOUS_SECRET_KEYS still verify, only SECRET_KEY signs. EdDSA,
// ES256 and RS256 use a private key: a configured one (JWT_PRIVATE_KEY, PEM
// or JWK) wins; otherwise the service keeps its keys in PostgreSQL
// (key-store.ts) and rotates them. Every key has its own kid and its one
// algorithm: a token is checked only with the key its kid names, only by
// that key's algorithm (no algorithm confusion).
import { createHash, createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { keyProblem, parsePrivateKey, type JwtAlgorithm } from './algorithms.js';

export interface SigningKey {
  kid: string;
  algorithm: JwtAlgorithm;
  /** What fast-jwt signs with: the secret bytes or a PEM private key (absent: this key only verifies). */
  signKey?: Buffer | string;
  /** What fast-jwt verifies with: the secret bytes, or a PEM public key. */
  verifyKey: Buffer | string;
  /** The public JWK (asymmetric keys only: a shared secret is never published). */
  jwk?: JsonWebKey;
  /** From when it signs, ms since the epoch (0: from the start). */
  activatesAt: number;
}

/** An HS256 key: the secret's UTF-8 bytes; `signs` false for a previous secret. */
export function hmacKey(secret: string, signs: boolean): SigningKey {
  const bytes = Buffer.from(secret, 'utf8');
  // The kid names the key without revealing anything usable about it.
  const kid = createHash('sha256').update('gatehouse-kid\0').update(bytes).digest('base64url').slice(0, 16);
  return { algorithm: 'HS256', kid, signKey: signs ? bytes : undefined, verifyKey: bytes, activatesAt: 0 };
}

/** An asymmetric key from its private half; the kid is its RFC 7638 JWK thumbprint. */
export async function asymmetricKey(algorithm: JwtAlgorithm, privateKey: KeyObject, activatesAt = 0): Promise<SigningKey> {
  const problem = keyProblem(algorithm, privateKey);
  if (problem) throw new Error(`ALGORITHM=${algorithm} ${problem}`);
  const publicKey = createPublicKey(privateKey);
  const jwk = publicKey.export({ format: 'jwk' });
  const kid = await calculateJwkThumbprint(jwk as JWK, 'sha256');
  return {
    algorithm,
    kid,
    signKey: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    verifyKey: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    jwk: { ...jwk, kid, alg: algorithm, use: 'sig' },
    activatesAt,
  };
}

export function generatePrivateKey(algorithm: Exclude<JwtAlgorithm, 'HS256'>): KeyObject {
  if (algorithm === 'EdDSA') return generateKeyPairSync('ed25519').privateKey;
  if (algorithm === 'ES256') return generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
}

/**
 * The keys configuration fixes: HS256 (SECRET_KEY, then each previous
 * secret), or a configured private key. Undefined: the service keeps its
 * own keys in PostgreSQL.
 */
export async function configuredKeys(opts: {
  algorithm: JwtAlgorithm;
  secretKey: string;
  previousSecretKeys: readonly string[];
  privateKey?: string;
}): Promise<SigningKey[] | undefined> {
  if (opts.algorithm === 'HS256') {
    const current = hmacKey(opts.secretKey, true);
    const previous = opts.previousSecretKeys.map((s) => hmacKey(s, false)).filter((k) => k.kid !== current.kid);
    return [current, ...previous];
  }
  if (opts.privateKey) return [await asymmetricKey(opts.algorithm, parsePrivateKey(opts.privateKey))];
  return undefined;
}

/**
 * The key pair earlier versions generated under DATA_DIR in development, if
 * one is there: the key store adopts it as its first key, so tokens it
 * signed stay valid. Nothing writes such a file any more.
 */
export function legacyDevelopmentKey(algorithm: JwtAlgorithm, dataDir: string | undefined): string | undefined {
  if (!dataDir) return undefined;
  const file = join(dataDir, `jwt_${algorithm.toLowerCase()}_private.pem`);
  return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}
