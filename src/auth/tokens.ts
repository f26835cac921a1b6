// RFC 9068 access tokens, signed and verified with fast-jwt (synchronous
// node:crypto, with a verified-token cache: this is the hot path of every
// protected request). Time claims are checked here against the injectable
// clock, with the configured leeway.
import { createSigner, createVerifier } from 'fast-jwt';
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { SigningKeys } from './keys.js';

export const MAX_TOKEN_BYTES = 8 * 1024;

export interface AccessClaims {
  iss: string;
  aud: string;
  sub: string;
  exp: number;
  iat: number;
  nbf?: number;
  jti: string;
  sid: string;
  scope: string;
  username: string;
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
  keys: SigningKeys;
  issuer: string;
  audience: string;
  accessTtlSeconds: number;
  leewaySeconds: number;
  clock: Clock;
}

export class TokenService {
  private readonly sign: (payload: Record<string, unknown>) => string;
  private readonly verifySignature: (token: string) => Record<string, unknown>;

  constructor(private readonly opts: TokenServiceOptions) {
    this.sign = createSigner({
      key: opts.keys.signKey,
      algorithm: opts.keys.algorithm,
      kid: opts.keys.kid,
      header: { alg: opts.keys.algorithm, typ: 'at+jwt' },
    });
    this.verifySignature = createVerifier({
      key: opts.keys.verifyKey,
      algorithms: [opts.keys.algorithm],
      checkTyp: 'at+jwt',
      allowedIss: opts.issuer,
      allowedAud: opts.audience,
      requiredClaims: ['iss', 'aud', 'sub', 'exp', 'iat', 'jti', 'sid', 'scope'],
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

  issue(claims: { sub: string; sid: string; scope: string; username: string }): IssuedAccessToken {
    const iat = Math.floor(this.opts.clock.now() / 1000);
    const exp = iat + this.opts.accessTtlSeconds;
    const jti = randomUUID();
    // iat and exp come from our clock (fast-jwt keeps a payload iat as given).
    const token = this.sign({
      iss: this.opts.issuer,
      aud: this.opts.audience,
      sub: claims.sub,
      exp,
      iat,
      jti,
      sid: claims.sid,
      scope: claims.scope,
      username: claims.username,
    });
    return { token, jti, exp, expiresIn: this.opts.accessTtlSeconds };
  }

  /** Verifies signature, typ, iss, aud, exp, nbf and size. Throws InvalidTokenError. */
  verify(token: string, opts: { ignoreExpiration?: boolean } = {}): AccessClaims {
    if (token.length > MAX_TOKEN_BYTES) throw new InvalidTokenError('The access token is too large');
    let payload: Record<string, unknown>;
    try {
      payload = this.verifySignature(token);
    } catch {
      throw new InvalidTokenError('The access token is invalid');
    }
    const claims = payload as unknown as AccessClaims;
    if (
      typeof claims.sub !== 'string' ||
      typeof claims.sid !== 'string' ||
      typeof claims.jti !== 'string' ||
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
    return claims;
  }
}
