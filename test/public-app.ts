// An app whose PUBLIC_URL is where it really listens: what discovery,
// JWKS clients and OAuth client libraries need (they follow the URLs the
// service writes, which come from PUBLIC_URL, never from the request).
import { startApp, type TestApp } from './helpers.js';
import { freePort } from './process-helpers.js';

export async function startPublicApp(opts: Parameters<typeof startApp>[0] = {}): Promise<TestApp> {
  const port = await freePort();
  return startApp({ ...opts, port, env: { PUBLIC_URL: `http://127.0.0.1:${port}`, ...opts.env } });
}
