-- Account recovery and email (issue 12).
--
-- Existing accounts start unverified: nobody has proved their address yet.
-- With REQUIRE_EMAIL_VERIFICATION off (the default) that changes nothing;
-- turn it on only once your users have had the chance to verify
-- (POST /users/me/verify-email), or mark them verified yourself:
--   UPDATE users SET email_verified = true;
ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;

-- Single-use tokens mailed to a person: password reset and address
-- verification. Only the SHA-256 of the token is kept. `email` is the
-- address the token was mailed to: once the account's address changes, the
-- token no longer works.
CREATE TABLE account_tokens (
  token_hash bytea PRIMARY KEY,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  purpose    text NOT NULL CHECK (purpose IN ('password_reset', 'email_verify')),
  email      text NOT NULL,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  used_at    timestamptz
);
-- Per-address mail limits count a user's recent tokens of a purpose.
CREATE INDEX account_tokens_user_idx ON account_tokens (user_id, purpose, created_at);
CREATE INDEX account_tokens_expires_idx ON account_tokens (expires_at);

-- The transactional outbox: a mail is a row written in the transaction
-- that makes its token, delivered afterwards by whichever node claims it
-- (FOR UPDATE SKIP LOCKED, then a lease in `locked_until`, so a node that
-- dies mid-delivery hands the row on when its lease ends). `payload` is the
-- mail (it may hold a token) encrypted with AES-256-GCM under a key derived
-- from SECRET_KEY; it is erased once the mail is sent.
-- kind 'password_reset_request': a reset asked for an address not looked
-- up yet (the request answers at once, the same way for every address;
-- the sender turns it into a token and a mail, or into nothing).
CREATE TABLE mail_outbox (
  id              bigserial PRIMARY KEY,
  kind            text NOT NULL CHECK (kind IN ('mail', 'password_reset_request')),
  payload         bytea,
  created_at      timestamptz NOT NULL,
  next_attempt_at timestamptz NOT NULL,
  locked_until    timestamptz,
  attempts        integer NOT NULL DEFAULT 0,
  last_error      text,
  sent_at         timestamptz
);
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL;
