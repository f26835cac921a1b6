// A software WebAuthn authenticator for the tests, built from node:crypto
// and the specification alone (W3C WebAuthn Level 3 §6, RFC 8949 CBOR,
// RFC 9053 COSE keys): ES256 or Ed25519 keys, attestation "none",
// authenticator data and CBOR written byte by byte. It plays the browser's
// part too (clientDataJSON, the JSON forms of the responses), so a test
// can say what a browser would say and also what an attacker could:
// another origin, another RP ID, a stale counter, a replayed response.
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

// ---- A minimal CBOR encoder (RFC 8949 §3): unsigned and negative ints, bytes, text, arrays, maps ----

export type Cbor = number | Uint8Array | string | Cbor[] | Map<Cbor, Cbor>;

/** The head of a data item: major type and argument, in the shortest form (§4.2.1). */
function head(major: number, n: number): Buffer {
  const m = major << 5;
  if (n < 24) return Buffer.from([m | n]);
  if (n < 0x100) return Buffer.from([m | 24, n]);
  if (n < 0x10000) return Buffer.from([m | 25, n >> 8, n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = m | 26;
  b.writeUInt32BE(n, 1);
  return b;
}

export function cbor(value: Cbor): Buffer {
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error('only integers');
    return value >= 0 ? head(0, value) : head(1, -1 - value);
  }
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    return Buffer.concat([head(3, bytes.length), bytes]);
  }
  if (value instanceof Uint8Array) return Buffer.concat([head(2, value.length), Buffer.from(value)]);
  if (Array.isArray(value)) return Buffer.concat([head(4, value.length), ...value.map(cbor)]);
  const parts: Buffer[] = [head(5, value.size)];
  for (const [k, v] of value) parts.push(cbor(k), cbor(v));
  return Buffer.concat(parts);
}

// ---- COSE keys (RFC 9053 §7.1, §7.2) ----

export type Algorithm = 'ES256' | 'EdDSA';
export const COSE_ALG: Record<Algorithm, number> = { ES256: -7, EdDSA: -8 };

function coseKey(alg: Algorithm, publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' });
  const b = (s: string | undefined) => Buffer.from(s!, 'base64url');
  // kty 1 (3: alg) -1: crv, -2: x, -3: y
  if (alg === 'ES256') {
    return cbor(new Map<Cbor, Cbor>([[1, 2], [3, -7], [-1, 1], [-2, b(jwk.x)], [-3, b(jwk.y)]]));
  }
  return cbor(new Map<Cbor, Cbor>([[1, 1], [3, -8], [-1, 6], [-2, b(jwk.x)]]));
}

// ---- Authenticator data (§6.1) ----

export const FLAGS = { UP: 0x01, UV: 0x04, BE: 0x08, BS: 0x10, AT: 0x40, ED: 0x80 } as const;

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest();
const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');

export function authenticatorData(rpId: string, flags: number, signCount: number, attested?: Buffer): Buffer {
  const count = Buffer.alloc(4);
  count.writeUInt32BE(signCount >>> 0);
  return Buffer.concat([sha256(rpId), Buffer.from([flags]), count, ...(attested ? [attested] : [])]);
}

/** What the browser puts in clientDataJSON (§5.8.1). */
export function clientData(type: 'webauthn.create' | 'webauthn.get', challenge: string, origin: string, extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false, ...extra }), 'utf8');
}

/** What a ceremony may be told to get wrong (or right), as a browser or an attacker would. */
export interface CeremonyOverrides {
  origin?: string;
  rpId?: string;
  /** The challenge written in clientDataJSON (default: the one in the options). */
  challenge?: string;
  type?: 'webauthn.create' | 'webauthn.get';
  /** The counter to report (default: the authenticator's next value). */
  signCount?: number;
  /** Authenticator data flags (default UP | UV, plus AT on registration). */
  flags?: number;
  /** The user handle returned with an assertion (default: the one stored with the credential; null: none). */
  userHandle?: string | null;
  /** create(): claim this credential id (with a new key), as a client squatting on someone else's id would. */
  credentialId?: Buffer;
}

export interface SoftCredential {
  id: Buffer;
  alg: Algorithm;
  privateKey: KeyObject;
  publicKey: KeyObject;
  rpId: string;
  /** base64url, as the RP gave it in `user.id`. */
  userHandle: string;
  signCount: number;
}

interface CreationOptions {
  challenge: string;
  rp: { id?: string; name: string };
  user: { id: string; name: string; displayName: string };
  pubKeyCredParams: Array<{ alg: number; type: string }>;
  excludeCredentials?: Array<{ id: string }>;
  authenticatorSelection?: { residentKey?: string; userVerification?: string };
}

interface RequestOptions {
  challenge: string;
  rpId?: string;
  allowCredentials?: Array<{ id: string }>;
  userVerification?: string;
}

/**
 * A platform authenticator with resident keys and user verification: it
 * keeps its credentials, counts signatures (unless `counting` is false, as
 * passkeys synced between devices report 0), and answers create() and get()
 * with the JSON forms @simplewebauthn/browser would send.
 */
export class SoftAuthenticator {
  readonly credentials: SoftCredential[] = [];

  constructor(
    readonly origin: string,
    private readonly opts: { alg?: Algorithm; counting?: boolean; aaguid?: Buffer } = {},
  ) {}

