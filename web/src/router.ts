// A tiny client-side router over the History API: paths of paths.ts, with
// `:name` segments as parameters. Clicks on same-origin links navigate without
// a page load (main.tsx), so plain <a href="/…"> is all a page needs.
import { Listeners, useListeners } from './listeners';

export type Params = Record<string, string>;

/** The parameters of `path` if it matches `pattern`, else null. */
export function match(pattern: string, path: string): Params | null {
  const want = pattern.split('/');
  const got = path.split('/');
  if (want.length !== got.length) return null;
  const params: Params = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (w.startsWith(':')) {
      if (!g) return null;
      params[w.slice(1)] = decodeURIComponent(g);
    } else if (w !== g) return null;
  }
  return params;
}

const listeners = new Listeners();

export function navigate(to: string, { replace = false } = {}): void {
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  listeners.notify();
}

addEventListener('popstate', () => {
  listeners.notify();
});

/** The current location (path and query); re-renders on navigation. */
export function useLocation(): { path: string; query: URLSearchParams } {
  useListeners(listeners);
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

/** Sends same-origin link clicks through the router (not modified clicks, downloads or other targets). */
export function interceptLinks(root: HTMLElement): void {
  root.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = (e.target as Element).closest('a');
    if (!a || a.target || a.hasAttribute('download') || a.origin !== location.origin) return;
    // /docs and the API are not pages of this app.
    if (a.pathname.startsWith('/docs') || a.dataset.external !== undefined) return;
    e.preventDefault();
    navigate(a.pathname + a.search);
  });
}
