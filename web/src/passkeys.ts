// Passkeys in the browser (@simplewebauthn/browser turns the server's JSON
// options into navigator.credentials calls and the answers back into JSON):
// adding one to the account, signing in with one alone (a button, or the
// browser's autofill where it offers passkeys: conditional mediation), and
// as the second step after a password.
import {
  browserSupportsWebAuthn,
  browserSupportsWebAuthnAutofill,
  startAuthentication,
  startRegistration,
  WebAuthnAbortService,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/browser';
import { api, grant, type SecondStep } from './api';
import type { Passkey } from './types';

const WEBAUTHN_GRANT = 'urn:gatehouse:params:oauth:grant-type:webauthn';
const MFA_WEBAUTHN_GRANT = 'urn:gatehouse:params:oauth:grant-type:mfa-webauthn';

export const passkeysSupported = (): boolean => browserSupportsWebAuthn();
export const autofillSupported = (): Promise<boolean> => browserSupportsWebAuthnAutofill();
/** Ends a pending ceremony (the autofill one, when the sign-in page moves on). */
export const cancelPasskeyRequest = (): void => WebAuthnAbortService.cancelCeremony();

/**
 * Signs in with a passkey: alone (no `step`), or as the second step of the
 * password sign-in `step`. `autofill`: wait for the user to pick a passkey
 * in the username field's autofill instead of opening the browser's dialog.
 */
export async function signInWithPasskey({ step, autofill = false }: { step?: SecondStep; autofill?: boolean } = {}): Promise<void> {
  const optionsJSON = await api<PublicKeyCredentialRequestOptionsJSON>('/auth/passkey/options', {
    method: 'POST',
    body: step ? { mfa_token: step.mfaToken } : {},
  });
  const assertion = await startAuthentication({ optionsJSON, useBrowserAutofill: autofill });
  await grant(
    step
      ? { grant_type: MFA_WEBAUTHN_GRANT, mfa_token: step.mfaToken, assertion: JSON.stringify(assertion) }
      : { grant_type: WEBAUTHN_GRANT, assertion: JSON.stringify(assertion) },
  );
}

/** Creates a passkey on this device (or a phone, a security key) and registers it to the account. */
export async function addPasskey(name: string, password?: string): Promise<Passkey> {
  // The password only when the sign-in is not recent (403 reauthentication_required otherwise).
  const optionsJSON = await api<PublicKeyCredentialCreationOptionsJSON>('/users/me/passkeys/options', {
    method: 'POST',
    body: password ? { password } : {},
  });
  const response = await startRegistration({ optionsJSON });
  return api<Passkey>('/users/me/passkeys', { method: 'POST', body: { ...(name ? { name } : {}), response } });
}

/** Runs a ceremony; a browser's refusal or cancellation (a DOMException or WebAuthnError) becomes plain words. */
export async function plainly<T>(ceremony: () => Promise<T>): Promise<T> {
  try {
    return await ceremony();
  } catch (err) {
    const name = (err as { name?: string } | null)?.name;
    const code = (err as { code?: string } | null)?.code;
    if (name === 'NotAllowedError' || name === 'AbortError') throw new Error('The passkey request was cancelled or timed out.', { cause: err });
    if (name === 'InvalidStateError' || code === 'ERROR_AUTHENTICATOR_PREVIOUSLY_REGISTERED') throw new Error('This device already holds a passkey for your account.', { cause: err });
    if (name === 'SecurityError') throw new Error('Passkeys are not available on this address.', { cause: err });
    throw err;
  }
}
