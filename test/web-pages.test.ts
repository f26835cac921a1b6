// The web pages in a real browser (Debian's Chromium through playwright-core):
// sign up and in, write / edit / delete a post and read it on the blog, stay
// signed in across reloads with no token anywhere a script can read, lose
// access everywhere after "sign out everywhere", two tabs refreshing at once,
// and a page of another origin that tries to use the cookie endpoints.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { backends, STRONG_PASSWORD, uniqueName } from './helpers.js';
import { freePort, hasChromium, launchChromium, NO_CHROMIUM, readmeScreenshot, screenshotOnFailure, startWebApp, watchPolicyViolations, type WebApp } from './web-browser.js';

const skip = hasChromium() ? false : NO_CHROMIUM;

describe('web pages in Chromium', { skip }, () => {
  let app: WebApp;
  let browser: Browser;
  let closeBrowser: () => Promise<void>;
  const contexts: BrowserContext[] = [];
  // Every message of every page about a Content-Security-Policy or Trusted Types violation (there must be none).
  const violations: string[] = [];
  const watch = (c: BrowserContext) => watchPolicyViolations(c, violations);

  before(async () => {
    app = await startWebApp();
    ({ browser, close: closeBrowser } = await launchChromium());
  });
  after(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await closeBrowser?.();
    await app?.close();
  });

  async function newContext(): Promise<BrowserContext> {
    const c = await browser.newContext({ baseURL: app.url, viewport: { width: 900, height: 800 } });
    contexts.push(c);
    watch(c);
    return c;
  }

  async function register(username = uniqueName('web'), base = app.url): Promise<{ username: string; password: string }> {
    const r = await fetch(`${base}/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, email: `${username}@example.com`, password: STRONG_PASSWORD }),
    });
    assert.equal(r.status, 201, await r.text());
    return { username, password: STRONG_PASSWORD };
  }

  async function signIn(page: Page, username: string, password = STRONG_PASSWORD, next = '/account'): Promise<void> {
    await page.goto(`/signin?next=${encodeURIComponent(next)}`);
    await page.getByLabel('Username or email').fill(username);
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL((u) => u.pathname === next);
  }

  async function heading(page: Page, name: string | RegExp): Promise<void> {
    await page.getByRole('heading', { level: 1, name }).waitFor();
  }

  /** Everything a script of the page can read that could hold a credential. */
  async function readableStorage(page: Page): Promise<string> {
    return page.evaluate(() => JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie }));
  }

  test('sign up (a weak password explained rule by rule), write a post, read it on the blog, edit it, delete it', async (t) => {
    const ctx = await newContext();
    const page = await ctx.newPage();
    await screenshotOnFailure(t, [ctx], async () => {
      const username = uniqueName('author');
      await page.goto('/signup');
      await heading(page, 'Sign up');
      await page.getByLabel('Username').fill(username);
      await page.getByLabel('Email').fill(`${username}@example.com`);
      await page.getByLabel('Password', { exact: true }).fill('password');
      await page.getByRole('button', { name: 'Create account' }).click();
      // The 422's rules, each a line under the password field, which is marked invalid.
      const rules = page.locator('#f-password-err li');
      await rules.first().waitFor();
      assert.ok((await rules.count()) >= 1);
      assert.equal(await page.getByLabel('Password', { exact: true }).getAttribute('aria-invalid'), 'true');
      assert.match(await page.getByRole('alert').first().innerText(), /\w/);

      await page.getByLabel('Password', { exact: true }).fill(STRONG_PASSWORD);
      await page.getByRole('button', { name: 'Create account' }).click();
      await page.waitForURL((u) => u.pathname === '/write');
      await heading(page, 'Your posts');

      // Write and publish.
      await page.getByRole('link', { name: 'Write a new post' }).click();
      await heading(page, 'New post');
      const title = `Hello from ${username}`;
      await page.getByLabel('Title').fill(title);
      await page.getByLabel('Text').fill('First line.\nSecond line.');
      await page.getByLabel(/Published/).check();
      await page.getByRole('button', { name: 'Create post' }).click();
      await heading(page, title);
      const postUrl = new URL(page.url());
      assert.match(postUrl.pathname, /^\/blog\/[0-9a-f-]{36}$/);

      // On the blog, newest first.
      await page.getByRole('navigation').getByRole('link', { name: 'Blog' }).click();
      await heading(page, 'Blog');
      await page.getByRole('link', { name: title }).waitFor();

      // Edit.
      await page.getByRole('link', { name: title }).click();
      await page.getByRole('link', { name: 'Edit' }).click();
      await heading(page, 'Edit post');
      await page.getByLabel('Title').fill(`${title} (edited)`);
      await page.getByRole('button', { name: 'Save' }).click();
      await heading(page, `${title} (edited)`);
      const api = await (await fetch(`${app.url}/posts${postUrl.pathname.slice('/blog'.length)}`)).json();
      assert.equal(api.title, `${title} (edited)`);

      // Delete (after confirming).
      await page.getByRole('link', { name: 'Edit' }).click();
      page.once('dialog', (d) => void d.accept());
      await page.getByRole('button', { name: 'Delete' }).click();
      await page.waitForURL((u) => u.pathname === '/write');
      await page.getByText('You have not written anything yet.').waitFor();
      assert.equal((await fetch(`${app.url}/posts${postUrl.pathname.slice('/blog'.length)}`)).status, 404);
      await page.goto('/');
      await heading(page, 'Blog');
      assert.equal(await page.getByRole('link', { name: title }).count(), 0);
    });
  });

  test('a reload keeps you signed in; no token in localStorage, sessionStorage or document.cookie; the refresh cookie is HttpOnly', async (t) => {
    const { username } = await register();
    const ctx = await newContext();
    const page = await ctx.newPage();
    await screenshotOnFailure(t, [ctx], async () => {
      // A wrong password: the problem's detail, in the page.
      await page.goto('/signin');
      await page.getByLabel('Username or email').fill(username);
      await page.getByLabel('Password', { exact: true }).fill('not-the-password');
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      assert.match(await page.getByRole('alert').innerText(), /incorrect|invalid|wrong/i);

      // By keyboard alone: Tab to the field, type, Tab, type, Enter.
      await page.goto('/signin?next=/account');
      await heading(page, 'Sign in');
      for (let i = 0; i < 15 && (await page.evaluate(() => document.activeElement?.id)) !== 'f-username'; i++) await page.keyboard.press('Tab');
      await page.keyboard.type(username);
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'f-password');
      await page.keyboard.type(STRONG_PASSWORD);
      await page.keyboard.press('Enter');
      await page.waitForURL((u) => u.pathname === '/account');
      await heading(page, 'Your account');
      await page.reload();
      await heading(page, 'Your account');
      assert.match(await page.getByRole('navigation').innerText(), new RegExp(`Account \\(${username}\\)`));

      const readable = await readableStorage(page);
      assert.doesNotMatch(readable, /eyJ[\w-]+\.[\w-]+/, 'no JWT a script can read');
      assert.doesNotMatch(readable, /ghr_|gh_refresh/, 'no refresh token a script can read');
      const cookies = await ctx.cookies();
      const refresh = cookies.find((c) => c.name === 'gh_refresh');
      assert.ok(refresh, `the refresh cookie is set: ${JSON.stringify(cookies.map((c) => c.name))}`);
      assert.equal(refresh.httpOnly, true);
      assert.equal(refresh.sameSite, 'Strict');
      assert.equal(refresh.path, '/auth/browser');
      assert.equal(cookies.length, 1, 'no other cookie');

      // An access token that expired (15 minutes later) is renewed on the next action, once, unseen.
      app.clock.advance(16 * 60_000);
      await page.getByRole('navigation').getByRole('link', { name: 'Your posts' }).click();
      await heading(page, 'Your posts');
      await page.getByText('You have not written anything yet.').waitFor();
      assert.equal(new URL(page.url()).pathname, '/write');

      // Signing out ends the session and clears the cookie.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByRole('navigation').getByRole('link', { name: 'Sign in' }).waitFor();
      assert.equal((await ctx.cookies()).find((c) => c.name === 'gh_refresh'), undefined);
      await page.goto('/account');
      await page.waitForURL((u) => u.pathname === '/signin');
    });
  });

  test('what people write is shown as text, never run as HTML; sign-in goes back only to a path of this site', async (t) => {
    const { username } = await register();
    const ctx = await newContext();
    const page = await ctx.newPage();
    await screenshotOnFailure(t, [ctx], async () => {
      const tokens = await (await fetch(`${app.url}/auth/token`, { method: 'POST', body: new URLSearchParams({ username, password: STRONG_PASSWORD }) })).json();
      const hostile = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>';
      const created = await fetch(`${app.url}/posts`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.access_token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ title: hostile, body: `${hostile}\n<a href="javascript:alert(1)">x</a>`, published: true }),
      });
      assert.equal(created.status, 201);
      const post = await created.json();
      await page.goto(`/blog/${post.id}`);
      await page.getByRole('heading', { level: 1 }).waitFor();
      assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), hostile);
      assert.equal(await page.locator('main img, main script, main a[href^="javascript:"]').count(), 0);
      await page.goto('/');
      await page.getByRole('link', { name: hostile }).waitFor();
      assert.equal(await page.locator('main img, main script').count(), 0);
      assert.notEqual(await page.title(), 'pwned');
      // Long unbroken words wrap at phone width instead of pushing the page sideways.
      await page.setViewportSize({ width: 360, height: 740 });
      for (const path of ['/', `/blog/${post.id}`]) {
        await page.goto(path);
        await page.getByRole('heading', { level: 1 }).waitFor();
        assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth), `${path} scrolls sideways`);
      }
      // (Gone again, so the README screenshot of the blog shows only its own posts.)
      const gone = await fetch(`${app.url}/posts/${post.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${tokens.access_token}` } });
      assert.equal(gone.status, 204);

      // ?next= may only name a path here: another origin, or a scheme-relative URL, lands on the blog.
      for (const next of ['//evil.example/', 'https://evil.example/', '/\\evil.example/']) {
        await page.goto(`/signin?next=${encodeURIComponent(next)}`);
        await page.getByLabel('Username or email').fill(username);
        await page.getByLabel('Password', { exact: true }).fill(STRONG_PASSWORD);
        await page.getByRole('button', { name: 'Sign in', exact: true }).click();
        await heading(page, 'Blog');
        assert.equal(page.url(), `${app.url}/`, next);
        await page.getByRole('button', { name: 'Sign out' }).click();
        await page.getByRole('navigation').getByRole('link', { name: 'Sign in' }).waitFor();
      }
    });
  });

  test('the page refreshes its access token a minute before it expires, not earlier', async (t) => {
    const { username } = await register();
    const ctx = await newContext();
    const page = await ctx.newPage();
    await screenshotOnFailure(t, [ctx], async () => {
      // The page's timers run on a clock the test moves (the server's clock is real).
      await page.clock.install();
      await signIn(page, username);
      await heading(page, 'Your account');
      const refreshes: number[] = [];
      page.on('response', (r) => {
        if (new URL(r.url()).pathname === '/auth/browser/refresh') refreshes.push(r.status());
      });
      await page.clock.runFor(13 * 60_000 + 50_000); // 13:50 of a 15:00 token
      assert.deepEqual(refreshes, [], 'no refresh yet');
      const refreshed = page.waitForResponse((r) => new URL(r.url()).pathname === '/auth/browser/refresh');
      await page.clock.runFor(15_000); // past 14:00
      assert.equal((await refreshed).status(), 200);
      // The new token is the one in use.
      await page.getByRole('navigation').getByRole('link', { name: 'Your posts' }).click();
      await heading(page, 'Your posts');
      assert.deepEqual(refreshes, [200], 'exactly one refresh');
    });
  });

  test('"sign out everywhere" in one browser: the other loses access at its next action', async (t) => {
    const { username } = await register();
    const first = await newContext();
    const second = await newContext();
    const a = await first.newPage();
    const b = await second.newPage();
    await screenshotOnFailure(t, [first, second], async () => {
      await signIn(a, username);
      await signIn(b, username, STRONG_PASSWORD, '/write');
      await heading(b, 'Your posts');
      await a.reload();
      await heading(a, 'Your account');
      // Both sessions are listed in the first browser.
      await a.getByText('this browser').waitFor();
      assert.equal(await a.locator('.sessions > li').count(), 2);

      await a.getByRole('button', { name: 'Sign out everywhere' }).click();
      await a.waitForURL((u) => u.pathname === '/signin');

      // The second browser still shows its page; its next action finds the session gone.
      await b.getByRole('navigation').getByRole('link', { name: /^Account/ }).click();
      await b.waitForURL((u) => u.pathname === '/signin');
      await b.getByRole('navigation').getByRole('link', { name: 'Sign in' }).waitFor();
      await b.reload();
      await b.getByRole('navigation').getByRole('link', { name: 'Sign in' }).waitFor();
    });
  });

  // On each backend: rotation under concurrent requests is the database's work.
  for (const backend of backends()) {
    test(`two tabs of one browser refreshing at the same moment both stay signed in, even with no grace window (the Web Lock; ${backend})`, async (t) => {
      // Without a grace window the server takes any second use of a refresh token as reuse and
      // ends the session: only the pages' one-refresh-at-a-time keeps these tabs signed in.
      const strict = await startWebApp(backend, { REFRESH_REUSE_GRACE_SECONDS: '0' });
      const ctx = await browser.newContext({ baseURL: strict.url });
      contexts.push(ctx);
      watch(ctx);
      const one = await ctx.newPage();
      const two = await ctx.newPage();
      try {
        await screenshotOnFailure(t, [ctx], async () => {
          const { username } = await register(uniqueName('tabs'), strict.url);
          await signIn(one, username);
          await two.goto('/account');
          await heading(two, 'Your account');
          for (let round = 0; round < 4; round++) {
            // Each reload refreshes through the same cookie, at once.
            await Promise.all([one.reload(), two.reload()]);
            await Promise.all([heading(one, 'Your account'), heading(two, 'Your account')]);
          }
          // The session is alive: still one session, and a protected action works in both tabs.
          await one.locator('.sessions > li').first().waitFor();
          assert.equal(await one.locator('.sessions > li').count(), 1);
          for (const p of [one, two]) {
            await p.getByRole('navigation').getByRole('link', { name: 'Your posts' }).click();
            await heading(p, 'Your posts');
            await p.getByText('You have not written anything yet.').waitFor();
          }
        });
      } finally {
        await ctx.close();
        await strict.close();
      }
    });
  }

  describe('a page of another origin', () => {
    let evil: Server;
    let evilPort: number;
    before(async () => {
      evilPort = await freePort();
      evil = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<!doctype html><title>elsewhere</title><p>another origin</p>');
      });
      await new Promise<void>((resolve) => evil.listen(evilPort, '127.0.0.1', resolve));
    });
    after(() => new Promise<void>((resolve) => evil.close(() => resolve())));

    for (const host of ['127.0.0.1', 'localhost']) {
      test(`on ${host} (${host === '127.0.0.1' ? 'same site, other port: the cookie is sent' : 'another site'}) cannot use the cookie endpoints`, async (t) => {
        const { username } = await register();
        const ctx = await newContext();
        const victim = await ctx.newPage();
        const attacker = await ctx.newPage();
        await screenshotOnFailure(t, [ctx], async () => {
          await signIn(victim, username);
          await attacker.goto(`http://${host}:${evilPort}/`);
          // A script's fetch with the CSRF header needs a CORS preflight, which the service refuses.
          const outcomes = await attacker.evaluate(async (base) => {
            const results: string[] = [];
            for (const path of ['/auth/browser/refresh', '/auth/browser/token', '/auth/browser/logout?scope=global']) {
              try {
                const r = await fetch(base + path, { method: 'POST', credentials: 'include', headers: { 'X-Requested-With': 'gatehouse' } });
                results.push(`${path}: ${r.status}`);
              } catch (err) {
                results.push(`${path}: ${(err as Error).name}`);
              }
            }
            return results;
          }, app.url);
          for (const o of outcomes) assert.match(o, /: (TypeError|403)$/, o);

          // A form (what CSRF really uses: no header, no preflight) gets 403 and changes nothing.
          for (const path of ['/auth/browser/logout?scope=global', '/auth/browser/refresh']) {
            const [response] = await Promise.all([
              attacker.waitForResponse((r) => r.url().startsWith(`${app.url}/auth/browser/`)),
              attacker.evaluate(
                ({ action }) => {
                  const f = document.createElement('form');
                  f.method = 'POST';
                  f.action = action;
                  document.body.append(f);
                  f.submit();
                },
                { action: app.url + path },
              ),
            ]);
            assert.equal(response.status(), 403, `${path} from ${host}`);
            assert.equal((await response.json()).code, 'csrf_rejected');
            await attacker.waitForURL((u) => u.origin === app.url);
            await attacker.goto(`http://${host}:${evilPort}/`);
          }
          // The person is still signed in, and their session still refreshes.
          await victim.reload();
          await heading(victim, 'Your account');
        });
      });
    }
  });

  test('account: the profile saves, a new email needs the current password, a weak new password is explained rule by rule', async (t) => {
    const { username } = await register();
    const ctx = await newContext();
    const page = await ctx.newPage();
    await screenshotOnFailure(t, [ctx], async () => {
      await signIn(page, username);
      await heading(page, 'Your account');
      await page.getByLabel('Full name').fill('Grace Hopper');
      await page.getByRole('button', { name: 'Save profile' }).click();
      await page.getByText('Your profile is saved.').waitFor();

      // A new address asks for the current password; a wrong one is refused in the service's words.
      await page.getByLabel('Email').fill(`${username}.new@example.com`);
      const current = page.getByLabel(/Current password \(needed/);
      await current.fill('not-my-password');
      await page.getByRole('button', { name: 'Save profile' }).click();
      await page.locator('section[aria-labelledby="profile-h"] [role="alert"]').waitFor();
      await current.fill(STRONG_PASSWORD);
      await page.getByRole('button', { name: 'Save profile' }).click();
      await page.getByText('Your profile is saved.').waitFor();
      await page.reload();
      await heading(page, 'Your account');
      assert.equal(await page.getByLabel('Full name').inputValue(), 'Grace Hopper');
      assert.equal(await page.getByLabel('Email').inputValue(), `${username}.new@example.com`);

      // Change password: a weak one lists every failed rule under the field.
      await page.getByLabel('Current password', { exact: true }).fill(STRONG_PASSWORD);
      await page.getByLabel('New password').fill('aaaaaaa');
      await page.getByRole('button', { name: 'Change password' }).click();
      const rules = page.locator('#f-new_password-err li');
      await rules.first().waitFor();
      assert.ok((await rules.count()) >= 2, `several rules fail: ${await rules.allInnerTexts()}`);
      await page.getByLabel('New password').fill('another-Sturdy-93-pass');
      await page.getByRole('button', { name: 'Change password' }).click();
      await page.getByText('Your password is changed.').waitFor();
      // Still signed in here, and the new password works.
      await page.reload();
      await heading(page, 'Your account');
      const r = await fetch(`${app.url}/auth/token`, { method: 'POST', body: new URLSearchParams({ username, password: 'another-Sturdy-93-pass' }) });
      assert.equal(r.status, 200);
    });
  });

  test('README screenshots (UPDATE_SCREENSHOTS=1): the blog and the account page', async (t) => {
    const ctx = await browser.newContext({ baseURL: app.url, viewport: { width: 1000, height: 760 }, deviceScaleFactor: 1 });
    contexts.push(ctx);
    watch(ctx);
    const page = await ctx.newPage();
    await screenshotOnFailure(t, [ctx], async () => {
      const { username } = await register('ada');
      await signIn(page, username, STRONG_PASSWORD, '/write');
      const posts = [
        ['Refresh tokens belong in HttpOnly cookies', 'The page keeps its access token in memory only; the refresh token never meets a script.'],
        ['Rotation, grace and reuse detection', 'Each refresh returns a new token. A replay after the grace window ends the whole session.'],
        ['Hello, Gatehouse', 'The first post of this blog, written in the browser and served by the service itself.'],
      ];
      for (const [title, body] of posts.reverse()) {
        await page.goto('/write/new');
        await page.getByLabel('Title').fill(title!);
        await page.getByLabel('Text').fill(body!);
        await page.getByLabel(/Published/).check();
        await page.getByRole('button', { name: 'Create post' }).click();
        await heading(page, title!);
      }
      await page.goto('/');
      await page.getByRole('link', { name: posts[0]![0]! }).waitFor();
      await readmeScreenshot(page, 'blog');
      await page.goto('/account');
      await heading(page, 'Your account');
      await page.getByLabel('Full name').fill('Ada Lovelace');
      await page.getByRole('button', { name: 'Save profile' }).click();
      await page.getByText('Your profile is saved.').waitFor();
      await page.reload();
      await page.locator('.sessions > li').first().waitFor();
      await readmeScreenshot(page, 'account', true);
      // Readable at phone width: nothing wider than the screen.
      await page.setViewportSize({ width: 360, height: 740 });
      for (const path of ['/', '/account', '/write/new']) {
        await page.goto(path);
        await page.getByRole('heading', { level: 1 }).waitFor();
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        assert.ok(overflow <= 0, `${path} scrolls sideways by ${overflow}px at 360px`);
      }
    });
  });

  test('no page of these tests broke its Content-Security-Policy', () => {
    assert.deepEqual(violations, []);
  });
});
