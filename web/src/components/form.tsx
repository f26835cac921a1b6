// Form pieces every page uses: a labelled field whose errors are tied to it
// (aria-describedby), the error box that says what went wrong in plain words,
// and useSubmit, which runs a request and keeps its error and busy state.
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError, type FieldError } from '../api';

export interface FieldProps {
  label: string;
  name: string;
  value: string;
  onInput: (value: string) => void;
  type?: 'text' | 'email' | 'password';
  autocomplete?: string;
  required?: boolean;
  multiline?: boolean;
  hint?: string;
  /** The request's error: its field errors naming this field are shown here. */
  error?: unknown;
}

/** The field errors of `error` whose path is `/name` (or under it). */
export function errorsFor(error: unknown, name: string): FieldError[] {
  if (!(error instanceof ApiError)) return [];
  return error.errors.filter((e) => e.path === `/${name}` || e.path.startsWith(`/${name}/`));
}

export function Field({ label, name, value, onInput, type = 'text', autocomplete, required, multiline, hint, error }: FieldProps) {
  const id = `f-${name}`;
  const errs = errorsFor(error, name);
  const described = [hint ? `${id}-hint` : '', errs.length ? `${id}-err` : ''].filter(Boolean).join(' ') || undefined;
  const common = {
    id,
    name,
    value,
    required,
    'aria-invalid': errs.length ? true : undefined,
    'aria-describedby': described,
    onInput: (e: Event) => onInput((e.currentTarget as HTMLInputElement).value),
  };
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {hint && (
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {multiline ? <textarea {...common} rows={12} /> : <input {...common} type={type as 'text'} autocomplete={autocomplete} />}
      {errs.length > 0 && (
        <ul class="field-errors" id={`${id}-err`}>
          {errs.map((e) => (
            <li key={e.message}>{e.message}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** What went wrong, from the problem's `detail`; field errors not shown by a field are listed too. */
export function ErrorBox({ error, fields = [] }: { error: unknown; fields?: string[] }) {
  if (!error) return null;
  const message = error instanceof Error ? error.message : String(error);
  const shown = (e: FieldError) => fields.some((f) => e.path === `/${f}` || e.path.startsWith(`/${f}/`));
  const rest = error instanceof ApiError ? error.errors.filter((e) => !shown(e)) : [];
  return (
    <div class="error" role="alert">
      <p>{error instanceof TypeError ? 'The service could not be reached. Check your connection and try again.' : message}</p>
      {rest.length > 0 && (
        <ul>
          {rest.map((e) => (
            <li key={e.path + e.message}>
              {e.path.replace(/^\//, '').replace(/_/g, ' ') || 'request'}: {e.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function Notice({ children }: { children: ComponentChildren }) {
  return (
    <p class="notice" role="status">
      {children}
    </p>
  );
}

/** Runs `action` on submit: prevents the page load, tracks busy and the error. */
export function useSubmit(action: () => Promise<void>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const onSubmit = async (e?: Event) => {
    e?.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, onSubmit };
}
