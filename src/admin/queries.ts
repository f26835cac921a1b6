// User administration in PostgreSQL: the list, and role/disabled changes
// that can never leave the service without an enabled administrator.
import type { Database, Queryable } from '../db/client.js';
import type { Role } from '../auth/scopes.js';
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

export class LastAdminError extends Error {
  constructor() {
    super('the change would leave no enabled administrator');
    this.name = 'LastAdminError';
  }
}

export interface UserChanges {
  disabled?: boolean;
  role?: Role;
}

/**
 * Applies `changes` to a user; undefined when there is no such user. Throws
 * LastAdminError when the change would leave no enabled admin. Race-free:
 * every enabled admin row (and the target) is locked, in id order, before
 * the count, so two admins demoting each other at once cannot both succeed
 * (under READ COMMITTED the second one re-reads the rows the first changed).
 */
export async function changeUser(
  db: Database,
  id: string,
  changes: UserChanges,
  now: Date,
): Promise<{ user: UserRow; changed: boolean } | undefined> {
  return db.transaction(async (tx) => {
    const locked = await tx.query<{ id: string; role: Role; disabled: boolean }>(
      `SELECT id, role, disabled FROM users
       WHERE id = $1 OR (role = 'admin' AND NOT disabled)
       ORDER BY id FOR UPDATE`,
      [id],
    );
    const target = locked.rows.find((u) => u.id === id);
    if (!target) return undefined;
    const role = changes.role ?? target.role;
    const disabled = changes.disabled ?? target.disabled;
    if (role === target.role && disabled === target.disabled) {
      const r = await tx.query<UserRow>('SELECT * FROM users WHERE id = $1', [id]);
      return { user: r.rows[0]!, changed: false };
    }
    const wasActiveAdmin = target.role === 'admin' && !target.disabled;
    const staysActiveAdmin = role === 'admin' && !disabled;
    if (wasActiveAdmin && !staysActiveAdmin) {
      const others = locked.rows.filter((u) => u.id !== id && u.role === 'admin' && !u.disabled).length;
      if (others === 0) throw new LastAdminError();
    }
    const r = await tx.query<UserRow>('UPDATE users SET role = $2, disabled = $3, updated_at = $4 WHERE id = $1 RETURNING *', [
      id,
      role,
      disabled,
      now,
    ]);
    return { user: r.rows[0]!, changed: true };
  });
}
