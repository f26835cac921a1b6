// The second-factor grants of the token endpoint (API.md, "Two-factor
// authentication"): each takes the mfa_token of a right password and a
// proof, and finishes the login through Grants.secondFactor. A new factor
// (a passkey) adds its grant type here.
import { AuthError } from './errors.js';
import type { Grants, TokenResponse } from './grants.js';
import type { RecoveryCodes } from './recovery-codes.js';
import type { SessionMeta } from './sessions.js';
import type { TotpFactor } from './totp.js';

export const MFA_OTP_GRANT = 'urn:gatehouse:params:oauth:grant-type:mfa-otp';
export const MFA_RECOVERY_CODE_GRANT = 'urn:gatehouse:params:oauth:grant-type:mfa-recovery-code';

/** RFC 8176: a one-time code (TOTP or a recovery code) was shown. */
const OTP_AMR = ['otp'] as const;

export type GrantHandler = (params: Record<string, string | undefined>, meta: SessionMeta) => Promise<TokenResponse>;

const required = (p: Record<string, string | undefined>, ...names: string[]): string[] => {
  const values = names.map((n) => p[n]);
  if (values.some((v) => !v)) throw new AuthError('invalid_request', `The ${names.join(' and ')} parameters are required`);
  return values as string[];
};

/** grant_type → handler, for the token endpoints' one dispatch. */
export function secondFactorGrants(core: { grants: Grants; totp: TotpFactor; recovery: RecoveryCodes }): Record<string, GrantHandler> {
  const { grants, totp, recovery } = core;
  return {
    [MFA_OTP_GRANT]: (p, meta) => {
      const [mfaToken, otp] = required(p, 'mfa_token', 'otp');
      return grants.secondFactor({ mfaToken: mfaToken!, method: 'totp' }, meta, (c) => totp.verify(c.userId, otp!), OTP_AMR);
    },
    [MFA_RECOVERY_CODE_GRANT]: (p, meta) => {
      const [mfaToken, code] = required(p, 'mfa_token', 'recovery_code');
      return grants.secondFactor({ mfaToken: mfaToken!, method: 'recovery_code' }, meta, (c) => recovery.use(c.userId, code!), OTP_AMR);
    },
  };
}
