-- The last-admin check of PATCH /admin/users locks the target and every
-- enabled admin; without this index that is a scan of every user.
CREATE INDEX users_active_admins_idx ON users (id) WHERE role = 'admin' AND NOT disabled;
