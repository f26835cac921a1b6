// Entry point: restores the session through the refresh cookie, then draws the
// page of the current path (routes.ts) and follows navigation.
import { render } from 'preact';
import { useEffect } from 'preact/hooks';
import './styles.css';
import { Layout } from './components/layout';
import { NotFound } from './pages/not-found';
import { PATHS } from './paths';
import { interceptLinks, match, navigate, useLocation } from './router';
import { ROUTES } from './routes';
import { restoreSession, useMe } from './session';

function App() {
  const { path, query } = useLocation();
  const me = useMe();
  let found: { path: (typeof PATHS)[number]; params: Record<string, string> } | undefined;
  for (const p of PATHS) {
    const params = match(p, path);
    if (params) {
      found = { path: p, params };
      break;
    }
  }
  const route = found ? ROUTES[found.path] : undefined;
  const mustSignIn = !!route?.signedIn && !me;
  useEffect(() => {
    if (mustSignIn) navigate(`/signin?next=${encodeURIComponent(path + location.search)}`, { replace: true });
  }, [mustSignIn, path]);
  useEffect(() => {
    document.title = `${route?.title ?? 'Not found'} · Gatehouse`;
    // After a navigation, keyboard and screen-reader users start at the new content.
    document.getElementById('main')?.focus({ preventScroll: true });
  }, [path]);
  if (!route || !found) return <Layout><NotFound /></Layout>;
  if (mustSignIn) return <Layout>{null}</Layout>;
  const Page = route.page;
  return (
    <Layout>
      <Page key={path} params={found.params} query={query} />
    </Layout>
  );
}

const root = document.getElementById('app')!;
interceptLinks(document.body);
void restoreSession().then(() => {
  root.textContent = '';
  render(<App />, root);
});
