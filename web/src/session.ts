// Who is signed in, for the pages: the profile from GET /users/me, kept in
// step with the API client's session (sign-in, refresh, sign-out, other tabs).
import { api, onSessionChange, refresh, signedIn } from './api';
import { Listeners, useListeners } from './listeners';
import type { User } from './types';

let me: User | null = null;
const listeners = new Listeners();

function set(user: User | null): void {
  me = user;
  listeners.notify();
}

/** Loads the profile of the signed-in person (or forgets it when signed out). */
export async function reloadMe(): Promise<void> {
  if (!signedIn()) return set(null);
  try {
    set(await api<User>('/users/me'));
  } catch {
    set(null);
  }
}

onSessionChange(() => {
  if (!signedIn()) set(null);
  else if (!me) void reloadMe();
});

/** At page load: the silent refresh through the cookie, then the profile. */
export async function restoreSession(): Promise<void> {
  try {
    await refresh();
  } catch {
    // the service is unreachable: the pages load signed out and say so when used
  }
  await reloadMe();
}

/** The signed-in person (null when signed out); re-renders on change. */
export function useMe(): User | null {
  useListeners(listeners);
  return me;
}
