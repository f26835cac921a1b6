// Create an account, then sign in with it. A refused password is explained
// rule by rule (the 422's `errors`).
import { useState } from 'preact/hooks';
import { api, signIn } from '../api';
import { ErrorBox, Field, useSubmit } from '../components/form';
import { navigate } from '../router';
import { reloadMe } from '../session';

const FIELDS = ['username', 'email', 'full_name', 'password'];

export function SignUp() {
  const [username, setUsername] = useState('');
  const [email, setEmail] = useState('');
  const [fullName, setFullName] = useState('');
  const [password, setPassword] = useState('');
  const { busy, error, onSubmit } = useSubmit(async () => {
    const body: Record<string, string> = { username: username.trim(), email: email.trim(), password };
    if (fullName.trim()) body.full_name = fullName.trim();
    await api('/auth/register', { method: 'POST', body });
    await signIn(body.username!, password);
    await reloadMe();
    navigate('/write', { replace: true });
  });
  return (
    <>
      <h1>Sign up</h1>
      <form onSubmit={onSubmit} class="card">
        <ErrorBox error={error} fields={FIELDS} />
        <Field
          label="Username"
          name="username"
          value={username}
          onInput={setUsername}
          autocomplete="username"
          hint="3 to 32 characters: letters, digits, _ . -"
          required
          error={error}
        />
        <Field label="Email" name="email" type="email" value={email} onInput={setEmail} autocomplete="email" required error={error} />
        <Field label="Full name (optional)" name="full_name" value={fullName} onInput={setFullName} autocomplete="name" error={error} />
        <Field
          label="Password"
          name="password"
          type="password"
          value={password}
          onInput={setPassword}
          autocomplete="new-password"
          hint="At least 8 characters, hard to guess, not containing your username or email."
          required
          error={error}
        />
        <button type="submit" disabled={busy}>
          {busy ? 'Creating your account…' : 'Create account'}
        </button>
      </form>
      <p>
        Already have an account? <a href="/signin">Sign in</a>.
      </p>
    </>
  );
}
