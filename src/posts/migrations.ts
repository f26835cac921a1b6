// The blog's tables (posts reference users: the auth set comes first).
import { authMigrations } from '../auth/migrations.js';
import type { MigrationSet } from '../db/migrate.js';

export const blogMigrations: MigrationSet = {
  owner: 'blog',
  // src/posts and dist/posts are both two levels below the package root.
  dir: new URL('../../migrations/blog/', import.meta.url),
  requires: [authMigrations],
  legacy: { '003_posts.sql': 1 },
};
