// The kid of an asymmetric key is its RFC 7638 JWK thumbprint, the value
// resource servers and the JWK set agree on.
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey } from 'node:crypto';
import { test } from 'node:test';
import { asymmetricKey } from '../src/auth/keys.js';

// RFC 7638 §3.2: the required members only, in lexicographic order, no whitespace, SHA-256, base64url.
function rfc7638(jwk: JsonWebKey): string {
  const members = { OKP: ['crv', 'kty', 'x'], EC: ['crv', 'kty', 'x', 'y'], RSA: ['e', 'kty', 'n'] }[jwk.kty as 'OKP' | 'EC' | 'RSA'];
  return createHash('sha256').update(JSON.stringify(Object.fromEntries(members.map((k) => [k, jwk[k]])))).digest('base64url');
}

const pairs = {
  EdDSA: () => generateKeyPairSync('ed25519'),
  ES256: () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }),
  RS256: () => generateKeyPairSync('rsa', { modulusLength: 2048 }),
} as const;

for (const [algorithm, pair] of Object.entries(pairs) as Array<[keyof typeof pairs, (typeof pairs)[keyof typeof pairs]]>) {
  test(`${algorithm}: kid is the RFC 7638 thumbprint, in the header and the JWK set`, async () => {
    const pem = pair().privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const key = await asymmetricKey(algorithm, createPrivateKey(pem));
    const expected = rfc7638(createPublicKey(pem).export({ format: 'jwk' }));
    assert.equal(key.kid, expected);
    assert.equal(key.jwk!.kid, expected);
  });
}
