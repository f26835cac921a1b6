// The second-factor grants of the token endpoints (API.md, "Two-factor
// authentication"): each takes the mfa_token of a right password and a
// proof, and finishes the login through Grants.secondFactor. They join
// GRANT_TYPES (grant-dispatch.ts), so /auth/token and /auth/browser/token
// both serve them. A new factor (a passkey) adds its grant type here.
import { AuthError } from './errors.js';
import type { GrantHandler, OAuthParams } from './grant-dispatch.js';
import { MFA_WEBAUTHN_GRANT, PASSKEY_SECOND_FACTOR_AMR } from './passkey-grants.js';

export const MFA_OTP_GRANT = 'urn:gatehouse:params:oauth:grant-type:mfa-otp';
export const MFA_RECOVERY_CODE_GRANT = 'urn:gatehouse:params:oauth:grant-type:mfa-recovery-code';

/** RFC 8176: a one-time code (TOTP or a recovery code) was shown. */
const OTP_AMR = ['otp'] as const;

const required = (p: OAuthParams, ...names: string[]): string[] => {
  const values = names.map((n) => p[n]);
  if (values.some((v) => !v)) throw new AuthError('invalid_request', `The ${names.join(' and ')} parameters are required`);
  return values as string[];
};

/** grant_type → handler: entries of GRANT_TYPES. */
export const SECOND_FACTOR_GRANTS: Record<string, GrantHandler> = {
  [MFA_OTP_GRANT]: (core, p, meta) => {
    const [mfaToken, otp] = required(p, 'mfa_token', 'otp');
    return core.grants.secondFactor({ mfaToken: mfaToken!, method: 'totp' }, meta, (c) => core.totp.verify(c.userId, otp!), OTP_AMR);
  },
  [MFA_RECOVERY_CODE_GRANT]: (core, p, meta) => {
    const [mfaToken, code] = required(p, 'mfa_token', 'recovery_code');
    return core.grants.secondFactor({ mfaToken: mfaToken!, method: 'recovery_code' }, meta, (c) => core.recovery.use(c.userId, code!), OTP_AMR);
  },
  [MFA_WEBAUTHN_GRANT]: (core, p, meta) => {
    const [mfaToken, raw] = required(p, 'mfa_token', 'assertion');
    const assertion = core.passkeys.parseAssertion(raw!);
    return core.grants.secondFactor(
      { mfaToken: mfaToken!, method: 'webauthn' },
      meta,
      (c) => core.passkeyGrants.verifySecondFactor(c, assertion),
      PASSKEY_SECOND_FACTOR_AMR,
    );
  },
};
