-- The audit log: one row per security event (docs/API.md "Audit log").
-- No foreign keys: an event outlives the session it names, and a batch of
-- events never fails because a user or session went away meanwhile.
CREATE TABLE audit_events (
  id         uuid PRIMARY KEY,
  at         timestamptz NOT NULL,
  type       text NOT NULL,
  -- The account the event is about; null when no account matched (a failed login).
  user_id    uuid,
  -- The account's username, or what was typed on a failed login (at most 320 characters).
  username   text,
  ip         text,
  user_agent text,
  session_id uuid,
  -- Who acted when it was not the user themselves (an administrator); null otherwise.
  actor_id   uuid,
  detail     jsonb NOT NULL DEFAULT '{}'
);
-- Keyset pages, newest first: everything, one user's, one type's; and pruning by age.
CREATE INDEX audit_events_at_id_idx ON audit_events (at, id);
CREATE INDEX audit_events_user_at_id_idx ON audit_events (user_id, at, id);
CREATE INDEX audit_events_type_at_id_idx ON audit_events (type, at, id);
