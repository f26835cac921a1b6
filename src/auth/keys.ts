// Signing keys. HS256 uses the UTF-8 bytes of SECRET_KEY as the key, exactly
// as FastAPI apps do, so an app given the same SECRET_KEY can check our
// signatures and we could check its. The tokens are not interchangeable yet:
// ours carry typ at+jwt, iss and aud (PyJWT's jwt.decode without an audience
// refuses a token with aud) and put the user's id in sub where the tutorials
// read a username; theirs lack typ, iss, aud, jti and sid, which our verifier
// requires. EdDSA, ES256 and RS256 use a PEM private key; its public half is
// published as a JWK set.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { keyProblem, type JwtAlgorithm } from './algorithms.js';

export interface SigningKeys {
  algorithm: JwtAlgorithm;
  kid: string;
  /** What fast-jwt signs with: the secret bytes, or a PEM private key. */
  signKey: Buffer | string;
  /** What fast-jwt verifies with: the secret bytes, or a PEM public key. */
  verifyKey: Buffer | string;
  /** The public JWKs (empty for HS256: a shared secret is never published). */
  jwks: JsonWebKey[];
}

export async function loadSigningKeys(opts: {
  algorithm: JwtAlgorithm;
  secretKey: string;
  privateKeyPem?: string;
  dataDir: string;
}): Promise<SigningKeys> {
  if (opts.algorithm === 'HS256') {
    const secret = Buffer.from(opts.secretKey, 'utf8');
    // The kid names the key without revealing anything usable about it.
    const kid = createHash('sha256').update('gatehouse-kid\0').update(secret).digest('base64url').slice(0, 16);
    return { algorithm: 'HS256', kid, signKey: secret, verifyKey: secret, jwks: [] };
  }
  const pem = opts.privateKeyPem ?? developmentPrivateKey(opts.algorithm, opts.dataDir);
  const privateKey = createPrivateKey(pem);
  checkKeyType(opts.algorithm, privateKey);
  const publicKey = createPublicKey(privateKey);
  const jwk = publicKey.export({ format: 'jwk' });
  // RFC 7638 JWK thumbprint.
  const kid = await calculateJwkThumbprint(jwk as JWK, 'sha256');
  return {
    algorithm: opts.algorithm,
    kid,
    signKey: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    verifyKey: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    jwks: [{ ...jwk, kid, alg: opts.algorithm, use: 'sig' }],
  };
}

function checkKeyType(algorithm: JwtAlgorithm, key: KeyObject): void {
  const problem = keyProblem(algorithm, key);
  if (problem) throw new Error(`ALGORITHM=${algorithm} ${problem}`);
}

/** Development only: a key pair generated once and kept (0600) under DATA_DIR. */
function developmentPrivateKey(algorithm: JwtAlgorithm, dataDir: string): string {
  const file = join(dataDir, `jwt_${algorithm.toLowerCase()}_private.pem`);
  if (existsSync(file)) return readFileSync(file, 'utf8');
  const pair =
    algorithm === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : algorithm === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(file, pem, { mode: 0o600 });
  return pem;
}
