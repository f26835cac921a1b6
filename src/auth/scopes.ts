// Scopes and the roles that may hold them. The core defines its own two
// (`me`: your own account and sessions; `admin`: user administration); a
// host adds its resources' scopes through the plugin's options and says
// which roles may hold them. The canonical order, used in every issued
// `scope` string, runs from least to most privileged: `me`, the host's
// scopes as declared, `admin`.
export type Role = 'user' | 'admin';
export const ROLES: readonly Role[] = ['user', 'admin'];

export const CORE_SCOPES = {
  me: 'Read and edit your own profile and sessions',
  admin: 'Administer users',
} as const;

export interface ScopeOptions {
  /** Extra scopes: name → description (shown in OpenAPI). */
  scopes?: Record<string, string>;
  /** Extra scopes each role may hold (`admin` also holds every scope of `user`). */
  roles?: Partial<Record<Role, readonly string[]>>;
}

/** Splits an OAuth scope string (space-separated, RFC 6749 §3.3), dropping duplicates. */
export function parseScope(raw: string): string[] {
  return [...new Set(raw.split(' ').filter(Boolean))];
}

// RFC 6749 §3.3 scope-token: printable ASCII but space, " and \.
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]{1,64}$/;

export class ScopeRules {
  /** Every scope, in canonical order, with its description. */
  readonly descriptions: Readonly<Record<string, string>>;
  private readonly order: readonly string[];
  private readonly byRole: Readonly<Record<Role, ReadonlySet<string>>>;

  constructor(opts: ScopeOptions = {}) {
    const extra = opts.scopes ?? {};
    for (const name of Object.keys(extra)) {
      if (!SCOPE_TOKEN.test(name)) throw new Error(`scope "${name}" is not a valid OAuth scope token`);
      if (name in CORE_SCOPES) throw new Error(`scope "${name}" is one of the core's own`);
    }
    const descriptions: Record<string, string> = { me: CORE_SCOPES.me, ...extra, admin: CORE_SCOPES.admin };
    this.descriptions = descriptions;
    this.order = Object.keys(descriptions);
    const user = new Set<string>(['me', ...(opts.roles?.user ?? [])]);
    const admin = new Set<string>([...user, 'admin', ...(opts.roles?.admin ?? [])]);
    for (const s of [...user, ...admin]) {
      if (!(s in descriptions)) throw new Error(`role option names the unknown scope "${s}"`);
    }
    if (user.has('admin')) throw new Error('role "user" cannot hold the admin scope');
    this.byRole = { user, admin };
  }

  isScope(s: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.descriptions, s);
  }

  /** Every scope the role may hold, in canonical order. */
  allowed(role: Role): string[] {
    return this.order.filter((s) => this.byRole[role].has(s));
  }

  roleAllows(role: Role, scopes: Iterable<string>): boolean {
    const allowed = this.byRole[role];
    for (const s of scopes) if (!allowed.has(s)) return false;
    return true;
  }

  /** Canonical order, so equal grants give equal strings. */
  format(scopes: Iterable<string>): string {
    const set = new Set(scopes);
    return this.order.filter((s) => set.has(s)).join(' ');
  }
}
