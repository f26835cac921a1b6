// Access tokens in the shape of RFC 9068 but not yet conforming: header typ
// at+jwt; claims iss, aud, sub, exp, iat and jti, which are all that RFC 9068
// §2.2 requires except client_id, not issued yet; plus sid, scope and
// username. Signed and verified with fast-jwt (synchronous
// node:crypto, with a verified-token cache: this is the hot path of every
// protected request). Time claims are checked here against the injectable
// clock, with the configured leeway.
import { createSigner, createVerifier } from 'fast-jwt';
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { isUuid } from './ids.js';
import type { KeyRing } from './key-ring.js';
import type { SigningKey } from './keys.js';
import { normalizeProfile, profileClaims, type TokenProfile } from './token-profiles.js';

export const MAX_TOKEN_BYTES = 8 * 1024;

export interface AccessClaims {
  iss: string;
  /** Absent from tokens of the fastapi profile (token-profiles.ts). */
  aud?: string;
  /** The user's id, whichever profile the token was issued in. */
  sub: string;
  exp: number;
  iat: number;
  nbf?: number;
  jti: string;
  sid: string;
  scope: string;
  username: string;
  client_id: string;
  /** When the session's sign-in happened (seconds since the epoch). */
  auth_time: number;
  /** RFC 8176 authentication methods of the sign-in. */
  amr: string[];
}

/** What a new access token says about its session. */
export interface AccessGrant {
  sub: string;
  sid: string;
  scope: string;
  username: string;
  /** The session's sign-in, ms since the epoch. */
  authTime: number;
  amr: readonly string[];
}

/** RFC 8725 §3.11: a header says how to check the token and nothing else (no jku, x5u, jwk, x5c, crit…). */
const HEADER_MEMBERS = new Set(['alg', 'typ', 'kid']);
const B64URL = /^[A-Za-z0-9_-]*$/;

/**
 * Three unpadded base64url segments, the signature in its one canonical
 * spelling (its last character's unused low bits zero): otherwise several
 * strings would verify as the same token.
 */
function canonicalSegments(token: string): boolean {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => B64URL.test(p))) return false;
  const sig = parts[2]!;
  return Buffer.from(sig, 'base64url').toString('base64url') === sig;
}

export class InvalidTokenError extends Error {
  constructor(readonly description: string) {
    super(description);
    this.name = 'InvalidTokenError';
  }
}

export interface IssuedAccessToken {
  token: string;
  jti: string;
  /** Seconds since the epoch. */
  exp: number;
  expiresIn: number;
}

export interface TokenServiceOptions {
  keys: KeyRing;
  issuer: string;
  audience: string;
  accessTtlSeconds: number;
  leewaySeconds: number;
  /** RFC 9068 client_id of the tokens we issue (our first-party, public clients). */
  clientId: string;
  clock: Clock;
  /** The shape of issued tokens (token-profiles.ts); both are accepted. */
  profile?: TokenProfile;
}

type Signer = (payload: Record<string, unknown>) => string;
type Verifier = (token: string) => { header: Record<string, unknown>; payload: Record<string, unknown> };

/** The kid of a token's header, read before any key is chosen (undefined when there is none to read). */
function headerKid(token: string): unknown {
  try {
    const header = JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString('utf8')) as unknown;
    return header !== null && typeof header === 'object' ? (header as { kid?: unknown }).kid : undefined;
  } catch {
    return undefined;
  }
}

export class TokenService {
  // One signer and one verifier per key, made when first needed (a reloaded ring brings new key objects).
  private readonly signers = new WeakMap<SigningKey, Signer>();
  private readonly verifiers = new WeakMap<SigningKey, Verifier>();

  constructor(private readonly opts: TokenServiceOptions) {}

  get keys(): KeyRing {
    return this.opts.keys;
  }

  private signerOf(key: SigningKey): Signer {
    let sign = this.signers.get(key);
    if (!sign) {
      sign = createSigner({ key: key.signKey, algorithm: key.algorithm, kid: key.kid, header: { alg: key.algorithm, typ: 'at+jwt' } });
      this.signers.set(key, sign);
    }
    return sign;
  }

  private verifierOf(key: SigningKey): Verifier {
    let verify = this.verifiers.get(key);
    if (!verify) {
      verify = this.createVerifier(key);
      this.verifiers.set(key, verify);
    }
    return verify;
  }

