// The users repository: every write to the users table goes through this
// module, and each one tells `onChange` (the per-node user-state cache and
// its event, see user-state.ts; the CLI's announcement to running nodes),
// so no writer can forget to invalidate. Also the shapes and the rules of
// names and addresses.
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { Database, Queryable } from '../db/client.js';
import { feedInsert } from './change-feed.js';
import { AuthError } from './errors.js';
import type { Role } from './scopes.js';

export interface UserRow {
  id: string;
  username: string;
  email: string;
  full_name: string | null;
  password_hash: string;
  role: Role;
  disabled: boolean;
  /** A second factor is required after the password (kept by changeSecondFactors). */
  mfa: boolean;
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
  mfa: boolean;
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
    mfa: u.mfa,
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

/** Maps PostgreSQL's unique-violation on our indexes to a UniqueViolation; other errors pass through. */
function asUniqueViolation(err: unknown): unknown {
  const e = err as { code?: string; constraint?: string; message?: string };
  if (e.code !== '23505') return err;
  const where = `${e.constraint ?? ''} ${e.message ?? ''}`;
  return new UniqueViolation(where.includes('email') ? 'email' : 'username');
}

export const usernameTaken = () => new AuthError('username_taken', 'That username is already taken');
export const emailTaken = () => new AuthError('email_taken', 'That email address is already registered');
/** A unique index refused the write: the 409 of the field it names. */
function takenError(err: unknown): unknown {
  const e = asUniqueViolation(err);
  if (!(e instanceof UniqueViolation)) return e;
  return e.field === 'email' ? emailTaken() : usernameTaken();
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

export interface NewUser {
  username: string;
  email: string;
  fullName: string | null;
  passwordHash: string;
  role: Role;
}

/** The change-feed payload announcing a change to this user. */
const userEvent = (id: string) => JSON.stringify({ type: 'user', id });

export class UsersRepository {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    /** Called after every committed change to a user. */
    private readonly onChange: (userId: string) => Promise<unknown>,
  ) {}

  private now(): Date {
    return new Date(this.clock.now());
  }

  async findForLogin(login: string): Promise<UserRow | undefined> {
    // Usernames never contain '@', so the two lookups cannot collide.
    const r = login.includes('@')
      ? await this.db.query<UserRow>('SELECT * FROM users WHERE lower(email) = lower($1)', [login])
      : await this.db.query<UserRow>('SELECT * FROM users WHERE lower(username) = $1', [normalizeUsername(login)]);
    return r.rows[0];
  }

  /** One stored bcrypt hash per cost still present (legacy accounts not yet upgraded). */
  async legacyHashSamples(): Promise<string[]> {
    const r = await this.db.query<{ hash: string }>(
      `SELECT min(password_hash) AS hash FROM users WHERE password_hash LIKE '$2%' GROUP BY substring(password_hash FROM 5 FOR 2)`,
    );
    return r.rows.map((x) => x.hash);
  }

  async findById(id: string): Promise<UserRow | undefined> {
    return (await this.db.query<UserRow>('SELECT * FROM users WHERE id = $1', [id])).rows[0];
  }

  /** Which of a new account's unique fields are taken already (a 409 before any hashing). */
  async assertAvailable(username: string, email: string): Promise<void> {
    const taken = await this.db.query<{ username_taken: boolean; email_taken: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM users WHERE lower(username) = $1) AS username_taken,
              EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($2)) AS email_taken`,
      [username, email],
    );
    if (taken.rows[0]?.username_taken) throw usernameTaken();
    if (taken.rows[0]?.email_taken) throw emailTaken();
  }

  /** Throws the 409 AuthError of the field when the username or email is taken. */
  async create(u: NewUser): Promise<UserRow> {
    try {
      const r = await this.db.query<UserRow>(
        `INSERT INTO users (id, username, email, full_name, password_hash, role, disabled, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, false, $7, $7) RETURNING *`,
        [randomUUID(), u.username, u.email, u.fullName, u.passwordHash, u.role, this.now()],
      );
      return r.rows[0]!;
    } catch (err) {
      throw takenError(err);
    }
  }

  async setPasswordHash(id: string, hash: string): Promise<void> {
    await this.db.query(
      `WITH u AS (UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1 RETURNING id)
       INSERT INTO security_events (payload) SELECT $4 FROM u`,
      [id, hash, this.now(), userEvent(id)],
    );
    await this.onChange(id);
  }

  /** Edits the profile; undefined when there is no such user. Throws 409 when the email is taken. */
  async updateProfile(id: string, p: { fullName?: string | null; email?: string }): Promise<UserRow | undefined> {
    let row: UserRow | undefined;
    try {
      const r = await this.db.query<UserRow>(
        `WITH u AS (
           UPDATE users SET
             full_name = CASE WHEN $2 THEN $3 ELSE full_name END,
             email = COALESCE($4, email),
             updated_at = $5
           WHERE id = $1 RETURNING *),
         feed AS (INSERT INTO security_events (payload) SELECT $6 FROM u)
         SELECT * FROM u`,
        [id, p.fullName !== undefined, p.fullName ?? null, p.email ?? null, this.now(), userEvent(id)],
      );
      row = r.rows[0];
    } catch (err) {
      throw takenError(err);
    }
    if (row) await this.onChange(id);
    return row;
  }

  /**
   * A change to the user's second factors (`change`, in the transaction),
   * and the `mfa` flag it leaves (whether a factor remains), in one
   * transaction: the sign-in never sees a factor without its flag.
   */
  async changeSecondFactors<T>(id: string, change: (tx: Queryable) => Promise<{ result: T; mfa: boolean }>): Promise<T> {
    const result = await this.db.transaction(async (tx: Queryable) => {
      const out = await change(tx);
      await tx.query(
        `WITH u AS (UPDATE users SET mfa = $2, updated_at = $3 WHERE id = $1 AND mfa <> $2 RETURNING id)
         INSERT INTO security_events (payload) SELECT $4 FROM u`,
        [id, out.mfa, this.now(), userEvent(id)],
      );
      return out.result;
    });
    await this.onChange(id);
    return result;
  }

  /**
   * Applies `changes` to a user; undefined when there is no such user. Throws
   * LastAdminError when the change would leave no enabled admin. Race-free:
   * every enabled admin row (and the target) is locked, in id order, before
   * the count, so two admins demoting each other at once cannot both succeed
   * (under READ COMMITTED the second one re-reads the rows the first changed).
   * The user is announced (a change-feed row in the same transaction, then
   * `onChange`) even when nothing changed: a retry of a change whose node
   * died before announcing it must announce it.
   */
  async change(id: string, changes: UserChanges): Promise<{ user: UserRow; changed: boolean } | undefined> {
    const now = this.now();
    const result = await this.db.transaction(async (tx: Queryable) => {
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
      await tx.query(feedInsert('$1'), [userEvent(id)]);
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
    // After the commit, before anything else: a failure later cannot leave
    // a disabled user's access tokens alive on other nodes.
    if (result) await this.onChange(id);
    return result;
  }
}
