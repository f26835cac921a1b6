// Issue 14 in a real browser: Debian's Chromium through playwright-core,
// with a virtual authenticator (Chrome DevTools Protocol WebAuthn domain:
// resident keys, user verification, the user verified). The service runs on
// http://localhost:PORT with that as PUBLIC_URL (localhost is a secure
// context and a valid RP ID). Add a passkey on the account page, sign out,
// sign in with the passkey alone; rename and remove it; then, with TOTP on,
// a passkey as the second step after the password.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import { STRONG_PASSWORD, uniqueName } from './helpers.js';
import { codeFor, nextStep } from './totp-codes.js';
import { hasChromium, launchChromium, NO_CHROMIUM, readmeScreenshot, screenshotOnFailure, signOut, passwordStep, startWebApp, watchPolicyViolations, type WebApp } from './web-browser.js';

const skip = hasChromium() ? false : NO_CHROMIUM;

describe('passkeys in Chromium (virtual authenticator)', { skip }, () => {
  let app: WebApp;
  let browser: Browser;
  let closeBrowser: () => Promise<void>;
  const contexts: BrowserContext[] = [];

  before(async () => {
    app = await startWebApp('pglite', {}, 'localhost');
    ({ browser, close: closeBrowser } = await launchChromium());
  });
  after(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await closeBrowser?.();
    await app?.close();
  });

  async function api(path: string, body: unknown, token?: string) {
    const r = await fetch(`${app.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    return { status: r.status, body: (await r.json().catch(() => ({}))) as Record<string, any> };
  }

  /** A platform authenticator with resident keys and user verification, on this page. */
  async function virtualAuthenticator(page: Page): Promise<{ cdp: CDPSession; authenticatorId: string }> {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    return { cdp, authenticatorId };
  }

  test('add a passkey on the account page, sign out, sign in with the passkey alone; rename; then as the second step after a password; remove', async (t) => {
    const ctx = await browser.newContext({ baseURL: app.url, viewport: { width: 1000, height: 900 }, deviceScaleFactor: 1 });
    contexts.push(ctx);
    const page = await ctx.newPage();
    const violations: string[] = [];
    watchPolicyViolations(ctx, violations);
    // Count the page's autofill (conditional) requests, so the test knows one is pending in the
    // browser before it lets the authenticator answer (it answers a conditional request at once
    // if presence is on when the request arrives).
    await ctx.addInitScript(() => {
      const w = window as unknown as { conditionalRequests: number };
      w.conditionalRequests = 0;
      const get = navigator.credentials.get.bind(navigator.credentials);
      navigator.credentials.get = (options?: CredentialRequestOptions) => {
        if (options?.mediation === 'conditional') w.conditionalRequests += 1;
        return get(options);
      };
    });
    const autofillPending = async () => {
      await page.waitForFunction(() => (window as unknown as { conditionalRequests: number }).conditionalRequests > 0);
      await page.waitForTimeout(500); // the call is on its way to the authenticator
    };
    await screenshotOnFailure(t, [ctx], async () => {
      const { cdp, authenticatorId } = await virtualAuthenticator(page);
      const presence = (enabled: boolean) => cdp.send('WebAuthn.setAutomaticPresenceSimulation', { authenticatorId, enabled });
      const username = uniqueName('ada');
      const reg = await api('/auth/register', { username, email: `${username}@example.com`, password: STRONG_PASSWORD });
      assert.equal(reg.status, 201);
      await passwordStep(page, username, STRONG_PASSWORD);
      await page.waitForURL((u) => u.pathname === '/account');

      // Add a passkey: the browser's ceremony answered by the virtual authenticator.
      const section = page.getByRole('region', { name: 'Passkeys' });
      await section.getByText('No passkeys yet.').waitFor();
      await section.getByLabel('Name (optional)').fill('Test laptop');
      await section.getByRole('button', { name: 'Add a passkey' }).click();
      await section.getByText('“Test laptop” is added').waitFor();
      await section.getByRole('listitem', { name: 'Test laptop' }).getByText('never used yet').waitFor();
      await readmeScreenshot(section, 'passkeys-account');
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      assert.equal(credentials.length, 1);
      assert.equal(credentials[0]!.isResidentCredential, true, 'a discoverable credential');
      assert.equal(credentials[0]!.rpId, 'localhost');

      // Sign out; sign in with the passkey alone (no username, no password), by the button.
      // (The authenticator waits for a touch meanwhile: it would answer the page's autofill request at once.)
      await signOut(page);
      await presence(false);
      await page.goto('/signin?next=%2Faccount');
      await page.getByLabel('Username or email').waitFor();
      await autofillPending();
      await readmeScreenshot(page.locator('main'), 'passkeys-signin');
      await presence(true);
      await page.waitForTimeout(300);
      assert.equal(new URL(page.url()).pathname, '/signin', 'the autofill request is still waiting: the button does it');
      await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
      await page.waitForURL((u) => u.pathname === '/account');
      // And by the username field's autofill (conditional mediation): opening the page is enough here,
      // since the virtual authenticator picks the one passkey at once.
      await signOut(page);
      await page.goto('/signin?next=%2Faccount');
      await page.waitForURL((u) => u.pathname === '/account');
      await section.getByRole('listitem', { name: 'Test laptop' }).getByText(/last used/).waitFor();
      const signCount = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials[0]!.signCount;
      assert.ok(signCount >= 1, `the authenticator signed (${signCount})`);
      assert.equal(await page.evaluate(() => document.cookie), '', 'no token readable by a script');

      // Rename it.
      const item = section.getByRole('listitem', { name: 'Test laptop' });
      await item.getByRole('button', { name: 'Rename' }).click();
      await item.getByLabel('New name').fill('Work laptop');
      await item.getByRole('button', { name: 'Save name' }).click();
      await section.getByRole('listitem', { name: 'Work laptop' }).waitFor();

      // Turn TOTP on (through the API with this user's token), then the password asks for a second step: the passkey.
      const token = (await fetch(`${app.url}/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'password', username, password: STRONG_PASSWORD }),
      }).then((r) => r.json())) as { access_token: string };
      const enroll = await api('/users/me/mfa/totp', { password: STRONG_PASSWORD }, token.access_token);
      assert.equal(enroll.status, 200);
      nextStep(app.clock);
      assert.equal((await api('/users/me/mfa/totp/confirm', { code: codeFor(enroll.body.secret, app.clock) }, token.access_token)).status, 200);
      await signOut(page);
      await presence(false);
      await passwordStep(page, username, STRONG_PASSWORD);
      await page.getByRole('heading', { level: 1, name: 'Two-factor authentication' }).waitFor();
      await presence(true);
      await page.getByRole('button', { name: 'Use a passkey' }).click();
      await page.waitForURL((u) => u.pathname === '/account');
      await app.core.audit.flush();
      const logins = await app.core.db.query<{ detail: { amr?: string[] } }>(
        `SELECT detail FROM audit_events WHERE type = 'login' AND username = $1 ORDER BY at DESC LIMIT 1`,
        [username],
      );
      assert.deepEqual(logins.rows[0]?.detail.amr, ['pwd', 'hwk', 'mfa']);

      // Remove it: gone from the list, and it signs in no more.
      await section.getByRole('listitem', { name: 'Work laptop' }).getByRole('button', { name: 'Remove' }).click();
      await section.getByText('No passkeys yet.').waitFor();
      await signOut(page);
      await presence(false);
      await page.goto('/signin');
      await page.getByLabel('Username or email').waitFor();
      await autofillPending();
      await presence(true);
      await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
      await page.getByRole('alert').waitFor();
      assert.equal(new URL(page.url()).pathname, '/signin');
      assert.deepEqual(violations, [], 'no CSP violation');
    });
  });
});
