// The account page's passkeys: add one (this device, a phone or a security
// key, through the browser's own dialog), and the list, each renamed or
// removed. A passkey signs in alone; once two-factor authentication is on,
// it is also a second step after the password.
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError } from '../api';
import { ErrorBox, Field, Notice, useSubmit } from '../components/form';
import { addPasskey, passkeysSupported, plainly } from '../passkeys';
import type { Passkey } from '../types';

const day = (iso: string) => new Date(iso).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });

function Item({ passkey, onChanged }: { passkey: Passkey; onChanged: (notice: string) => Promise<void> }) {
  const [renaming, setRenaming] = useState(false);
  const [name, setName] = useState(passkey.name);
  const rename = useSubmit(async () => {
    await api(`/users/me/passkeys/${passkey.id}`, { method: 'PATCH', body: { name: name.trim() } });
    setRenaming(false);
    await onChanged('The passkey is renamed.');
  });
  const remove = useSubmit(async () => {
    await api(`/users/me/passkeys/${passkey.id}`, { method: 'DELETE' });
    await onChanged(`“${passkey.name}” is removed: it can no longer sign in.`);
  });
  return (
    <li class="card" aria-label={passkey.name}>
      <p>
        <strong>{passkey.name}</strong>
      </p>
      <p class="hint">
        Added {day(passkey.created_at)} · {passkey.last_used_at ? `last used ${day(passkey.last_used_at)}` : 'never used yet'}
      </p>
      <ErrorBox error={rename.error ?? remove.error} fields={['name']} />
      {renaming ? (
        <form onSubmit={rename.onSubmit}>
          <Field label="New name" name={`name-${passkey.id}`} value={name} onInput={setName} required error={rename.error} />
          <div class="actions">
            <button type="submit" disabled={rename.busy}>
              Save name
            </button>
            <button type="button" class="link" onClick={() => setRenaming(false)}>
              Cancel
            </button>
          </div>
        </form>
      ) : (
        <div class="actions">
          <button type="button" onClick={() => setRenaming(true)}>
            Rename
          </button>
          <button type="button" class="danger" onClick={() => void remove.onSubmit()} disabled={remove.busy}>
            Remove
          </button>
        </div>
      )}
    </li>
  );
}

export function Passkeys() {
  const [list, setList] = useState<Passkey[] | null>(null);
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [askPassword, setAskPassword] = useState(false);
  const [notice, setNotice] = useState('');
  const [error, setError] = useState<unknown>(null);
  const load = () => api<Passkey[]>('/users/me/passkeys').then(setList, setError);
  useEffect(() => void load(), []);
  const add = useSubmit(async () => {
    setNotice('');
    let added: Passkey;
    try {
      added = await plainly(() => addPasskey(name.trim(), askPassword ? password : undefined));
    } catch (err) {
      // An old sign-in: the password again, as for a password change.
      if (err instanceof ApiError && err.code === 'reauthentication_required') setAskPassword(true);
      throw err;
    } finally {
      setPassword('');
    }
    setAskPassword(false);
    setName('');
    setNotice(`“${added.name}” is added: you can sign in with it, without your password.`);
    await load();
  });
  const changed = async (text: string) => {
    setNotice(text);
    await load();
  };
  return (
    <section aria-labelledby="passkeys-h">
      <h2 id="passkeys-h">Passkeys</h2>
      <ErrorBox error={error} />
      {notice && <Notice>{notice}</Notice>}
      {list && list.length > 0 && (
        <ul class="passkeys">
          {list.map((p) => (
            <Item key={p.id} passkey={p} onChanged={changed} />
          ))}
        </ul>
      )}
      {list && list.length === 0 && <p>No passkeys yet.</p>}
      {passkeysSupported() ? (
        <form onSubmit={add.onSubmit} class="card">
          <ErrorBox error={add.error} fields={['name']} />
          <p>A passkey signs you in with this device's screen lock (fingerprint, face or PIN) instead of your password.</p>
          <Field label="Name (optional)" name="passkey_name" value={name} onInput={setName} hint="To tell your passkeys apart, e.g. “Work laptop”." error={add.error} />
          {askPassword && (
            <Field label="Your password" name="passkey_password" type="password" value={password} onInput={setPassword} autocomplete="current-password" required />
          )}
          <button type="submit" disabled={add.busy}>
            {add.busy ? 'Waiting for your device…' : 'Add a passkey'}
          </button>
        </form>
      ) : (
        <p>This browser cannot create passkeys.</p>
      )}
    </section>
  );
}
