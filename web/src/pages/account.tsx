// Your account: profile (a new email needs your current password), password
// change, two-factor authentication (two-factor.tsx), and the sessions signed
// in as you, each of which you can end.
import { useEffect, useState } from 'preact/hooks';
import { api, signOut } from '../api';
import { ErrorBox, Field, Notice, useSubmit } from '../components/form';
import { When } from '../components/layout';
import { navigate } from '../router';
import { reloadMe, useMe } from '../session';
import type { Session, User } from '../types';
import { Passkeys } from './passkeys';
import { TwoFactor } from './two-factor';
import { ResendLink } from './verify-email';

function Profile({ me }: { me: User }) {
  const [fullName, setFullName] = useState(me.full_name ?? '');
  const [email, setEmail] = useState(me.email);
  const [password, setPassword] = useState('');
  const [saved, setSaved] = useState<string | null>(null);
  const emailChanged = email.trim().toLowerCase() !== me.email.toLowerCase();
  const { busy, error, onSubmit } = useSubmit(async () => {
    setSaved(null);
    const body: Record<string, string> = { full_name: fullName.trim() };
    if (emailChanged) Object.assign(body, { email: email.trim(), current_password: password });
    await api<User>('/users/me', { method: 'PATCH', body });
    setPassword('');
    await reloadMe();
    setSaved(
      emailChanged
        ? 'Your profile is saved. A link to confirm the new address was mailed to it, and your old address was told of the change.'
        : 'Your profile is saved.',
    );
  });
  return (
    <section aria-labelledby="profile-h">
      <h2 id="profile-h">Profile</h2>
      <form onSubmit={onSubmit} class="card">
        <ErrorBox error={error} fields={['full_name', 'email', 'current_password']} />
        {saved && <Notice>{saved}</Notice>}
        <p>
          Username: <strong>{me.username}</strong>
        </p>
        <Field label="Full name" name="full_name" value={fullName} onInput={setFullName} autocomplete="name" error={error} />
        <Field label="Email" name="email" type="email" value={email} onInput={setEmail} autocomplete="email" required error={error} />
        {!emailChanged && (
          <div class="email-status">
            {me.email_verified ? (
              <span class="badge ok">confirmed</span>
            ) : (
              <>
                <span class="badge">not confirmed yet</span> <ResendLink />
              </>
            )}
          </div>
        )}
        {emailChanged && (
          <Field
            label="Current password (needed to change your email)"
            name="current_password"
            type="password"
            value={password}
            onInput={setPassword}
            autocomplete="current-password"
            required
            error={error}
          />
        )}
        <button type="submit" disabled={busy}>
          Save profile
        </button>
      </form>
    </section>
  );
}

function ChangePassword() {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [done, setDone] = useState(false);
  const { busy, error, onSubmit } = useSubmit(async () => {
    setDone(false);
    await api('/users/me/password', { method: 'PUT', body: { current_password: current, new_password: next } });
    setCurrent('');
    setNext('');
    setDone(true);
  });
  return (
    <section aria-labelledby="password-h">
      <h2 id="password-h">Change password</h2>
      <form onSubmit={onSubmit} class="card">
        <ErrorBox error={error} fields={['current_password', 'new_password']} />
        {done && <Notice>Your password is changed. Every other session has been signed out.</Notice>}
        <Field label="Current password" name="current_password" type="password" value={current} onInput={setCurrent} autocomplete="current-password" required error={error} />
        <Field label="New password" name="new_password" type="password" value={next} onInput={setNext} autocomplete="new-password" required error={error} />
        <button type="submit" disabled={busy}>
          Change password
        </button>
      </form>
    </section>
  );
}

/** "Chrome 126 on Linux" from a User-Agent string (the full string stays in the title). */
export function describeAgent(ua: string | null): string {
  if (!ua) return 'Unknown browser';
  const browser =
    /(Edg|OPR|Firefox|Chrome|HeadlessChrome|Chromium|Version)\/(\d+)/.exec(ua)?.slice(1, 3) ?? null;
  const os = /Windows|Android|iPhone|iPad|Mac OS X|Linux|CrOS/.exec(ua)?.[0];
  const names: Record<string, string> = { Edg: 'Edge', OPR: 'Opera', Version: 'Safari', HeadlessChrome: 'Chrome (headless)' };
  const osNames: Record<string, string> = { 'Mac OS X': 'macOS', CrOS: 'ChromeOS' };
  if (!browser) return ua.length > 60 ? `${ua.slice(0, 60)}…` : ua;
  const name = `${names[browser[0]!] ?? browser[0]} ${browser[1]}`;
  return os ? `${name} on ${osNames[os] ?? os}` : name;
}

function Sessions() {
  const [sessions, setSessions] = useState<Session[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = () => api<Session[]>('/users/me/sessions').then(setSessions, setError);
  useEffect(() => void load(), []);
  const run = async (action: () => Promise<unknown>) => {
    setError(null);
    try {
      await action();
    } catch (err) {
      setError(err);
    }
  };
  const end = (s: Session) =>
    run(async () => {
      if (s.current) {
        await signOut('local');
        navigate('/signin', { replace: true });
        return;
      }
      await api(`/users/me/sessions/${s.id}`, { method: 'DELETE' });
      await load();
    });
  const everywhere = () =>
    run(async () => {
      await signOut('global');
      navigate('/signin', { replace: true });
    });
  const others = () =>
    run(async () => {
      await signOut('others');
      await load();
    });
  return (
    <section aria-labelledby="sessions-h">
      <h2 id="sessions-h">Where you are signed in</h2>
      <ErrorBox error={error} />
      {sessions && (
        <ul class="sessions">
          {sessions.map((s) => (
            <li key={s.id} class="card">
              <p>
                <strong title={s.user_agent ?? undefined}>{describeAgent(s.user_agent)}</strong>
                {s.current && <span class="badge ok">this browser</span>}
              </p>
              <p class="meta">
                {s.ip ?? 'unknown address'} · signed in <When at={s.created_at} /> · last used <When at={s.last_used_at} />
              </p>
              <button type="button" class="secondary" onClick={() => void end(s)}>
                Sign out {s.current ? 'here' : 'this session'}
              </button>
            </li>
          ))}
        </ul>
      )}
      <div class="actions">
        <button type="button" class="secondary" onClick={() => void others()}>
          Sign out other sessions
        </button>
        <button type="button" class="danger" onClick={() => void everywhere()}>
          Sign out everywhere
        </button>
      </div>
    </section>
  );
}

export function Account() {
  const me = useMe();
  if (!me) return <p class="loading">Loading…</p>;
  return (
    <>
      <h1>Your account</h1>
      <Profile me={me} />
      <ChangePassword />
      <Passkeys />
      <TwoFactor />
      <Sessions />
    </>
  );
}
