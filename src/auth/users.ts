// The user records the auth core needs: lookup for login, creation, hash
// upgrades, and the small state (exists, disabled, role) every protected
// request checks. Resource routes build on these; nothing here knows them.
import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/client.js';
import type { Role } from './scopes.js';

export interface UserRow {
  id: string;
  username: string;
  email: string;
  full_name: string | null;
  password_hash: string;
  role: Role;
  disabled: boolean;
  created_at: Date;
  updated_at: Date;
}

export interface PublicUser {
  id: string;
  username: string;
  email: string;
  full_name: string | null;
  role: Role;
  disabled: boolean;
  created_at: string;
}

export function toPublicUser(u: UserRow): PublicUser {
  return {
    id: u.id,
    username: u.username,
    email: u.email,
    full_name: u.full_name,
    role: u.role,
    disabled: u.disabled,
    created_at: u.created_at.toISOString(),
  };
}

/** NFKC, then lower case: the form usernames are stored, compared and shown in. */
export function normalizeUsername(raw: string): string {
  return raw.normalize('NFKC').toLowerCase();
}

export const USERNAME_RE = /^[a-z0-9_.-]{3,32}$/;

// Pragmatic address check (RFC 5321 lengths, one @, a dot in the domain, no spaces).
const EMAIL_RE = /^[^\s@]{1,64}@[^\s@.]+(\.[^\s@.]+)+$/;

export function isValidEmail(email: string): boolean {
  return email.length <= 254 && EMAIL_RE.test(email);
}

export class UniqueViolation extends Error {
  constructor(readonly field: 'username' | 'email') {
    super(`${field} taken`);
  }
}

export async function findUserForLogin(db: Queryable, login: string): Promise<UserRow | undefined> {
  // Usernames never contain '@', so the two lookups cannot collide.
  const r = login.includes('@')
    ? await db.query<UserRow>('SELECT * FROM users WHERE lower(email) = lower($1)', [login])
    : await db.query<UserRow>('SELECT * FROM users WHERE lower(username) = $1', [normalizeUsername(login)]);
  return r.rows[0];
}

export async function findUserById(db: Queryable, id: string): Promise<UserRow | undefined> {
  return (await db.query<UserRow>('SELECT * FROM users WHERE id = $1', [id])).rows[0];
}

export async function createUser(
  db: Queryable,
  u: { username: string; email: string; fullName: string | null; passwordHash: string; role: Role; now: Date },
): Promise<UserRow> {
  try {
    const r = await db.query<UserRow>(
      `INSERT INTO users (id, username, email, full_name, password_hash, role, disabled, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, false, $7, $7) RETURNING *`,
      [randomUUID(), u.username, u.email, u.fullName, u.passwordHash, u.role, u.now],
    );
    return r.rows[0]!;
  } catch (err) {
    throw asUniqueViolation(err);
  }
}

/** Maps PostgreSQL's unique-violation on our indexes to a UniqueViolation; other errors pass through. */
export function asUniqueViolation(err: unknown): unknown {
  const e = err as { code?: string; constraint?: string; message?: string };
  if (e.code !== '23505') return err;
  const where = `${e.constraint ?? ''} ${e.message ?? ''}`;
  return new UniqueViolation(where.includes('email') ? 'email' : 'username');
}

export async function updatePasswordHash(db: Queryable, id: string, hash: string, now: Date): Promise<void> {
  await db.query('UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1', [id, hash, now]);
}
