// The link of a verification mail (#token=…): confirms the address at once
// and says so; a failed link offers a new one to a signed-in user.
import { useEffect, useState } from 'preact/hooks';
import { api, signedIn } from '../api';
import { ErrorBox, Notice } from '../components/form';
import { useMailToken } from '../mail-token';
import { reloadMe } from '../session';
import type { User } from '../types';

export function ResendLink() {
  const [state, setState] = useState<'idle' | 'sent' | unknown>('idle');
  const send = async () => {
    try {
      await api('/users/me/verify-email', { method: 'POST' });
      setState('sent');
    } catch (err) {
      setState(err);
    }
  };
  if (state === 'sent') return <Notice>A new link is on its way to your address.</Notice>;
  return (
    <>
      {state !== 'idle' && <ErrorBox error={state} />}
      <button type="button" class="secondary" onClick={() => void send()}>
        Send me a new link
      </button>
    </>
  );
}

export function VerifyEmail() {
  const token = useMailToken();
  const [user, setUser] = useState<User | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    setUser(null);
    setError(token ? null : new Error('This page needs the link from your mail (it ends in #token=…).'));
    if (!token) return;
    api<User>('/auth/verify-email', { method: 'POST', body: { token } }).then(
      (u) => {
        setUser(u);
        if (signedIn()) void reloadMe();
      },
      setError,
    );
  }, [token]);
  return (
    <>
      <h1>Confirm your email address</h1>
      {user && (
        <Notice>
          Thank you: <strong>{user.email}</strong> is confirmed.
        </Notice>
      )}
      {!user && !error && <p class="loading">Confirming…</p>}
      {error !== null && (
        <>
          <ErrorBox error={error} />
          {signedIn() ? <ResendLink /> : <p>Sign in to ask for a new link from your account page.</p>}
        </>
      )}
      <p>
        <a href={signedIn() ? '/account' : '/signin'}>{signedIn() ? 'Your account' : 'Sign in'}</a>
      </p>
    </>
  );
}
