// Passkeys (W3C WebAuthn L3 with @simplewebauthn/server): the registration
// and authentication ceremonies, and the credentials they store.
//
// - The relying party is WEBAUTHN_RP_ID (default: PUBLIC_URL's host) and
//   the only origin accepted is PUBLIC_URL's: never a request's Host.
// - Every ceremony needs a challenge this server issued for that very
//   purpose (webauthn-challenges.ts); the challenge is read from the
//   response's clientDataJSON and spent before anything is verified.
// - Resident keys and user verification are required: a passkey alone is
//   something you have (the key) and something you are or know (the
//   authenticator's biometric or PIN), which is why it may sign in alone.
// - The signature counter is checked here, after the signature, with one
//   compare-and-set: a counter that does not move forward (unless both are
//   0, as synced passkeys report) means a cloned authenticator.
import { randomBytes, randomUUID } from 'node:crypto';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialDescriptorJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { Value } from 'typebox/value';
import type { Clock } from '../clock.js';
import type { Database, Queryable } from '../db/client.js';
import { AuthError } from './errors.js';
import { isUuid } from './ids.js';
import type { Role } from './scopes.js';
import { AuthenticationResponseJSON as AssertionSchema } from './passkey-schemas.js';
import { CHALLENGE_TTL_MS, type ChallengePurpose, type WebAuthnChallenges } from './webauthn-challenges.js';

let library: Promise<typeof import('@simplewebauthn/server')> | undefined;
/** Loaded at the first ceremony, not at start: it is the service's heaviest module (~0.3 s of every start). */
const webauthn = () => (library ??= import('@simplewebauthn/server'));

