// The account page's two-factor section: set up an authenticator app (the
// password again, then the QR code or the key, then a first code), the
// recovery codes shown once, how many are left, new ones, and turning it
// off. The QR code is the service's SVG redrawn from its viewBox and paths
// (qrDrawing): the pages' CSP allows no data: images and Trusted Types no
// markup from strings.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { ErrorBox, Field, Notice, useSubmit } from '../components/form';
import { reloadMe } from '../session';
import type { MfaStatus } from '../types';

interface Enrollment {
  secret: string;
  otpauth_uri: string;
  qr_svg: string;
}

interface QrPath {
  fill?: string;
  stroke?: string;
  d: string;
}

const COLOR = /^#[0-9a-fA-F]{3,8}$/;
const PATH_DATA = /^[MmHhVvLlZz0-9 .-]+$/;

/**
 * The drawing of the service's QR code SVG (a viewBox and paths), read with
 * patterns rather than an HTML/SVG parser: the pages enforce Trusted Types,
 * which refuses markup from strings, and nothing but colours and path data
 * can get through.
 */
function qrDrawing(svg: string): { viewBox: string; paths: QrPath[] } | null {
  const viewBox = /<svg[^>]*\sviewBox="(\d+ \d+ \d+ \d+)"/.exec(svg)?.[1];
  if (!viewBox) return null;
  const paths: QrPath[] = [];
  for (const m of svg.matchAll(/<path\s([^>]*?)\/?>/g)) {
    const attrs = Object.fromEntries([...m[1]!.matchAll(/([a-z-]+)="([^"]*)"/g)].map((a) => [a[1]!, a[2]!]));
    const { fill, stroke, d } = attrs;
    if (!d || !PATH_DATA.test(d) || (fill && !COLOR.test(fill)) || (stroke && !COLOR.test(stroke))) return null;
    paths.push({ fill, stroke, d });
  }
  return paths.length ? { viewBox, paths } : null;
}

function QrCode({ svg }: { svg: string }) {
  const drawing = qrDrawing(svg);
  if (!drawing) return null;
  return (
    <div class="qr">
      <svg xmlns="http://www.w3.org/2000/svg" viewBox={drawing.viewBox} shape-rendering="crispEdges" role="img" aria-label="QR code to scan with your authenticator app">
        {drawing.paths.map((p, i) => (
          <path key={i} fill={p.fill} stroke={p.stroke} d={p.d} />
        ))}
      </svg>
    </div>
  );
}

function RecoveryCodes({ codes, onDone }: { codes: string[]; onDone: () => void }) {
  return (
    <div class="card">
      <Notice>Save these recovery codes somewhere safe. Each signs you in once if you lose your phone; they are not shown again.</Notice>
      <ol class="codes" aria-label="Recovery codes">
        {codes.map((c) => (
          <li key={c}>
            <code>{c}</code>
          </li>
        ))}
      </ol>
      <button type="button" onClick={onDone}>
        I have saved them
      </button>
    </div>
  );
}

function Enroll({ onEnabled }: { onEnabled: (codes: string[]) => void }) {
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [enrollment, setEnrollment] = useState<Enrollment | null>(null);
  const start = useSubmit(async () => {
    setEnrollment(await api<Enrollment>('/users/me/mfa/totp', { method: 'POST', body: { password } }));
    setPassword('');
  });
  const confirm = useSubmit(async () => {
    const r = await api<{ recovery_codes: string[] }>('/users/me/mfa/totp/confirm', { method: 'POST', body: { code: code.trim() } });
    await reloadMe();
    onEnabled(r.recovery_codes);
  });
  if (!enrollment) {
    return (
      <form onSubmit={start.onSubmit} class="card">
        <ErrorBox error={start.error} />
        <p>Add a second step to signing in: a code from an authenticator app (Google Authenticator, 1Password, Aegis…).</p>
        <Field label="Your password" name="mfa_password" type="password" value={password} onInput={setPassword} autocomplete="current-password" required />
        <button type="submit" disabled={start.busy}>
          Set up an authenticator app
        </button>
      </form>
    );
  }
  return (
    <form onSubmit={confirm.onSubmit} class="card">
      <ErrorBox error={confirm.error} />
      <p>Scan this QR code with your authenticator app:</p>
      <QrCode svg={enrollment.qr_svg} />
      <p>
        Or enter this key by hand: <code class="secret">{enrollment.secret.match(/.{1,4}/g)!.join(' ')}</code>
      </p>
      <Field label="Code from the app" name="mfa_code" value={code} onInput={setCode} autocomplete="one-time-code" hint="The 6 digits it shows now." required />
      <button type="submit" disabled={confirm.busy}>
        Turn on two-factor authentication
      </button>
    </form>
  );
}

/** A form asking for a current code (or a recovery code) before `action`. */
function WithCode({ name, label, button, danger, action }: { name: string; label: string; button: string; danger?: boolean; action: (code: string) => Promise<void> }) {
  const [code, setCode] = useState('');
  const { busy, error, onSubmit } = useSubmit(async () => {
    await action(code.trim());
    setCode('');
  });
  return (
    <form onSubmit={onSubmit} class="card">
      <ErrorBox error={error} />
      <Field label={label} name={name} value={code} onInput={setCode} autocomplete="one-time-code" hint="A code from your authenticator app, or a recovery code." required />
      <button type="submit" class={danger ? 'danger' : undefined} disabled={busy}>
        {button}
      </button>
    </form>
  );
}

export function TwoFactor() {
  const [status, setStatus] = useState<MfaStatus | null>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  const [notice, setNotice] = useState('');
  const [error, setError] = useState<unknown>(null);
  const load = () => api<MfaStatus>('/users/me/mfa').then(setStatus, setError);
  useEffect(() => void load(), []);
  const shown = (fresh: string[]) => {
    setNotice('');
    setCodes(fresh);
    void load();
  };
  return (
    <section aria-labelledby="mfa-h">
      <h2 id="mfa-h">Two-factor authentication</h2>
      <ErrorBox error={error} />
      {notice && <Notice>{notice}</Notice>}
      {codes && <RecoveryCodes codes={codes} onDone={() => setCodes(null)} />}
      {status && !status.totp && !codes && <Enroll onEnabled={shown} />}
      {status?.totp && !codes && (
        <>
          <p>
            <span class="badge ok">On</span> Signing in asks for a code from your authenticator app.{' '}
            <strong>{status.recovery_codes_left}</strong> recovery code{status.recovery_codes_left === 1 ? '' : 's'} left.
          </p>
          <WithCode
            name="regen_code"
            label="New recovery codes"
            button="Get new recovery codes"
            action={async (code) => shown((await api<{ recovery_codes: string[] }>('/users/me/mfa/recovery-codes', { method: 'POST', body: { code } })).recovery_codes)}
          />
          <WithCode
            name="disable_code"
            label="Turn off two-factor authentication"
            button="Turn off"
            danger
            action={async (code) => {
              await api('/users/me/mfa/totp', { method: 'DELETE', body: { code } });
              await reloadMe();
              await load();
              setNotice('Two-factor authentication is off. Every other session has been signed out.');
            }}
          />
        </>
      )}
    </section>
  );
}
