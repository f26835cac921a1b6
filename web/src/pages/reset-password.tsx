// Forgot your password: ask for a link by mail; the link (#token=…) opens
// this page again, which then asks for the new password. The token is read
// from the fragment (it never reaches a server log) and dropped from the
// address bar at once.
import { useState } from 'preact/hooks';
import { api } from '../api';
import { ErrorBox, Field, Notice, useSubmit } from '../components/form';
import { useMailToken } from '../mail-token';

function RequestLink() {
  const [email, setEmail] = useState('');
  const [sent, setSent] = useState(false);
  const { busy, error, onSubmit } = useSubmit(async () => {
    await api('/auth/password-reset', { method: 'POST', body: { email: email.trim() } });
    setSent(true);
  });
  return (
    <>
      <h1>Reset your password</h1>
      <form onSubmit={onSubmit} class="card">
        <ErrorBox error={error} fields={['email']} />
        {sent && <Notice>If an account has this address, a link to choose a new password is on its way. It works for 30 minutes, once.</Notice>}
        <Field label="Email" name="email" type="email" value={email} onInput={setEmail} autocomplete="email" required error={error} />
        <button type="submit" disabled={busy}>
          Send me a link
        </button>
      </form>
      <p>
        Remembered it? <a href="/signin">Sign in</a>.
      </p>
    </>
  );
}

function NewPassword({ token }: { token: string }) {
  const [password, setPassword] = useState('');
  const [done, setDone] = useState(false);
  const { busy, error, onSubmit } = useSubmit(async () => {
    await api('/auth/password-reset/confirm', { method: 'POST', body: { token, new_password: password } });
    setPassword('');
    setDone(true);
  });
  if (done) {
    return (
      <>
        <h1>Password changed</h1>
        <Notice>Your new password is set, and every session was signed out.</Notice>
        <p>
          <a href="/signin">Sign in</a> with it.
        </p>
      </>
    );
  }
  return (
    <>
      <h1>Choose a new password</h1>
      <form onSubmit={onSubmit} class="card">
        <ErrorBox error={error} fields={['new_password']} />
        <Field label="New password" name="new_password" type="password" value={password} onInput={setPassword} autocomplete="new-password" required error={error} />
        <button type="submit" disabled={busy}>
          Set the new password
        </button>
      </form>
      <p>
        Link expired? <a href="/reset-password">Ask for a new one</a>.
      </p>
    </>
  );
}

export function ResetPassword() {
  const token = useMailToken();
  return token ? <NewPassword key={token} token={token} /> : <RequestLink />;
}
