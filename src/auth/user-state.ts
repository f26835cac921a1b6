// What every protected request must know about its user (still there, not
// disabled, which role; and its public profile), without a database round trip when nothing
// changed: a bounded per-node cache, invalidated through the event bus on
// every node. While the bus is unhealthy, PostgreSQL is asked every time.
import type { Queryable } from '../db/client.js';
import type { EventBus } from './event-bus.js';
import { storeUnavailable } from './errors.js';
import type { Role } from './scopes.js';
import { toPublicUser, type PublicUser, type UserRow } from './users.js';

export interface UserState {
  exists: boolean;
  disabled: boolean;
  role: Role;
  username: string;
  /** The public profile, so GET /users/me needs no round trip either. */
  profile: PublicUser | null;
}

const GONE: UserState = { exists: false, disabled: true, role: 'user', username: '', profile: null };

export class UserStates {
  private readonly cache = new Map<string, UserState>();
  /** Bumped by every invalidation: a load that raced one is not cached. */
  private epoch = 0;

  constructor(
    private readonly db: Queryable,
    private readonly bus: EventBus,
    private readonly maxEntries = 100_000,
    private readonly onStoreError: (err: unknown) => void = () => {},
  ) {
    bus.subscribe((e) => {
      if (e.type === 'user') this.forget(e.id);
    });
    bus.onResync(async () => this.clear());
  }

  async get(userId: string): Promise<UserState> {
    if (this.bus.healthy) {
      const hit = this.cache.get(userId);
      if (hit) return hit;
    }
    const epoch = this.epoch;
    let r;
    try {
      r = await this.db.query<UserRow>(
        'SELECT id, username, email, full_name, role, disabled, mfa, created_at FROM users WHERE id = $1',
        [userId],
      );
    } catch (err) {
      this.onStoreError(err);
      throw storeUnavailable();
    }
    const row = r.rows[0];
    const state: UserState = row
      ? { exists: true, disabled: row.disabled, role: row.role, username: row.username, profile: toPublicUser(row) }
      : GONE;
    if (this.bus.healthy && epoch === this.epoch) {
      if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(userId, state);
    }
    return state;
  }

  /** After a change to a user in PostgreSQL: forget it here and on every node. */
  async changed(userId: string): Promise<void> {
    this.forget(userId);
    await this.bus.publish({ type: 'user', id: userId });
  }

  private forget(userId: string): void {
    this.epoch++;
    this.cache.delete(userId);
  }

  clear(): void {
    this.epoch++;
    this.cache.clear();
  }
}
