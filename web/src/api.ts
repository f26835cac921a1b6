// The API client, and the only holder of the access token: a variable of this
// module, never localStorage, sessionStorage or a cookie a script can read (an
// injected script could carry those away). The refresh token lives in the
// HttpOnly cookie gh_refresh (Path=/auth/browser), which only the browser
// sends; pages get a new access token through POST /auth/browser/refresh:
// at load (a reload keeps you signed in), shortly before expiry, and once
// after a 401. Tabs of one browser share that cookie, so they refresh one at
// a time (a Web Lock): each presents the cookie the previous one set, and
// none is taken for a replayed refresh token (reuse detection).

import { Listeners } from './listeners';

export interface FieldError {
  path: string;
  message: string;
}

/**
 * A failed request, in the words of the problem's `detail` (or RFC 6749's
 * `error_description`); `body` is the whole answer (a second-factor step
 * reads its `mfa_token` there).
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
    readonly errors: FieldError[] = [],
    readonly body: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

interface TokenAnswer {
  access_token: string;
  expires_in: number;
  scope: string;
}

// The CSRF header of the cookie endpoints: a cross-site form cannot send it.
const BROWSER_HEADERS = { 'X-Requested-With': 'gatehouse' };
const LOCK = 'gatehouse-refresh';

let accessToken: string | null = null;
let refreshTimer: ReturnType<typeof setTimeout> | undefined;
let inFlight: Promise<boolean> | null = null;
const listeners = new Listeners();
// Tells this browser's other tabs about sign-in and sign-out (never a token).
const tabs = typeof BroadcastChannel === 'function' ? new BroadcastChannel('gatehouse-session') : null;

export const signedIn = (): boolean => accessToken !== null;

/** Calls fn whenever the signed-in state may have changed; returns the unsubscribe. */
export function onSessionChange(fn: () => void): () => void {
  return listeners.add(fn);
}

const changed = () => listeners.notify();

function adopt(answer: TokenAnswer): void {
  accessToken = answer.access_token;
  clearTimeout(refreshTimer);
  // Refresh a minute before expiry (or at 80% of a short lifetime).
  const lead = Math.min(60, answer.expires_in * 0.2);
  refreshTimer = setTimeout(() => void refresh().catch(() => undefined), Math.max(1, answer.expires_in - lead) * 1000);
  changed();
}

function forget(): void {
  const was = accessToken !== null;
  accessToken = null;
  clearTimeout(refreshTimer);
  if (was) changed();
}

async function toError(res: Response): Promise<ApiError> {
  let body: Record<string, unknown> = {};
  try {
    body = (await res.json()) as Record<string, unknown>;
  } catch {
    // not JSON: fall back on the status
  }
  const detail = typeof body.detail === 'string' ? body.detail : typeof body.error_description === 'string' ? body.error_description : '';
  const message = detail || (res.status >= 500 ? 'The service is unavailable; try again in a moment.' : `The request failed (${res.status}).`);
  const errors = Array.isArray(body.errors) ? (body.errors as FieldError[]) : [];
  const code = typeof body.code === 'string' ? body.code : typeof body.error === 'string' ? body.error : undefined;
  return new ApiError(res.status, message, code, errors, body);
}

function post(path: string, body?: URLSearchParams): Promise<Response> {
  return fetch(path, { method: 'POST', headers: BROWSER_HEADERS, body, credentials: 'same-origin', cache: 'no-store' });
}

/** One at a time across this browser's tabs (Web Locks), else in this tab alone. */
function exclusive<T>(fn: () => Promise<T>): Promise<T> {
  const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
  return locks ? (locks.request(LOCK, fn) as Promise<T>) : fn();
}

/**
 * A new access token from the refresh cookie. True when signed in; false when
 * the cookie is missing or dead (then signed out). Concurrent callers in this
 * tab share one request.
 */
export function refresh(): Promise<boolean> {
  inFlight ??= exclusive(async () => {
    const res = await post('/auth/browser/refresh');
    if (res.ok) {
      adopt((await res.json()) as TokenAnswer);
      return true;
    }
    if (res.status === 401) {
      forget();
      return false;
    }
    throw await toError(res);
  }).finally(() => {
    inFlight = null;
  });
  return inFlight;
}

/** A right password for an account with a second factor: what the second step needs. */
export interface SecondStep {
  mfaToken: string;
  methods: string[];
}

/**
 * Any grant of /auth/browser/token (fields as /auth/token takes them): on
 * success this tab is signed in and the others are told (null). A 403
 * `mfa_required` is the second step that is due (a SecondStep).
 */
export async function grant(fields: Record<string, string>): Promise<SecondStep | null> {
  const res = await exclusive(() => post('/auth/browser/token', new URLSearchParams(fields)));
  if (res.status === 403) {
    const body = (await res.clone().json().catch(() => ({}))) as Record<string, unknown>;
    if (body.error === 'mfa_required' && typeof body.mfa_token === 'string') {
      return { mfaToken: body.mfa_token, methods: Array.isArray(body.mfa_methods) ? (body.mfa_methods as string[]) : [] };
    }
  }
  if (!res.ok) throw await toError(res);
  adopt((await res.json()) as TokenAnswer);
  tabs?.postMessage('signed-in');
  return null;
}

/** Signs in with a username (or email) and password; a SecondStep when the account has a second factor. */
export function signIn(username: string, password: string): Promise<SecondStep | null> {
  return grant({ grant_type: 'password', username, password });
}

// The second-factor grants: grant_type and the parameter that carries the code.
const SECOND_FACTOR = {
  totp: ['urn:gatehouse:params:oauth:grant-type:mfa-otp', 'otp'],
  recovery_code: ['urn:gatehouse:params:oauth:grant-type:mfa-recovery-code', 'recovery_code'],
} as const;

/** The second step of a sign-in: a TOTP code or a recovery code with the password step's mfa_token. */
export async function signInSecondFactor(step: SecondStep, method: keyof typeof SECOND_FACTOR, code: string): Promise<void> {
  const [grantType, param] = SECOND_FACTOR[method];
  await grant({ grant_type: grantType, mfa_token: step.mfaToken, [param]: code });
}

/** Ends this session (`local`), every other one (`others`) or all of them (`global`). */
export async function signOut(scope: 'local' | 'others' | 'global' = 'local'): Promise<void> {
  const res = await exclusive(() => post(`/auth/browser/logout?scope=${scope}`));
  if (!res.ok && res.status !== 401) throw await toError(res);
  if (scope === 'others') return;
  forget();
  tabs?.postMessage('signed-out');
}

if (tabs) {
  tabs.onmessage = (e: MessageEvent) => {
    if (e.data === 'signed-out') forget();
    else if (e.data === 'signed-in') void refresh().catch(() => undefined);
  };
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  body?: unknown;
}

/**
 * A JSON request to the API with the access token (when signed in). A 401
 * refreshes once and retries; if the session is gone, the caller gets the 401
 * and the app shows the sign-in page.
 */
export async function api<T = unknown>(path: string, { method = 'GET', body }: RequestOptions = {}): Promise<T> {
  const send = () => {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (accessToken) headers.authorization = `Bearer ${accessToken}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    return fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  };
  let res = await send();
  if (res.status === 401 && accessToken) {
    if (await refresh()) res = await send();
    else throw new ApiError(401, 'Your session has ended. Please sign in again.', 'not_authenticated');
  }
  if (res.status === 401) forget();
  if (!res.ok) throw await toError(res);
  return (res.status === 204 ? undefined : await res.json()) as T;
}
