// The mail pages in a real browser (Debian's Chromium, the harness of
// test/web-pages.test.ts) with a real SMTP server: forgot the password →
// the link from the captured mail → a new password → signed in with it;
// the verification link; an email change on the account page.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { STRONG_PASSWORD, uniqueName } from './helpers.js';
import { MailCatcher, RESET, tokenOf, VERIFY, CHANGED } from './mail-catcher.js';
import { hasChromium, launchChromium, NO_CHROMIUM, screenshotOnFailure, startWebApp, watchPolicyViolations, type WebApp } from './web-browser.js';

const skip = hasChromium() ? false : NO_CHROMIUM;
const NEW_PASSWORD = 'Quartz-lantern-93-ember';

describe('mail pages in Chromium', { skip }, () => {
  let app: WebApp;
  let browser: Browser;
  let closeBrowser: () => Promise<void>;
  const smtp = new MailCatcher();
  const contexts: BrowserContext[] = [];
  const violations: string[] = [];

  before(async () => {
    await smtp.start();
    app = await startWebApp('pglite', { SMTP_URL: smtp.url, RATE_LIMIT_PASSWORD_RESET_PER_HOUR: '100000' });
    ({ browser, close: closeBrowser } = await launchChromium());
  });
  after(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await closeBrowser?.();
    await app?.close();
    await smtp.stop();
  });

  async function newPage(): Promise<{ ctx: BrowserContext; page: Page }> {
    const ctx = await browser.newContext({ baseURL: app.url, viewport: { width: 900, height: 800 } });
    watchPolicyViolations(ctx, violations);
    contexts.push(ctx);
    return { ctx, page: await ctx.newPage() };
  }

  async function register(): Promise<{ username: string; email: string }> {
    const username = uniqueName('webmail');
    const email = `${username}@example.com`;
    const r = await fetch(`${app.url}/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, email, password: STRONG_PASSWORD }),
    });
    assert.equal(r.status, 201, await r.text());
    return { username, email };
  }

  async function signIn(page: Page, username: string, password: string): Promise<void> {
    await page.goto('/signin?next=%2Faccount');
    await page.getByLabel('Username or email').fill(username);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL((u) => u.pathname === '/account');
  }

  test('forgot password: request, open the mailed link, set a new password, sign in with it', async (t) => {
    const { ctx, page } = await newPage();
    await screenshotOnFailure(t, [ctx], async () => {
      const u = await register();
      await page.goto('/signin');
      await page.getByRole('link', { name: 'Reset it' }).click();
      await page.getByRole('heading', { level: 1, name: 'Reset your password' }).waitFor();
      await page.getByLabel('Email').fill(u.email);
      await page.getByRole('button', { name: 'Send me a link' }).click();
      await page.getByRole('status').filter({ hasText: 'a link to choose a new password is on its way' }).waitFor();

      const mail = await smtp.waitFor(u.email, RESET);
      const link = /(http:\/\/\S+\/reset-password#token=[A-Za-z0-9_-]+)/.exec(mail.text)![1]!;
      assert.ok(link.startsWith(app.url));
      // Opened from the mail: a new tab.
      const mailTab = await ctx.newPage();
      await mailTab.goto(link);
      await mailTab.getByRole('heading', { level: 1, name: 'Choose a new password' }).waitFor();
      assert.equal(new URL(mailTab.url()).hash, '', 'the token is dropped from the address bar');
      await page.close();
      const p = mailTab;
      // The policy explains itself, and the token survives a refusal.
      await p.getByLabel('New password').fill('password');
      await p.getByRole('button', { name: 'Set the new password' }).click();
      await p.locator('#f-new_password-err li').first().waitFor();
      await p.getByLabel('New password').fill(NEW_PASSWORD);
      await p.getByRole('button', { name: 'Set the new password' }).click();
      await p.getByRole('heading', { level: 1, name: 'Password changed' }).waitFor();
      await smtp.waitFor(u.email, /password was changed/i);

      await p.getByRole('link', { name: 'Sign in' }).first().click();
      await signIn(p, u.username, NEW_PASSWORD);
      await p.getByRole('heading', { level: 1, name: 'Your account' }).waitFor();
      assert.deepEqual(violations, []);
    });
  });

  test('the verification link confirms the address; an email change on the account page mails both addresses', async (t) => {
    const { ctx, page } = await newPage();
    await screenshotOnFailure(t, [ctx], async () => {
      const u = await register();
      await signIn(page, u.username, STRONG_PASSWORD);
      await page.getByText('not confirmed yet').waitFor();
      const token = tokenOf(await smtp.waitFor(u.email, VERIFY));
      await page.goto(`/verify-email#token=${token}`);
      await page.getByRole('status').filter({ hasText: `${u.email} is confirmed` }).waitFor();
      // A link pasted into the same tab (only the fragment changes) is read too.
      await page.goto('/verify-email#token=' + 'A'.repeat(43));
      await page.getByRole('alert').filter({ hasText: 'not valid' }).waitFor();

      await page.goto('/account');
      await page.getByText('confirmed', { exact: true }).waitFor();
      const moved = `moved.${u.email}`;
      await page.getByLabel('Email').fill(moved);
      await page.getByLabel('Current password (needed to change your email)').fill(STRONG_PASSWORD);
      await page.getByRole('button', { name: 'Save profile' }).click();
      await page.getByRole('status').filter({ hasText: 'A link to confirm the new address was mailed' }).waitFor();
      await smtp.waitFor(moved, VERIFY);
      await smtp.waitFor(u.email, CHANGED);
      await page.getByText('not confirmed yet').waitFor();
      assert.deepEqual(violations, []);
    });
  });
});
