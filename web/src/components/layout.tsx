// The frame of every page: a skip link, the navigation (what you can do
// depends on whether you are signed in) and the main region.
import type { ComponentChildren } from 'preact';
import { signOut } from '../api';
import { navigate } from '../router';
import { useMe } from '../session';

export function Layout({ children }: { children: ComponentChildren }) {
  const me = useMe();
  const out = async () => {
    try {
      await signOut('local');
    } finally {
      navigate('/');
    }
  };
  return (
    <>
      <a class="skip" href="#main" data-external>
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="/">
          Gatehouse
        </a>
        <nav aria-label="Main">
          <a href="/">Blog</a>
          {me ? (
            <>
              <a href="/write">Your posts</a>
              <a href="/account">Account ({me.username})</a>
              <button type="button" class="link" onClick={out}>
                Sign out
              </button>
            </>
          ) : (
            <>
              <a href="/signin">Sign in</a>
              <a href="/signup">Sign up</a>
            </>
          )}
        </nav>
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
      <footer class="bottom">
        <a href="/docs">API documentation</a>
      </footer>
    </>
  );
}

/** A date as the reader's locale writes it. */
export function When({ at }: { at: string }) {
  const d = new Date(at);
  return <time dateTime={at}>{d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })}</time>;
}
