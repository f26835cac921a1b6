// The two shapes of the access tokens we issue (TOKEN_PROFILE), and the one
// place a verified payload of either shape becomes AccessClaims.
//
// - rfc9068 (default): sub = the user's id, aud = our audience.
// - fastapi: what a resource server written as the FastAPI tutorials teach
//   accepts unchanged: `jwt.decode(token, SECRET_KEY, algorithms=["HS256"])`
//   (no audience given, so the token must carry no `aud`: PyJWT and
//   python-jose refuse one), `payload["sub"]` read as the username and
//   `payload.get("scopes", [])` as a list. The user's id travels as `uid`.
//
// Whatever profile is configured, verification accepts both (tokens issued
// before a change of TOKEN_PROFILE stay valid) and checks everything else the
// same way: signature, typ, iss, exp, kid, then the user by id and the
// revocation of jti and sid (guard.ts).
import { isUuid } from './ids.js';

export const TOKEN_PROFILES = ['rfc9068', 'fastapi'] as const;
export type TokenProfile = (typeof TOKEN_PROFILES)[number];

/** The claims that differ between the profiles, for a user and a scope string. */
export function profileClaims(
  profile: TokenProfile,
  audience: string,
  user: { id: string; username: string },
  scope: string,
): Record<string, unknown> {
  if (profile === 'fastapi') {
    return { sub: user.username, uid: user.id, scopes: scope.split(' ').filter(Boolean) };
  }
  return { aud: audience, sub: user.id };
}

/**
 * A payload whose signature, typ, iss (and aud, when present) were verified →
 * the claims in the rfc9068 reading (sub = the user's id, username = the
 * name), or undefined when it is neither profile's shape. Without `aud` a
 * token must be the fastapi shape in full, so no token of ours can drop its
 * audience and still be read as rfc9068.
 */
export function normalizeProfile(payload: Record<string, unknown>): Record<string, unknown> | undefined {
  if (!('uid' in payload)) return 'aud' in payload && isUuid(payload.sub) ? payload : undefined;
  const { uid, sub, scopes, scope } = payload;
  if (!isUuid(uid) || typeof sub !== 'string' || typeof scope !== 'string' || !Array.isArray(scopes)) return undefined;
  // The list must say exactly what the string says: a resource server may read either.
  if (scopes.join(' ') !== scope.split(' ').filter(Boolean).join(' ')) return undefined;
  return { ...payload, sub: uid, username: sub };
}
