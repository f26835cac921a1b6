// The CSRF gate of the cookie-mode endpoints (API.md, "Browser sessions").
// Defence in depth, each layer enough on its own against a cross-site form:
// - the cookie is SameSite=Strict: a request from another site carries none;
// - `X-Requested-With: gatehouse`: a form cannot send a header, and a
//   cross-origin fetch with one needs a CORS preflight that only listed
//   origins pass;
// - `Origin` must be exactly publicUrl's origin or a listed browser origin;
//   absent (not a browser's CORS-mode request) and `null` (sandboxed frames,
//   file: pages, cross-origin redirects) are refused.
// It runs before the body is read and before any limiter counts: a refused
// request costs nothing, changes nothing, and spends no refresh token.
import type { IncomingHttpHeaders } from 'node:http';
import { AuthError } from './errors.js';

export const CSRF_HEADER = 'x-requested-with';
export const CSRF_HEADER_VALUE = 'gatehouse';

/** The origins whose pages may use the cookie: publicUrl's, and those listed (never `*`). */
export function browserOriginsOf(publicUrl: string, listed: readonly string[]): ReadonlySet<string> {
  return new Set([new URL(publicUrl).origin, ...listed.filter((o) => o !== '*').map((o) => new URL(o).origin)]);
}

/** Throws 403 `csrf_rejected` unless the request comes from an allowed page's script. */
export function assertSameOriginScript(headers: IncomingHttpHeaders, allowed: ReadonlySet<string>): void {
  if (headers[CSRF_HEADER] !== CSRF_HEADER_VALUE) {
    throw new AuthError('csrf_rejected', `Refused: this endpoint needs the header X-Requested-With: ${CSRF_HEADER_VALUE}`);
  }
  // Compared as the browser serialises it (scheme://host[:port], lower case): no parsing to fool.
  const origin = headers.origin;
  if (typeof origin !== 'string' || !allowed.has(origin)) {
    throw new AuthError('csrf_rejected', 'Refused: the request does not come from a page of an allowed origin');
  }
}
