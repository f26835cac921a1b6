// The passkey grants of the token endpoint:
// - urn:gatehouse:params:oauth:grant-type:webauthn — a passkey alone signs
//   in (amr ["hwk", "user", "mfa"]: a hardware-bound key, user
//   verification by the authenticator, and the two together are two factors);
// - urn:gatehouse:params:oauth:grant-type:mfa-webauthn — a passkey as the
//   second step after a right password (wired to the second-step machinery).
// Every refusal is the same 400 invalid_grant; the audit log keeps the reason.
import type { AuditLog } from './audit.js';
import { AuthError } from './errors.js';
import type { Grants, TokenResponse } from './grants.js';
import { PasskeyAssertionError, type Passkeys } from './passkeys.js';
import type { ScopeRules } from './scopes.js';
import type { SessionMeta } from './sessions.js';

export const WEBAUTHN_GRANT = 'urn:gatehouse:params:oauth:grant-type:webauthn';
export const MFA_WEBAUTHN_GRANT = 'urn:gatehouse:params:oauth:grant-type:mfa-webauthn';

/** RFC 8176: a passkey alone. `hwk`: proof of a hardware-bound key; `user`: the authenticator verified the user; `mfa`: both. */
export const PASSKEY_AMR = ['hwk', 'user', 'mfa'] as const;

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
}
