// Harness of the browser tests: Debian's Chromium driven by playwright-core
// (never a downloaded browser), the pages built once per run, the real
// service listening with PUBLIC_URL = its own address, and a screenshot in
// test-results/ when a test fails.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { stripVTControlCharacters } from 'node:util';
import { chromium, type Browser, type BrowserContext, type ConsoleMessage, type Locator, type Page, type Request, type Response, type WebError } from 'playwright-core';
import { buildWeb, webStale } from '../scripts/build-web.mjs';
import { buildApp, type Gatehouse } from '../src/app.js';
import { MovableClock } from '../src/clock.js';
import { openTestDatabase, testConfig, type BackendName } from './helpers.js';

export const CHROMIUM = '/usr/bin/chromium';
export const hasChromium = () => existsSync(CHROMIUM);
export const NO_CHROMIUM = `${CHROMIUM} is absent (apt-get install chromium): browser tests skipped`;

const RESULTS = 'test-results';

/** Builds dist/web if it is missing or older than web/ (concurrent test files may both build: writes are atomic). */
export async function ensurePagesBuilt(): Promise<void> {
  if (webStale()) await buildWeb();
}

export async function launchChromium(): Promise<{ browser: Browser; close: () => Promise<void> }> {
  // playwright gives every launch a fresh temporary user-data-dir (and removes it on close).
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return { browser, close: () => browser.close() };
}

/** A port free at this moment on 127.0.0.1 (the service needs its PUBLIC_URL before it listens). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface WebApp extends Gatehouse {
  url: string;
  clock: MovableClock;
  close(): Promise<void>;
}

/**
 * The service as `npm start` runs it (pages included), on 127.0.0.1 with
 * PUBLIC_URL its own origin; `publicHost: 'localhost'` for WebAuthn (an IP
 * address is no valid RP ID; http://localhost is a secure context).
 */
export async function startWebApp(backend: BackendName = 'pglite', env: Record<string, string> = {}, publicHost = '127.0.0.1'): Promise<WebApp> {
  await ensurePagesBuilt();
  const tdb = await openTestDatabase(backend);
  const clock = new MovableClock();
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const url = `http://${publicHost}:${port}`;
    const config = testConfig({ PUBLIC_URL: url, REDIS_URL: undefined, ...(tdb.url ? { DATABASE_URL: tdb.url } : {}), ...env });
    const gh = await buildApp(config, { db: tdb.db, clock });
    try {
      await gh.app.listen({ host: '127.0.0.1', port });
    } catch (err) {
      await gh.app.close();
      rmSync(config.dataDir, { recursive: true, force: true });
      if (attempt < 3 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE') continue;
      await tdb.close();
      throw err;
    }
    return {
      ...gh,
      url,
      clock,
      close: async () => {
        try {
          await gh.app.close();
        } finally {
          await tdb.close();
          rmSync(config.dataDir, { recursive: true, force: true });
        }
      },
    };
  }
}

/** A console message about a Content-Security-Policy or Trusted Types violation (a page must cause none). */
const POLICY_VIOLATION = /Content.Security.Policy|Trusted.?(HTML|Script|Type)/i;

/** Collects every policy violation any page of the context reports into `into`. */
export function watchPolicyViolations(ctx: BrowserContext, into: string[]): void {
  ctx.on('console', (m) => {
    if (POLICY_VIOLATION.test(m.text())) into.push(`${m.page()?.url()}: ${m.text()}`);
  });
  // A refused sink (DOMParser, innerHTML under Trusted Types) throws in the page rather than logging.
  ctx.on('weberror', (e) => {
    if (POLICY_VIOLATION.test(e.error().message)) into.push(`${e.page()?.url()}: ${e.error().message}`);
  });
}

/** The sign-in page's password step, going on to /account. */
export async function passwordStep(page: Page, username: string, password: string): Promise<void> {
  await page.goto('/signin?next=%2Faccount');
  await page.getByLabel('Username or email').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

/** Sign out from the navigation bar, and wait for the signed-out header. */
export async function signOut(page: Page): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByRole('link', { name: 'Sign in' }).waitFor();
}

/**
 * Runs fn; if it throws, every open page of the contexts is photographed into
 * test-results/ first, beside a text file with the error and the pages' last
 * console lines and requests (what a screenshot cannot say about a flaky run).
 */
export async function screenshotOnFailure(t: TestContext, contexts: BrowserContext[], fn: () => Promise<void>): Promise<void> {
  const trail: string[] = [];
  const note = (line: string) => {
    trail.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
    if (trail.length > 200) trail.shift();
  };
  const onConsole = (m: ConsoleMessage) => note(`console.${m.type()} ${m.page()?.url()}: ${m.text()}`);
  const onError = (e: WebError) => note(`page error ${e.page()?.url()}: ${e.error().message}`);
  const onResponse = (r: Response) => note(`${r.request().method()} ${r.url()} -> ${r.status()}`);
  const onFailed = (r: Request) => note(`${r.method()} ${r.url()} failed: ${r.failure()?.errorText}`);
  for (const c of contexts) c.on('console', onConsole).on('weberror', onError).on('response', onResponse).on('requestfailed', onFailed);
  try {
    await fn();
  } catch (err) {
    mkdirSync(RESULTS, { recursive: true });
    const slug = t.name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').slice(0, 80);
    const error = stripVTControlCharacters((err as Error)?.stack ?? String(err)); // without the terminal's colours
    writeFileSync(join(RESULTS, `${slug}.txt`), `${error}\n\n${trail.join('\n')}\n`);
    t.diagnostic(`log: ${join(RESULTS, `${slug}.txt`)}`);
    let n = 0;
    for (const c of contexts) {
      for (const page of c.pages()) {
        const path = join(RESULTS, `${slug}-${++n}.png`);
        await page.screenshot({ path, fullPage: true }).catch(() => undefined);
        t.diagnostic(`screenshot: ${path} (${page.url()})`);
      }
    }
    throw err;
  } finally {
    // A context may outlive this test: its listeners must not.
    for (const c of contexts) c.off('console', onConsole).off('weberror', onError).off('response', onResponse).off('requestfailed', onFailed);
  }
}

/** Takes a README screenshot into docs/screenshots/ when UPDATE_SCREENSHOTS=1. */
export async function readmeScreenshot(target: Page | Locator, name: string, fullPage = false): Promise<void> {
  if (process.env.UPDATE_SCREENSHOTS !== '1') return;
  mkdirSync('docs/screenshots', { recursive: true });
  const path = `docs/screenshots/${name}.png`;
  // A page (whole or its viewport), or one part of it.
  await ('goto' in target ? target.screenshot({ path, fullPage }) : target.screenshot({ path }));
}
