// Issue 13 in a real browser (Debian's Chromium through playwright-core):
// enroll an authenticator from the account page by reading the key the page
// shows, sign out, sign in with the password and then a code computed here
// (RFC 6238, test/totp-codes.ts); use a recovery code; turn it off.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext } from 'playwright-core';
import { STRONG_PASSWORD, uniqueName } from './helpers.js';
import { codeFor, nextStep } from './totp-codes.js';
import { hasChromium, launchChromium, NO_CHROMIUM, readmeScreenshot, screenshotOnFailure, signOut, passwordStep, startWebApp, watchPolicyViolations, type WebApp } from './web-browser.js';

const skip = hasChromium() ? false : NO_CHROMIUM;

describe('two-factor authentication in Chromium', { skip }, () => {
  let app: WebApp;
  let browser: Browser;
  let closeBrowser: () => Promise<void>;
  const contexts: BrowserContext[] = [];

  before(async () => {
    app = await startWebApp();
    ({ browser, close: closeBrowser } = await launchChromium());
  });
  after(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await closeBrowser?.();
    await app?.close();
  });

  async function register(username: string): Promise<void> {
    const r = await fetch(`${app.url}/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, email: `${username}@example.com`, password: STRONG_PASSWORD }),
    });
    assert.equal(r.status, 201, await r.text());
  }

  test('enroll from the account page, sign out, sign in with password then code; a recovery code; turn it off', async (t) => {
    const ctx = await browser.newContext({ baseURL: app.url, viewport: { width: 1000, height: 900 }, deviceScaleFactor: 1 });
    contexts.push(ctx);
    const page = await ctx.newPage();
    const violations: string[] = [];
    watchPolicyViolations(ctx, violations);
    await screenshotOnFailure(t, [ctx], async () => {
      const username = uniqueName('grace');
      await register(username);
      await passwordStep(page, username, STRONG_PASSWORD);
      await page.waitForURL((u) => u.pathname === '/account');

      // Enroll: the password again, then the QR code and the key.
      const section = page.getByRole('region', { name: 'Two-factor authentication' });
      await section.getByLabel('Your password').fill(STRONG_PASSWORD);
      await section.getByRole('button', { name: 'Set up an authenticator app' }).click();
      const key = ((await section.locator('code.secret').textContent()) ?? '').replace(/\s+/g, '');
      assert.match(key, /^[A-Z2-7]{32}$/);
      const qr = section.getByRole('img', { name: /QR code/ });
      await qr.waitFor();
      const box = await qr.boundingBox();
      assert.ok(box && box.width > 100 && box.height > 100, `the QR code is drawn (${JSON.stringify(box)})`);
      await section.getByRole('heading', { name: 'Two-factor authentication' }).evaluate((h) => h.scrollIntoView());
      await readmeScreenshot(page, 'mfa-enroll');

      nextStep(app.clock);
      await section.getByLabel('Code from the app').fill(codeFor(key, app.clock));
      await section.getByRole('button', { name: 'Turn on two-factor authentication' }).click();
      const codes = section.getByRole('list', { name: 'Recovery codes' }).locator('li');
      await codes.first().waitFor();
      assert.equal(await codes.count(), 10);
      const recovery = ((await codes.first().textContent()) ?? '').trim();
      assert.match(recovery, /^[a-z2-7]{4}(-[a-z2-7]{4}){3}$/);
      await section.getByRole('heading', { name: 'Two-factor authentication' }).evaluate((h) => h.scrollIntoView());
      await readmeScreenshot(page, 'mfa-codes');
      await section.getByRole('button', { name: 'I have saved them' }).click();
      await section.getByText('10 recovery codes left').waitFor();

      // Sign out; the password alone now leads to the code prompt.
      await signOut(page);
      await passwordStep(page, username, STRONG_PASSWORD);
      await page.getByRole('heading', { level: 1, name: 'Two-factor authentication' }).waitFor();
      await readmeScreenshot(page, 'mfa-signin');
      await page.getByLabel('Authentication code').fill('000000');
      await page.getByRole('button', { name: 'Verify' }).click();
      await page.getByRole('alert').waitFor();
      nextStep(app.clock);
      await page.getByLabel('Authentication code').fill(codeFor(key, app.clock));
      await page.getByRole('button', { name: 'Verify' }).click();
      await page.waitForURL((u) => u.pathname === '/account');
      await section.getByText('10 recovery codes left').waitFor();
      assert.equal(await page.evaluate(() => document.cookie), '', 'no token readable by a script');

      // A recovery code instead of the app.
      await signOut(page);
      await passwordStep(page, username, STRONG_PASSWORD);
      await page.getByRole('button', { name: 'Use a recovery code instead' }).click();
      await page.getByLabel('Recovery code').fill(recovery);
      await page.getByRole('button', { name: 'Verify' }).click();
      await page.waitForURL((u) => u.pathname === '/account');
      await section.getByText('9 recovery codes left').waitFor();
      await section.getByRole('heading', { name: 'Two-factor authentication' }).evaluate((h) => h.scrollIntoView());
      await readmeScreenshot(page, 'mfa-account');

      // Turn it off with a code; the next sign-in is the password alone.
      nextStep(app.clock);
      await section.getByLabel('Turn off two-factor authentication').fill(codeFor(key, app.clock));
      await section.getByRole('button', { name: 'Turn off' }).click();
      await page.getByText('Two-factor authentication is off').waitFor();
      await signOut(page);
      await passwordStep(page, username, STRONG_PASSWORD);
      await page.waitForURL((u) => u.pathname === '/account');
      assert.deepEqual(violations, [], 'no CSP violation');
    });
  });
});
