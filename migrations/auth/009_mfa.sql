-- Two-factor authentication (issue 13).

-- What the session's sign-in proved (RFC 8176 amr values), carried by every
-- access token of the session and kept across refreshes.
ALTER TABLE sessions ADD COLUMN amr text[] NOT NULL DEFAULT '{pwd}';

-- Whether a right password must be followed by a second factor (kept by
-- src/auth/second-factors.ts whenever a factor is added or removed).
ALTER TABLE users ADD COLUMN mfa boolean NOT NULL DEFAULT false;

-- A TOTP authenticator (RFC 6238). The secret is sealed with AES-256-GCM
-- (src/auth/secret-box.ts: key id, nonce, ciphertext and tag in one string).
-- confirmed_at NULL: a pending enrollment, not yet asked at sign-in.
-- last_step: the last time step whose code was accepted; a code of that
-- step or an earlier one is a replay.
CREATE TABLE mfa_totp (
  user_id      uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  secret       text NOT NULL,
  created_at   timestamptz NOT NULL,
  confirmed_at timestamptz,
  last_step    bigint
);

-- Recovery codes: SHA-256 of the normalised code (80 random bits), single-use.
CREATE TABLE mfa_recovery_codes (
  user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  code_hash text NOT NULL,
  used_at   timestamptz,
  PRIMARY KEY (user_id, code_hash)
);

-- The second step of a sign-in: the mfa_token handed out after a right
-- password, stored only as its SHA-256, so any node can finish the login.
-- attempts: codes tried with it (each attempt is taken before the code is
-- checked, so concurrent guesses cannot exceed the limit); spent_at: the
-- success that used it up.
CREATE TABLE mfa_challenges (
  token_hash text PRIMARY KEY,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  scope      text NOT NULL,
  amr        text[] NOT NULL,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  attempts   integer NOT NULL DEFAULT 0,
  spent_at   timestamptz
);
CREATE INDEX mfa_challenges_expires_at_idx ON mfa_challenges (expires_at);
CREATE INDEX mfa_challenges_user_idx ON mfa_challenges (user_id);
