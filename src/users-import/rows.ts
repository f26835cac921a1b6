// One record of an import file → a user to insert, or why it is bad. The
// rules are registration's (username NFKC + lower case, 3–32 of a-z 0-9 _ . -;
// a valid email; full_name at most 200), plus what a FastAPI app's table
// holds: its password hash kept as it is (bcrypt as passlib stores it, or
// argon2; upgraded at first login) and `disabled`. A reason never quotes
// the hash.
import { storedHashProblem } from '../auth/passwords.js';
import { isValidEmail, normalizeUsername, USERNAME_RE, type ImportedUser } from '../auth/users.js';

export const FIELDS = ['username', 'email', 'full_name', 'hashed_password', 'disabled', 'email_verified'] as const;
const REQUIRED = ['username', 'email', 'hashed_password'] as const;
const MAX_FULL_NAME = 200;

/** A row as imported; `emailVerified` defaults to yes (an imported account is a known one). */
export type ImportRow = ImportedUser;

export type RowResult = { ok: true; row: ImportRow } | { ok: false; reason: string };

const TRUE = /^(true|1)$/i;
const FALSE = /^(false|0)$/i;

/** true/false in any case or 1/0 (as text, JSON booleans or numbers); empty or absent: `fallback`. */
function flag(value: unknown, fallback: boolean): boolean | undefined {
  if (value === undefined || value === null || value === '') return fallback;
  if (typeof value === 'boolean') return value;
  if (value === 0 || value === 1) return value === 1;
  if (typeof value === 'string') {
    const t = value.trim();
    if (TRUE.test(t)) return true;
    if (FALSE.test(t)) return false;
  }
  return undefined;
}

/** A text field: a string (trimmed), or absent; anything else is not text. */
function text(value: unknown): string | undefined | null {
  if (value === undefined || value === null) return undefined;
  return typeof value === 'string' ? value.trim() : null;
}

export function checkRecord(record: Record<string, unknown>): RowResult {
  for (const f of REQUIRED) {
    const v = text(record[f]);
    if (v === null) return { ok: false, reason: `${f} must be text` };
    if (!v) return { ok: false, reason: `${f} is missing` };
  }
  const rawName = text(record.username)!;
  if (rawName.length > 256) return { ok: false, reason: 'username is too long' };
  const username = normalizeUsername(rawName);
  if (!USERNAME_RE.test(username)) return { ok: false, reason: 'username must be 3–32 characters of a-z, 0-9, _ . - (after NFKC and lower-casing)' };
  const email = text(record.email)!;
  if (!isValidEmail(email)) return { ok: false, reason: 'email is not a valid address' };
  const fullName = text(record.full_name);
  if (fullName === null) return { ok: false, reason: 'full_name must be text' };
  if (fullName && fullName.length > MAX_FULL_NAME) return { ok: false, reason: `full_name is longer than ${MAX_FULL_NAME} characters` };
  const hash = text(record.hashed_password)!;
  const problem = storedHashProblem(hash);
  if (problem) return { ok: false, reason: `hashed_password ${problem}` };
  const disabled = flag(record.disabled, false);
  if (disabled === undefined) return { ok: false, reason: 'disabled must be true, false, 1 or 0' };
  const emailVerified = flag(record.email_verified, true);
  if (emailVerified === undefined) return { ok: false, reason: 'email_verified must be true, false, 1 or 0' };
  return { ok: true, row: { username, email, fullName: fullName || null, passwordHash: hash, disabled, emailVerified } };
}
