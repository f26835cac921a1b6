// The auth core's tables: users, sessions, refresh tokens, revoked access
// tokens, rate-limit counters. A host app that embeds the core migrates this set, and only this.
import type { MigrationSet } from '../db/migrate.js';

export const authMigrations: MigrationSet = {
  owner: 'auth',
  // src/auth and dist/auth are both two levels below the package root.
  dir: new URL('../../migrations/auth/', import.meta.url),
  legacy: { '001_users.sql': 1, '002_sessions.sql': 2, '004_active_admins_index.sql': 3 },
};