  /**
   * navigator.credentials.create(): a new credential and its
   * RegistrationResponseJSON. With `reuse`, a dishonest client presenting
   * an existing credential again (the exclusion list ignored).
   */
  create(options: CreationOptions, over: CeremonyOverrides = {}, reuse?: SoftCredential): { response: RegistrationResponseJSONLike; credential: SoftCredential } {
    const alg = reuse?.alg ?? this.opts.alg ?? 'ES256';
    if (!options.pubKeyCredParams.some((p) => p.alg === COSE_ALG[alg])) throw new Error(`the RP does not offer ${alg}`);
    const rpId = over.rpId ?? options.rp.id ?? new URL(this.origin).hostname;
    const excluded = new Set((options.excludeCredentials ?? []).map((c) => c.id));
    if (!reuse && this.credentials.some((c) => c.rpId === rpId && excluded.has(b64u(c.id)))) {
      throw new Error('InvalidStateError: an excluded credential is present on this authenticator');
    }
    const keys = reuse ?? (alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519'));
    const { privateKey, publicKey } = keys;
    const credential: SoftCredential = reuse ?? { id: over.credentialId ?? randomBytes(32), alg, privateKey, publicKey, rpId, userHandle: options.user.id, signCount: 0 };
    const aaguid = this.opts.aaguid ?? Buffer.alloc(16);
    const idLen = Buffer.alloc(2);
    idLen.writeUInt16BE(credential.id.length);
    const attested = Buffer.concat([aaguid, idLen, credential.id, coseKey(alg, publicKey)]);
    const signCount = over.signCount ?? this.nextCount(credential);
    const authData = authenticatorData(rpId, over.flags ?? FLAGS.UP | FLAGS.UV | FLAGS.AT, signCount, attested);
    const attestationObject = cbor(new Map<Cbor, Cbor>([['fmt', 'none'], ['attStmt', new Map()], ['authData', authData]]));
    const cd = clientData(over.type ?? 'webauthn.create', over.challenge ?? options.challenge, over.origin ?? this.origin);
    // Keep it only once the ceremony produced a response (as a real one would).
    if (!reuse) this.credentials.push(credential);
    return {
      credential,
      response: {
        id: b64u(credential.id),
        rawId: b64u(credential.id),
        type: 'public-key',
        response: {
          clientDataJSON: b64u(cd),
          attestationObject: b64u(attestationObject),
          transports: ['internal'],
        },
        clientExtensionResults: { credProps: { rk: true } },
        authenticatorAttachment: 'platform',
      },
    };
  }

  /** navigator.credentials.get(): an assertion by `credential` (default: the one the options allow, or the newest for the RP). */
  get(options: RequestOptions, over: CeremonyOverrides = {}, credential?: SoftCredential): AuthenticationResponseJSONLike {
    const rpId = over.rpId ?? options.rpId ?? new URL(this.origin).hostname;
    const allowed = new Set((options.allowCredentials ?? []).map((c) => c.id));
    const cred =
      credential ??
      [...this.credentials].reverse().find((c) => c.rpId === (options.rpId ?? rpId) && (allowed.size === 0 || allowed.has(b64u(c.id))));
    if (!cred) throw new Error('NotAllowedError: no credential for this RP');
    const signCount = over.signCount ?? this.nextCount(cred);
    const authData = authenticatorData(rpId, over.flags ?? FLAGS.UP | FLAGS.UV, signCount);
    const cd = clientData(over.type ?? 'webauthn.get', over.challenge ?? options.challenge, over.origin ?? this.origin);
    const signed = Buffer.concat([authData, sha256(cd)]);
    // ES256: an ASN.1 DER ECDSA signature (§6.5.5), which node:crypto writes by default; Ed25519: 64 raw bytes.
    const signature = cred.alg === 'ES256' ? sign('sha256', signed, { key: cred.privateKey, dsaEncoding: 'der' }) : sign(null, signed, cred.privateKey);
    const userHandle = over.userHandle === undefined ? cred.userHandle : over.userHandle;
    return {
      id: b64u(cred.id),
      rawId: b64u(cred.id),
      type: 'public-key',
      response: {
        clientDataJSON: b64u(cd),
        authenticatorData: b64u(authData),
        signature: b64u(signature),
        ...(userHandle === null ? {} : { userHandle }),
      },
      clientExtensionResults: {},
      authenticatorAttachment: 'platform',
    };
  }

  private nextCount(cred: SoftCredential): number {
    if (this.opts.counting === false) return 0;
    cred.signCount += 1;
    return cred.signCount;
  }
}

/** The JSON forms (as @simplewebauthn/types spells them), kept loose so tests can break them. */
export interface RegistrationResponseJSONLike {
  id: string;
  rawId: string;
  type: 'public-key';
  response: { clientDataJSON: string; attestationObject: string; transports?: string[] };
  clientExtensionResults: Record<string, unknown>;
  authenticatorAttachment?: string;
}

export interface AuthenticationResponseJSONLike {
  id: string;
  rawId: string;
  type: 'public-key';
  response: { clientDataJSON: string; authenticatorData: string; signature: string; userHandle?: string };
  clientExtensionResults: Record<string, unknown>;
  authenticatorAttachment?: string;
}
