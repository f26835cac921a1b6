// Sign in with a username (or email) and password; then back to where you were going.
import { useEffect, useState } from 'preact/hooks';
import { signIn, signInSecondFactor, type SecondStep } from '../api';
import { autofillSupported, cancelPasskeyRequest, passkeysSupported, plainly, signInWithPasskey } from '../passkeys';
import { ErrorBox, Field, useSubmit } from '../components/form';
import type { PageProps } from '../routes';
import { navigate } from '../router';
import { reloadMe } from '../session';

/** Only a path of this site (never `//evil.example` or a URL). */
export function safeNext(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') ? next : '/';
}

export function SignIn({ query }: PageProps) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [step, setStep] = useState<SecondStep | null>(null);
  const finish = async () => {
    await reloadMe();
    navigate(safeNext(query.get('next')), { replace: true });
  };
  const { busy, error, onSubmit } = useSubmit(async () => {
    const second = await signIn(username.trim(), password);
    setPassword('');
    if (second) setStep(second);
    else await finish();
  });
  const passkey = useSubmit(() => plainly(() => signInWithPasskey()).then(finish));
  // Where the browser offers passkeys in the username field's autofill, picking one signs in.
  useEffect(() => {
    if (step) return;
    let live = true;
    let pending = false;
    void autofillSupported().then((yes) => {
      if (!yes || !live) return;
      pending = true;
      signInWithPasskey({ autofill: true }).then(finish, () => undefined).finally(() => (pending = false));
    });
    return () => {
      live = false;
      // A password step or another page: the autofill request must not sign in behind it.
      if (pending) cancelPasskeyRequest();
    };
  }, [step]);
  if (step) return <SecondFactor step={step} onDone={finish} onRestart={() => setStep(null)} />;
  return (
    <>
      <h1>Sign in</h1>
      <form onSubmit={onSubmit} class="card">
        <ErrorBox error={error} />
        <Field label="Username or email" name="username" value={username} onInput={setUsername} autocomplete="username webauthn" required />
        <Field label="Password" name="password" type="password" value={password} onInput={setPassword} autocomplete="current-password" required />
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      {passkeysSupported() && (
        <div class="card">
          <ErrorBox error={passkey.error} />
          <button type="button" onClick={() => void passkey.onSubmit()} disabled={passkey.busy}>
            {passkey.busy ? 'Waiting for your passkey…' : 'Sign in with a passkey'}
          </button>
        </div>
      )}
      <p>
        No account yet? <a href="/signup">Sign up</a>. Forgot your password? <a href="/reset-password">Reset it</a>.
      </p>
    </>
  );
}

/** The second step: the authenticator app's code, or a recovery code. */
function SecondFactor({ step, onDone, onRestart }: { step: SecondStep; onDone: () => Promise<void>; onRestart: () => void }) {
  const [code, setCode] = useState('');
  const [recovery, setRecovery] = useState(!step.methods.includes('totp'));
  const { busy, error, onSubmit } = useSubmit(async () => {
    await signInSecondFactor(step, recovery ? 'recovery_code' : 'totp', code.trim());
    await onDone();
  });
  const passkey = useSubmit(() => plainly(() => signInWithPasskey({ step })).then(onDone));
  return (
    <>
      <h1>Two-factor authentication</h1>
      <form onSubmit={onSubmit} class="card">
        <ErrorBox error={error} />
        <Field
          label={recovery ? 'Recovery code' : 'Authentication code'}
          name="code"
          value={code}
          onInput={setCode}
          autocomplete="one-time-code"
          hint={recovery ? 'One of the recovery codes you saved; each works once.' : 'The 6-digit code your authenticator app shows now.'}
          required
        />
        <button type="submit" disabled={busy}>
          {busy ? 'Checking…' : 'Verify'}
        </button>
      </form>
      {step.methods.includes('webauthn') && passkeysSupported() && (
        <div class="card">
          <ErrorBox error={passkey.error} />
          <button type="button" onClick={() => void passkey.onSubmit()} disabled={passkey.busy}>
            {passkey.busy ? 'Waiting for your passkey…' : 'Use a passkey'}
          </button>
        </div>
      )}
      <div class="actions">
        {step.methods.includes('recovery_code') && step.methods.includes('totp') && (
          <button type="button" class="link" onClick={() => (setRecovery(!recovery), setCode(''))}>
            {recovery ? 'Use your authenticator app instead' : 'Use a recovery code instead'}
          </button>
        )}
        <button type="button" class="link" onClick={onRestart}>
          Start over
        </button>
      </div>
    </>
  );
}