  private createVerifier(key: SigningKey): Verifier {
    const opts = this.opts;
    return createVerifier({
      key: key.verifyKey,
      // The key's own algorithm, and no other.
      algorithms: [key.algorithm],
      checkTyp: 'at+jwt',
      allowedIss: opts.issuer,
      allowedAud: opts.audience,
      // aud is checked when present; normalizeProfile requires it unless the token is the fastapi shape.
      requiredClaims: ['iss', 'sub', 'exp', 'iat', 'jti', 'sid', 'scope'],
      complete: true,
      // exp/nbf are checked below against the movable clock; the cache keeps
      // the signature work, never a decision about time.
      ignoreExpiration: true,
      ignoreNotBefore: true,
      cache: 10_000,
      cacheTTL: opts.accessTtlSeconds * 1000,
    });
  }

  get accessTtlSeconds(): number {
    return this.opts.accessTtlSeconds;
  }

  /** Until when (ms since the epoch) a token expiring at `expSeconds` is still accepted: the one place leeway meets exp. */
  usableUntilMs(expSeconds: number): number {
    return (expSeconds + this.opts.leewaySeconds) * 1000;
  }

  issue(claims: AccessGrant): IssuedAccessToken {
    const iat = Math.floor(this.opts.clock.now() / 1000);
    const exp = iat + this.opts.accessTtlSeconds;
    const jti = randomUUID();
    // iat and exp come from our clock (fast-jwt keeps a payload iat as given).
    const token = this.signerOf(this.opts.keys.signer(this.opts.clock.now()))({
      iss: this.opts.issuer,
      ...profileClaims(this.opts.profile ?? 'rfc9068', this.opts.audience, { id: claims.sub, username: claims.username }, claims.scope),
      exp,
      iat,
      jti,
      client_id: this.opts.clientId,
      sid: claims.sid,
      scope: claims.scope,
      username: claims.username,
      auth_time: Math.floor(claims.authTime / 1000),
      amr: [...claims.amr],
    });
    return { token, jti, exp, expiresIn: this.opts.accessTtlSeconds };
  }

  /** Verifies signature, typ, iss, aud, exp, nbf and size. Throws InvalidTokenError. */
  verify(token: string, opts: { ignoreExpiration?: boolean } = {}): AccessClaims {
    if (token.length > MAX_TOKEN_BYTES) throw new InvalidTokenError('The access token is too large');
    if (!canonicalSegments(token)) throw new InvalidTokenError('The access token is invalid');
    const key = this.opts.keys.find(headerKid(token), this.opts.clock.now());
    if (!key) throw new InvalidTokenError('The access token names no key of ours');
    let decoded;
    try {
      decoded = this.verifierOf(key)(token);
    } catch {
      throw new InvalidTokenError('The access token is invalid');
    }
    const { header, payload } = decoded;
    if (Object.keys(header).some((k) => !HEADER_MEMBERS.has(k))) throw new InvalidTokenError('The access token header has a member it must not have');
    const claims = normalizeProfile(payload) as unknown as AccessClaims | undefined;
    if (
      !claims ||
      // Ids are ours, so UUIDs: anything else names nothing (and would reach PostgreSQL as a bad cast).
      !isUuid(claims.sub) ||
      !isUuid(claims.sid) ||
      !isUuid(claims.jti) ||
      typeof claims.scope !== 'string' ||
      typeof claims.exp !== 'number' ||
      typeof claims.iat !== 'number' ||
      (claims.nbf !== undefined && typeof claims.nbf !== 'number')
    ) {
      throw new InvalidTokenError('The access token is invalid');
    }
    const nowMs = this.opts.clock.now();
    if (!opts.ignoreExpiration && this.usableUntilMs(claims.exp) <= nowMs) throw new InvalidTokenError('The access token expired');
    const now = nowMs / 1000;
    const leeway = this.opts.leewaySeconds;
    if (claims.nbf !== undefined && claims.nbf - leeway > now) throw new InvalidTokenError('The access token is not yet valid');
    if (claims.iat - leeway > now) throw new InvalidTokenError('The access token is not yet valid');
    // A token living longer than we ever issue was not issued by us as configured.
    if (claims.exp - claims.iat > this.opts.accessTtlSeconds + leeway) throw new InvalidTokenError('The access token lives longer than allowed');
    return claims;
  }
}
