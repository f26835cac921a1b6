-- The change feed (src/auth/change-feed.ts): one row per revocation, session
-- end and user change, written in the same statement or transaction as the
-- change itself. Every node reads the rows newer than what it has seen once
-- a second, so a change reaches every node even when the node that made it
-- could not publish it (cut off from Redis, or dead right after its commit).
-- `tx` is the writing transaction's id: a poller that remembers the oldest
-- transaction still running at its last read (its snapshot's xmin) misses
-- no row that committed late, whatever order the ids were drawn in.
-- Housekeeping deletes rows after an hour.
CREATE TABLE security_events (
  id      bigserial PRIMARY KEY,
  tx      xid8 NOT NULL DEFAULT pg_current_xact_id(),
  at      timestamptz NOT NULL DEFAULT now(),
  payload text NOT NULL
);
CREATE INDEX security_events_tx_idx ON security_events (tx);
CREATE INDEX security_events_at_idx ON security_events (at);
