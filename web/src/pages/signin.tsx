// Sign in with a username (or email) and password; then back to where you were going.
import { useState } from 'preact/hooks';
import { signIn } from '../api';
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
  const { busy, error, onSubmit } = useSubmit(async () => {
    await signIn(username.trim(), password);
    await reloadMe();
    navigate(safeNext(query.get('next')), { replace: true });
  });
  return (
    <>
      <h1>Sign in</h1>
      <form onSubmit={onSubmit} class="card">
        <ErrorBox error={error} />
        <Field label="Username or email" name="username" value={username} onInput={setUsername} autocomplete="username" required />
        <Field label="Password" name="password" type="password" value={password} onInput={setPassword} autocomplete="current-password" required />
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <p>
        No account yet? <a href="/signup">Sign up</a>. Forgot your password? <a href="/reset-password">Reset it</a>.
      </p>
    </>
  );
}
