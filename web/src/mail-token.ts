// The token of a mailed link (`#token=…`): read from the fragment, which no
// server log or Referer ever sees, then removed from the address bar and
// the history entry, so it is not left behind for the next person.
import { useEffect, useState } from 'preact/hooks';

export function tokenFromHash(): string | null {
  const token = new URLSearchParams(location.hash.slice(1)).get('token');
  if (token !== null) history.replaceState(history.state, '', location.pathname + location.search);
  return token || null;
}

/** The page's mail token: the one it was opened with, or one pasted into the address bar later. */
export function useMailToken(): string | null {
  const [token, setToken] = useState(tokenFromHash);
  useEffect(() => {
    const onHash = () => {
      const next = tokenFromHash();
      if (next) setToken(next);
    };
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  return token;
}
