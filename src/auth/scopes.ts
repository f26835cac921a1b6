// Scopes and the roles that may hold them (API.md, "Scopes and roles").
export const SCOPES = {
  me: 'Read and edit your own profile and sessions',
  'posts:write': 'Create, edit and delete your own posts',
  admin: 'Administer users and any post',
} as const;

export type Scope = keyof typeof SCOPES;
export type Role = 'user' | 'admin';

export const ROLE_SCOPES: Record<Role, readonly Scope[]> = {
  user: ['me', 'posts:write'],
  admin: ['me', 'posts:write', 'admin'],
};

export function isScope(s: string): s is Scope {
  return Object.prototype.hasOwnProperty.call(SCOPES, s);
}

export function roleAllows(role: Role, scopes: Iterable<string>): boolean {
  const allowed = ROLE_SCOPES[role] as readonly string[];
  for (const s of scopes) if (!allowed.includes(s)) return false;
  return true;
}

/** Splits an OAuth scope string (space-separated, RFC 6749 §3.3), dropping duplicates. */
export function parseScope(raw: string): string[] {
  return [...new Set(raw.split(' ').filter(Boolean))];
}

/** Canonical order, so equal grants give equal strings. */
export function formatScope(scopes: Iterable<string>): string {
  const set = new Set(scopes);
  return (Object.keys(SCOPES) as Scope[]).filter((s) => set.has(s)).join(' ');
}
