// /docs in a real browser: Swagger UI's Authorize button runs the OAuth2
// password flow against /auth/token, then "Try it out" on GET /users/me
// answers 200 in the page (its CSP lets Swagger UI do all of that).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { registerUser } from './helpers.js';
import { HttpClient } from './http-client.js';
import { hasChromium, launchChromium, NO_CHROMIUM, screenshotOnFailure, startWebApp, type WebApp } from './web-browser.js';

describe('/docs in Chromium', { skip: hasChromium() ? false : NO_CHROMIUM }, () => {
  let app: WebApp;
  let browser: Browser;
  let closeBrowser: () => Promise<void>;
  before(async () => {
    app = await startWebApp();
    ({ browser, close: closeBrowser } = await launchChromium());
  });
  after(async () => {
    await closeBrowser?.();
    await app?.close();
  });

  test('Authorize with the password flow, then Try it out on GET /users/me: 200 in the page', async (t) => {
    const user = await registerUser(new HttpClient(app.url));
    const ctx = await browser.newContext({ baseURL: app.url });
    ctx.setDefaultTimeout(15_000);
    const page = await ctx.newPage();
    const blocked: string[] = [];
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) blocked.push(m.text());
    });
    try {
      await screenshotOnFailure(t, [ctx], async () => {
        await page.goto('/docs');
        await page.locator('button.authorize').first().click();
        const modal = page.locator('.modal-ux');
        await modal.locator('#oauth_username').fill(user.username);
        await modal.locator('#oauth_password').fill(user.password);
        const [token] = await Promise.all([
          page.waitForResponse((r) => new URL(r.url()).pathname === '/auth/token'),
          modal.getByRole('button', { name: 'Apply given OAuth2 credentials' }).click(),
        ]);
        assert.equal(token.status(), 200);
        await modal.getByRole('button', { name: 'Remove authorization' }).waitFor();
        await modal.locator('button.btn-done').first().click();

        const op = page.locator('.opblock-get').filter({ has: page.locator('[data-path="/users/me"]') }).first();
        await op.locator('.opblock-summary-control').click();
        // "Try it out" (already on when the UI is configured with tryItOutEnabled).
        await op.locator('button.execute, button.try-out__btn').first().waitFor();
        if (!(await op.locator('button.execute').count())) await op.getByRole('button', { name: 'Try it out' }).click();
        const [response] = await Promise.all([
          page.waitForResponse((r) => new URL(r.url()).pathname === '/users/me' && r.request().method() === 'GET'),
          op.getByRole('button', { name: 'Execute' }).click(),
        ]);
        assert.equal(response.status(), 200);
        // And Swagger UI shows it.
        const status = op.locator('.live-responses-table tbody .response-col_status').first();
        await status.waitFor();
        assert.equal((await status.innerText()).trim(), '200');
        assert.match(await op.locator('.live-responses-table .microlight').first().innerText(), new RegExp(user.username));
        assert.deepEqual(blocked, [], 'nothing blocked by the CSP');
      });
    } finally {
      await ctx.close();
    }
  });
});
