-- Which ALGORITHM signs, and when each other one stopped (src/auth/key-store.ts).
-- A node records its ALGORITHM at start; when that changes, the previous one
-- gets `retired_at`, the same instant for every node and every restart. Its
-- keys (stored ones, or SECRET_KEY for HS256) then verify until every token
-- they can have signed has expired, as a rotated key does, and housekeeping
-- deletes its stored keys. NULL: the algorithm signs (on some node).
CREATE TABLE signing_algorithms (
  algorithm  text PRIMARY KEY CHECK (algorithm IN ('HS256', 'EdDSA', 'ES256', 'RS256')),
  retired_at timestamptz
);
-- Keys stored before this table count as signing until the first node's
-- start retires the algorithms it is not configured with. HS256's history is
-- unknown here: key-store.ts infers it at that start.
INSERT INTO signing_algorithms (algorithm) SELECT DISTINCT algorithm FROM signing_keys;
