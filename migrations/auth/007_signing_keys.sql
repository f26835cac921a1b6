-- Signing keys kept by the service (src/auth/key-store.ts): ALGORITHM
-- EdDSA, ES256 or RS256 with no configured private key. Every node signs
-- with the same key and a new node needs no key file.
-- `private_key` is the PKCS#8 private key sealed with AES-256-GCM under a
-- key derived from SECRET_KEY by HKDF ("signing-key encryption v1"), the
-- kid as associated data: "v1.<iv>.<ciphertext>.<tag>" (base64url); no
-- plaintext key is ever stored.
-- A key signs from `activates_at` until the next key of its algorithm
-- activates; it is published (JWKS) from its creation until every token it
-- signed has expired, then housekeeping deletes it.
CREATE TABLE signing_keys (
  kid          text PRIMARY KEY,
  algorithm    text NOT NULL CHECK (algorithm IN ('EdDSA', 'ES256', 'RS256')),
  public_jwk   text NOT NULL,
  private_key  text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  activates_at timestamptz NOT NULL
);
CREATE INDEX signing_keys_algorithm_activates_idx ON signing_keys (algorithm, activates_at);
