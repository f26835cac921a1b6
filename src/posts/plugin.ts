// The blog as a resource on top of the auth core: it declares its scope
// and who may hold it through the gatehouse options (BLOG_AUTH), and its
// routes use the guard like any host app's would. Moderation (editing or
// deleting anyone's post) needs a token with the core's `admin` scope.
import type { FastifyInstance } from 'fastify';
import type { AuthCore } from '../auth/core.js';
import type { GatehouseOptions } from '../auth/options.js';
import { migrate } from '../db/migrate.js';
import { blogMigrations } from './migrations.js';
import { postRoutes } from './routes.js';

/** What the blog adds to the gatehouse options. */
export const BLOG_AUTH = {
  scopes: { 'posts:write': 'Create, edit and delete your own posts (with admin: any post)' },
  roles: { user: ['posts:write'], admin: ['posts:write'] },
} satisfies Pick<GatehouseOptions, 'scopes' | 'roles'>;

export async function blog(app: FastifyInstance, { core }: { core: AuthCore }): Promise<void> {
  // The blog's own tables, after the auth core's (posts reference users).
  await migrate(core.db, blogMigrations);
  await app.register(postRoutes, { core });
}
