-- Passkeys (WebAuthn, src/auth/passkeys.ts).
--
-- The user handle the authenticators keep for each account: 32 random bytes
-- (base64url), the same for all of the user's passkeys, never the email or
-- the user's id (WebAuthn §14.6.1: it must reveal nothing about the person).
CREATE TABLE webauthn_user_handles (
  user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  handle  text NOT NULL UNIQUE
);

-- One row per registered credential. `credential_id` is the authenticator's
-- id (base64url) and unique across all users: an assertion names its row.
-- `public_key` is the COSE key; `sign_count` the last signature counter seen.
CREATE TABLE passkeys (
  id            uuid PRIMARY KEY,
  user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  credential_id text NOT NULL UNIQUE,
  public_key    bytea NOT NULL,
  sign_count    bigint NOT NULL DEFAULT 0,
  transports    text[] NOT NULL DEFAULT '{}',
  name          text NOT NULL,
  aaguid        text,
  backed_up     boolean NOT NULL DEFAULT false,
  created_at    timestamptz NOT NULL,
  last_used_at  timestamptz
);
CREATE INDEX passkeys_user_idx ON passkeys (user_id, created_at);

-- Server-issued WebAuthn challenges: single-use (spent by DELETE … RETURNING,
-- whoever presents them first), short-lived, and bound to their purpose:
-- registration for one user, a passwordless sign-in, or the second step of
-- one login (`binding` names the user, or the login's pending second step).
-- Stored here so that any node can finish a ceremony another node began.
-- UNLOGGED: a crash that empties it costs a user one retry.
CREATE UNLOGGED TABLE webauthn_challenges (
  challenge  text PRIMARY KEY,
  purpose    text NOT NULL CHECK (purpose IN ('registration', 'authentication', 'second_factor')),
  binding    text,
  expires_at timestamptz NOT NULL
);
CREATE INDEX webauthn_challenges_expires_at_idx ON webauthn_challenges (expires_at);