/** ES256 (-7) and EdDSA (-8): what every platform authenticator offers; no RSA. */
export const PASSKEY_ALGORITHMS = [-8, -7];
/** A person has a few; a bound keeps the exclusion list and the account page small. */
export const MAX_PASSKEYS_PER_USER = 20;
const TRANSPORTS = new Set<string>(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb']);

export interface RelyingParty {
  id: string;
  name: string;
  /** The one origin ceremonies may come from: PUBLIC_URL's. */
  origin: string;
}

export function relyingParty(publicUrl: string, rp: { rpId?: string; rpName: string }): RelyingParty {
  const url = new URL(publicUrl);
  return { id: rp.rpId ?? url.hostname, name: rp.rpName, origin: url.origin };
}

/** The creation options as sent (the RP's id always set). */
/** A credential named in options: the library types `type` as any string; it is always this one. */
type Descriptor = PublicKeyCredentialDescriptorJSON & { type: 'public-key' };
export type CreationOptions = Omit<PublicKeyCredentialCreationOptionsJSON, 'excludeCredentials'> & { rp: { name: string; id: string }; excludeCredentials?: Descriptor[] };

/** The request options as sent: every member this server always sets, typed as set. */
export type RequestOptions = Omit<PublicKeyCredentialRequestOptionsJSON, 'allowCredentials'> & {
  rpId: string;
  timeout: number;
  userVerification: 'required';
  allowCredentials?: Descriptor[];
};

export interface PasskeyView {
  id: string;
  name: string;
  created_at: string;
  last_used_at: string | null;
}

/** Why an assertion was refused: the audit log's reason (never shown to the client). */
export type AssertionFailure =
  | 'malformed'
  | 'challenge'
  | 'unknown_passkey'
  | 'wrong_user'
  | 'user_handle'
  | 'verification'
  | 'counter'
  | 'disabled';

export class PasskeyAssertionError extends Error {
  constructor(
    readonly reason: AssertionFailure,
    readonly context: { userId?: string; username?: string; passkeyId?: string; detail?: Record<string, unknown> } = {},
  ) {
    super(`passkey assertion refused: ${reason}`);
    this.name = 'PasskeyAssertionError';
  }
}

export interface VerifiedAssertion {
  userId: string;
  username: string;
  role: Role;
  passkeyId: string;
}

interface PasskeyRow {
  id: string;
  user_id: string;
  username: string;
  role: Role;
  disabled: boolean;
  credential_id: string;
  public_key: Uint8Array;
  sign_count: number;
  transports: string[];
  handle: string | null;
}

const view = (r: { id: string; name: string; created_at: Date; last_used_at: Date | null }): PasskeyView => ({
  id: r.id,
  name: r.name,
  created_at: r.created_at.toISOString(),
  last_used_at: r.last_used_at?.toISOString() ?? null,
});

/** A name as given, trimmed; control characters refused (they would be shown on the account page). */
export function passkeyName(raw: string | undefined, now: Date): string {
  if (raw === undefined) return `Passkey added ${now.toISOString().slice(0, 10)}`;
  const name = raw.trim();
  // eslint-disable-next-line no-control-regex
  if (!name || name.length > 64 || /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(name)) {
    throw new AuthError('validation_failed', 'The name is not valid', { errors: [{ path: '/name', message: 'must be 1–64 characters without control characters' }] });
  }
  return name;
}

/** The challenge a WebAuthn response signed, from its clientDataJSON (undefined when unreadable). */
function challengeOf(clientDataJSON: string): string | undefined {
  try {
    const data: unknown = JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8'));
    const challenge = (data as { challenge?: unknown } | null)?.challenge;
    return typeof challenge === 'string' ? challenge : undefined;
  } catch {
    return undefined;
  }
}

export class Passkeys {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly challenges: WebAuthnChallenges,
    readonly rp: RelyingParty,
  ) {}

  /** The user's WebAuthn user handle: 32 random bytes made once, the same for every passkey of theirs. */
  private async userHandle(userId: string): Promise<string> {
    const r = await this.db.query<{ handle: string }>(
      `WITH made AS (
         INSERT INTO webauthn_user_handles (user_id, handle) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING RETURNING handle)
       SELECT handle FROM made UNION ALL SELECT handle FROM webauthn_user_handles WHERE user_id = $1`,
      [userId, randomBytes(32).toString('base64url')],
    );
    return r.rows[0]!.handle;
  }

  /** Creation options for a new passkey of `user`, with a registration challenge bound to them. */
  async registrationOptions(user: { id: string; username: string; fullName: string | null }): Promise<CreationOptions> {
    const [handle, existing] = await Promise.all([
      this.userHandle(user.id),
      this.db.query<{ credential_id: string; transports: string[] }>('SELECT credential_id, transports FROM passkeys WHERE user_id = $1', [user.id]),
    ]);
    if (existing.rows.length >= MAX_PASSKEYS_PER_USER) {
      throw new AuthError('passkey_limit', `An account may have at most ${MAX_PASSKEYS_PER_USER} passkeys; remove one first`);
    }
    const challenge = await this.challenges.issue('registration', user.id);
    const options = await (await webauthn()).generateRegistrationOptions({
      rpName: this.rp.name,
      rpID: this.rp.id,
      userName: user.username,
      userDisplayName: user.fullName ?? user.username,
      userID: Buffer.from(handle, 'base64url'),
      challenge: Buffer.from(challenge, 'base64url'),
      timeout: CHALLENGE_TTL_MS,
      attestationType: 'none',
      excludeCredentials: existing.rows.map((c) => ({ id: c.credential_id, transports: c.transports })),
      authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'required' },
      supportedAlgorithmIDs: PASSKEY_ALGORITHMS,
    });
    return { ...options, rp: { name: this.rp.name, id: this.rp.id }, excludeCredentials: descriptors(options.excludeCredentials) };
  }

  /** Verifies a registration response for `userId` and stores the passkey. */
  async register(userId: string, response: RegistrationResponseJSON, name: string | undefined): Promise<PasskeyView> {
    const now = new Date(this.clock.now());
    const label = passkeyName(name, now);
    const challenge = challengeOf(response.response.clientDataJSON);
    const refused = () => new AuthError('passkey_invalid', 'The passkey could not be verified; ask for new options and try again');
    if (!challenge || !(await this.challenges.spend(challenge, 'registration', userId))) throw refused();
    let info;
    try {
      const v = await (await webauthn()).verifyRegistrationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: this.rp.origin,
        expectedRPID: this.rp.id,
        requireUserPresence: true,
        requireUserVerification: true,
        supportedAlgorithmIDs: PASSKEY_ALGORITHMS,
      });
      if (!v.verified) throw new Error('not verified');
      info = v.registrationInfo;
    } catch {
      throw refused();
    }
    const { credential } = info;
    const transports = (credential.transports ?? response.response.transports ?? []).filter((t) => TRANSPORTS.has(t));
    const r = await this.db.query<{ id: string; name: string; created_at: Date; last_used_at: Date | null }>(
      `INSERT INTO passkeys (id, user_id, credential_id, public_key, sign_count, transports, name, aaguid, backed_up, created_at)
       SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
        WHERE (SELECT count(*) FROM passkeys WHERE user_id = $2) < $11
       ON CONFLICT (credential_id) DO NOTHING
       RETURNING id, name, created_at, last_used_at`,
      [randomUUID(), userId, credential.id, Buffer.from(credential.publicKey), credential.counter, transports, label, info.aaguid, info.credentialBackedUp, now, MAX_PASSKEYS_PER_USER],
    );
    if (!r.rows[0]) {
      const taken = await this.db.query('SELECT 1 FROM passkeys WHERE credential_id = $1', [credential.id]);
      if (taken.rows.length) throw new AuthError('passkey_exists', 'This passkey is already registered');
      throw new AuthError('passkey_limit', `An account may have at most ${MAX_PASSKEYS_PER_USER} passkeys; remove one first`);
    }
    return view(r.rows[0]);
  }

  async list(userId: string): Promise<PasskeyView[]> {
    const r = await this.db.query<{ id: string; name: string; created_at: Date; last_used_at: Date | null }>(
      'SELECT id, name, created_at, last_used_at FROM passkeys WHERE user_id = $1 ORDER BY created_at, id',
      [userId],
    );
    return r.rows.map(view);
  }

  async count(userId: string): Promise<number> {
    return (await this.db.query<{ n: number }>('SELECT count(*)::int AS n FROM passkeys WHERE user_id = $1', [userId])).rows[0]!.n;
  }

  /** Renames one of the user's passkeys; undefined when it is not theirs. */
  async rename(userId: string, id: string, name: string): Promise<PasskeyView | undefined> {
    if (!isUuid(id)) return undefined;
    const label = passkeyName(name, new Date(this.clock.now()));
    const r = await this.db.query<{ id: string; name: string; created_at: Date; last_used_at: Date | null }>(
      'UPDATE passkeys SET name = $3 WHERE id = $1 AND user_id = $2 RETURNING id, name, created_at, last_used_at',
      [id, userId, label],
    );
    return r.rows[0] && view(r.rows[0]);
  }

  /** Deletes one of the user's passkeys: its name, or undefined when it is not theirs. */
  async remove(userId: string, id: string): Promise<string | undefined> {
    if (!isUuid(id)) return undefined;
    const r = await this.db.query<{ name: string }>('DELETE FROM passkeys WHERE id = $1 AND user_id = $2 RETURNING name', [id, userId]);
    return r.rows[0]?.name;
  }

  /** Whether the user has a passkey (in the caller's transaction when given). */
  async has(userId: string, q: Queryable = this.db): Promise<boolean> {
    return (await q.query('SELECT 1 FROM passkeys WHERE user_id = $1 LIMIT 1', [userId])).rows.length > 0;
  }

  /** Every passkey of the user goes (an administrator's reset of their second factors). */
  async removeAll(userId: string, q: Queryable = this.db): Promise<void> {
    await q.query('DELETE FROM passkeys WHERE user_id = $1', [userId]);
  }

  /**
   * Request options. Passwordless (no `secondFactor`): no allowCredentials,
   * the passkey names the user. As a second factor: the user's passkeys
   * allowed, and the challenge bound to that login's pending second step.
   */
  async authenticationOptions(secondFactor?: { binding: string; userId: string }): Promise<RequestOptions> {
    const purpose: ChallengePurpose = secondFactor ? 'second_factor' : 'authentication';
    const [challenge, allowed] = await Promise.all([
      this.challenges.issue(purpose, secondFactor?.binding ?? null),
      secondFactor
        ? this.db.query<{ credential_id: string; transports: string[] }>('SELECT credential_id, transports FROM passkeys WHERE user_id = $1', [secondFactor.userId])
        : undefined,
    ]);
    const options = await (await webauthn()).generateAuthenticationOptions({
      rpID: this.rp.id,
      challenge: Buffer.from(challenge, 'base64url'),
      timeout: CHALLENGE_TTL_MS,
      userVerification: 'required',
      allowCredentials: allowed?.rows.map((c) => ({ id: c.credential_id, transports: c.transports })),
    });
    return { ...options, rpId: this.rp.id, timeout: CHALLENGE_TTL_MS, userVerification: 'required', allowCredentials: descriptors(options.allowCredentials) };
  }

  /** The `assertion` parameter (AuthenticationResponseJSON as a string), checked for shape only. */
  parseAssertion(raw: string): AuthenticationResponseJSON {
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      throw new AuthError('invalid_request', 'The assertion parameter must be an AuthenticationResponseJSON object, as a JSON string');
    }
    if (!Value.Check(AssertionSchema, value)) {
      throw new AuthError('invalid_request', 'The assertion parameter must be an AuthenticationResponseJSON object, as a JSON string');
    }
    return value as AuthenticationResponseJSON;
  }

  /**
   * Verifies an assertion made for `purpose` (bound to `binding`) and moves
   * the passkey's counter forward. `userId`: the user it must belong to (a
   * second factor); otherwise the passkey names its user. Throws
   * PasskeyAssertionError with the reason; the caller decides the answer.
   */
  async verifyAssertion(
    assertion: AuthenticationResponseJSON,
    expect: { purpose: 'authentication' } | { purpose: 'second_factor'; binding: string; userId: string },
  ): Promise<VerifiedAssertion> {
    const challenge = challengeOf(assertion.response.clientDataJSON);
    const binding = expect.purpose === 'second_factor' ? expect.binding : null;
    // Spent first: whatever happens next, this response can never be presented again.
    if (!challenge || !(await this.challenges.spend(challenge, expect.purpose, binding))) {
      throw new PasskeyAssertionError('challenge');
    }
    const row = (
      await this.db.query<PasskeyRow>(
        `SELECT p.id, p.user_id, u.username, u.role, u.disabled, p.credential_id, p.public_key, p.sign_count, p.transports, h.handle
           FROM passkeys p JOIN users u ON u.id = p.user_id LEFT JOIN webauthn_user_handles h ON h.user_id = p.user_id
          WHERE p.credential_id = $1`,
        [assertion.id],
      )
    ).rows[0];
    if (!row) throw new PasskeyAssertionError('unknown_passkey', { detail: { credential_id: assertion.id.slice(0, 64) } });
    const who = { userId: row.user_id, username: row.username, passkeyId: row.id };
    if (expect.purpose === 'second_factor' && row.user_id !== expect.userId) throw new PasskeyAssertionError('wrong_user', who);
    // §7.2 step 6: when the user was not named first, the handle must be present and be the owner's.
    const handle = assertion.response.userHandle;
    if (expect.purpose === 'authentication' ? handle !== row.handle : handle !== undefined && handle !== row.handle) {
      throw new PasskeyAssertionError('user_handle', who);
    }
    let newCounter: number;
    try {
      const v = await (await webauthn()).verifyAuthenticationResponse({
        response: assertion,
        expectedChallenge: challenge,
        expectedOrigin: this.rp.origin,
        expectedRPID: this.rp.id,
        // The counter is judged below, after the signature, with the stored value read atomically.
        credential: { id: row.credential_id, publicKey: new Uint8Array(row.public_key), counter: 0 },
        requireUserVerification: true,
      });
      if (!v.verified) throw new Error('bad signature');
      newCounter = v.authenticationInfo.newCounter;
    } catch {
      throw new PasskeyAssertionError('verification', who);
    }
    if (row.disabled) throw new PasskeyAssertionError('disabled', who);
    // Forward only (or 0 after 0): one statement, so two assertions cannot both claim one value.
    const moved = await this.db.query(
      `UPDATE passkeys SET sign_count = $2, last_used_at = $3
        WHERE id = $1 AND ($2 > sign_count OR ($2 = 0 AND sign_count = 0))`,
      [row.id, newCounter, new Date(this.clock.now())],
    );
    if (moved.rowCount !== 1) {
      const stored = (await this.db.query<{ sign_count: number }>('SELECT sign_count::float8 AS sign_count FROM passkeys WHERE id = $1', [row.id])).rows[0];
      if (!stored) throw new PasskeyAssertionError('unknown_passkey', who); // deleted meanwhile
      throw new PasskeyAssertionError('counter', { ...who, detail: { stored_counter: stored.sign_count, presented_counter: newCounter } });
    }
    return { ...who, role: row.role };
  }

  /** Expired challenges go; the core's housekeeping calls this. */
  housekeep(): Promise<number> {
    return this.challenges.housekeep();
  }
}

function descriptors(list: PublicKeyCredentialDescriptorJSON[] | undefined): Descriptor[] | undefined {
  return list?.map((d) => ({ ...d, type: 'public-key' }));
}
