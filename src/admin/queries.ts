// User administration in PostgreSQL: the list of users (changes go through
// the users repository, src/auth/users.ts).
import type { Queryable } from '../db/client.js';
import { toPublicUser, type UserRow } from '../auth/users.js';
import { cursorTs, page, type Keyset } from '../http/pagination.js';

/** One page of users, oldest first (users_created_id_idx). */
export async function listUsers(db: Queryable, o: { limit: number; after?: Keyset }) {
  const params: unknown[] = [];
  let where = '';
  if (o.after) {
    params.push(o.after.ts, o.after.id);
    where = 'WHERE (created_at, id) > ($1::timestamptz, $2::uuid)';
  }
  params.push(o.limit + 1);
  const r = await db.query<UserRow & { cursor_ts: string }>(
    `SELECT *, ${cursorTs('created_at')} AS cursor_ts FROM users ${where}
     ORDER BY created_at, id LIMIT $${params.length}`,
    params,
  );
  return page(r.rows, o.limit, toPublicUser);
}

