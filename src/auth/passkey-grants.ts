// The passkey grants of the token endpoint:
// - urn:gatehouse:params:oauth:grant-type:webauthn — a passkey alone signs
//   in (amr ["hwk", "user", "mfa"]: a hardware-bound key, user
//   verification by the authenticator, and the two together are two factors);
// - urn:gatehouse:params:oauth:grant-type:mfa-webauthn — a passkey as the
//   second step after a right password (Grants.secondFactor: the mfa_token's
//   attempts and the account's second-factor counters; amr ["pwd", "hwk", "mfa"]).
// Every refusal is the same 400 invalid_grant; the audit log keeps the reason.
//
// A passkey does not by itself turn two-factor sign-in on (the contract:
// "a right password for a user with TOTP → mfa_required"): it is a way in
// on its own, and as a second factor it is offered once TOTP is on. So an
// account whose only second factor would be a lost passkey never exists:
// there are always recovery codes beside it.
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import type { Queryable } from '../db/client.js';
import type { AuditLog } from './audit.js';
import { AuthError } from './errors.js';
import type { FactorRefusal, Grants, TokenResponse } from './grants.js';
import type { MfaChallenge, SecondFactorProvider } from './mfa-challenge.js';
import { PasskeyAssertionError, type Passkeys } from './passkeys.js';
import type { ScopeRules } from './scopes.js';
import type { SessionMeta } from './sessions.js';

export const WEBAUTHN_GRANT = 'urn:gatehouse:params:oauth:grant-type:webauthn';
export const MFA_WEBAUTHN_GRANT = 'urn:gatehouse:params:oauth:grant-type:mfa-webauthn';

/** RFC 8176: a passkey alone. `hwk`: proof of a hardware-bound key; `user`: the authenticator verified the user; `mfa`: both. */
export const PASSKEY_AMR = ['hwk', 'user', 'mfa'] as const;
/** RFC 8176: what a passkey adds after a password (the session's amr: ["pwd", "hwk", "mfa"]). */
export const PASSKEY_SECOND_FACTOR_AMR = ['hwk'] as const;

/** The `webauthn` method of mfa_methods: a user with a passkey, once two-factor sign-in is on (TOTP). */
export class PasskeyFactor implements SecondFactorProvider {
  readonly method = 'webauthn';

  constructor(
    private readonly passkeys: Passkeys,
    /** The factor that turns two-factor sign-in on (TOTP). */
    private readonly primary: SecondFactorProvider,
  ) {}

  async enabledFor(userId: string, q?: Queryable): Promise<boolean> {
    return (await this.primary.enabledFor(userId, q)) && (await this.passkeys.has(userId, q));
  }

  remove(userId: string, q: Queryable): Promise<void> {
    return this.passkeys.removeAll(userId, q);
  }
}

const REFUSED = 'The passkey assertion is invalid, expired, already used or not registered';

export interface PasskeyGrantDeps {
  passkeys: Passkeys;
  grants: Grants;
  scopes: ScopeRules;
  audit: AuditLog;
}

export class PasskeyGrants {
  constructor(private readonly deps: PasskeyGrantDeps) {}

  /** The passwordless sign-in: a discoverable credential names its user. */
  async webauthn(input: { assertion: string; scope?: string }, meta: SessionMeta): Promise<TokenResponse> {
    const { passkeys, grants, scopes, audit } = this.deps;
    const requested = grants.requestedScope(input.scope);
    const assertion = passkeys.parseAssertion(input.assertion);
    let who;
    try {
      who = await passkeys.verifyAssertion(assertion, { purpose: 'authentication' });
    } catch (err) {
      if (!(err instanceof PasskeyAssertionError)) throw err;
      const { userId, username, passkeyId, detail } = err.context;
      // A counter that went backwards is a cloned authenticator: said loudly, with both values.
      audit.record({ type: 'login_failed', userId, username, meta, detail: { method: 'webauthn', reason: err.reason, passkey_id: passkeyId, ...detail } });
      throw new AuthError('passkey_rejected', REFUSED);
    }
    if (requested && !scopes.roleAllows(who.role, requested)) {
      audit.record({ type: 'login_failed', userId: who.userId, username: who.username, meta, detail: { method: 'webauthn', reason: 'invalid_scope' } });
      throw new AuthError('invalid_scope', 'The requested scope is not allowed for this account');
    }
    const scope = scopes.format(requested ?? scopes.allowed(who.role));
    const { response, sessionId } = await grants.openSession({ id: who.userId, username: who.username }, scope, meta, PASSKEY_AMR);
    audit.record({ type: 'login', userId: who.userId, username: who.username, sessionId, meta, detail: { scope, method: 'webauthn', passkey_id: who.passkeyId } });
    return response;
  }

  /**
   * The mfa-webauthn grant's check, for Grants.secondFactor: an assertion
   * answering options issued for this very mfa_token, by a passkey of the
   * user who gave the password. A refusal carries its reason to the audit log.
   */
  async verifySecondFactor(challenge: MfaChallenge, assertion: AuthenticationResponseJSON): Promise<true | FactorRefusal> {
    try {
      await this.deps.passkeys.verifyAssertion(assertion, { purpose: 'second_factor', binding: challenge.tokenHash, userId: challenge.userId });
      return true;
    } catch (err) {
      if (!(err instanceof PasskeyAssertionError)) throw err;
      return { detail: { reason: err.reason, passkey_id: err.context.passkeyId, ...err.context.detail } };
    }
  }
}
