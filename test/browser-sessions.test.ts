// Browser sessions (API.md v2, "Browser sessions"; issue 11): the cookie-mode
// endpoints over real HTTP on PGlite and (with DATABASE_URL) the PostgreSQL
// server. Every cookie attribute, rotation under the grace and reuse rules,
// logout scopes, and every CSRF refusal, each shown to change nothing (the
// cookie still works afterwards).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { GRANT_TYPES, GrantAnswer } from '../src/auth/grant-dispatch.js';
import { backends, registerUser, startApp, STRONG_PASSWORD, type Res, type TestApp } from './helpers.js';

const SECOND = 1000;
const DAY = 24 * 3600 * SECOND;
const PUBLIC = 'http://pages.gatehouse.test:8080';
const OTHER = 'https://app.example.org';
const REFRESH_RE = /^ghr_[A-Za-z0-9_-]{43}$/;

/** The claims of a JWT, unverified (the app verified it; tests only read). */
function claims(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

interface SetCookie {
  name: string;
  value: string;
  attrs: Map<string, string | true>;
}

/** Every Set-Cookie of an answer, parsed as a browser would (attribute names case-insensitive). */
function setCookies(r: Res): SetCookie[] {
  return r.headers.getSetCookie().map((line) => {
    const [pair, ...rest] = line.split(';');
    const eq = pair!.indexOf('=');
    const attrs = new Map<string, string | true>();
    for (const a of rest) {
      const i = a.indexOf('=');
      if (i < 0) attrs.set(a.trim().toLowerCase(), true);
      else attrs.set(a.slice(0, i).trim().toLowerCase(), a.slice(i + 1).trim());
    }
    return { name: pair!.slice(0, eq).trim(), value: pair!.slice(eq + 1).trim(), attrs };
  });
}

function refreshCookie(r: Res): SetCookie {
  const all = setCookies(r).filter((c) => c.name === 'gh_refresh');
  assert.equal(all.length, 1, `one gh_refresh Set-Cookie expected: ${JSON.stringify(r.headers.getSetCookie())}`);
  return all[0]!;
}

function assertCleared(r: Res): void {
  const c = refreshCookie(r);
  assert.equal(c.value, '');
  assert.equal(c.attrs.get('max-age'), '0');
  assert.equal(c.attrs.get('path'), '/auth/browser');
}

/** Max-Age: the refresh token's remaining life in whole seconds (the clock moves on while the request runs). */
function assertMaxAge(c: SetCookie, seconds: number): void {
  const v = Number(c.attrs.get('max-age'));
  assert.ok(Number.isInteger(v) && v <= seconds && v >= seconds - 2, `Max-Age ${String(c.attrs.get('max-age'))}, expected ${seconds}`);
}

function assertProblem(r: Res, status: number, code: string): void {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') ?? '', /application\/problem\+json/);
  assert.equal(r.body.code, code, r.text);
  assert.equal(typeof r.body.detail, 'string');
  // RFC 9110 §15.5.2: a 401 names how to authenticate; here, the cookie.
  if (status === 401) assert.equal(r.headers.get('www-authenticate'), 'Cookie realm="gatehouse", cookie-name="gh_refresh"');
}

/** No answer of a browser endpoint carries a refresh token in its body. */
function assertNoRefreshInBody(r: Res): void {
  assert.doesNotMatch(r.text, /ghr_/);
  if (r.body && typeof r.body === 'object') assert.equal('refresh_token' in r.body, false);
}

/** A page's script: the CSRF header, its Origin, and the cookie the browser would send back. */
class Page {
  cookie: string | undefined;
  constructor(
    readonly app: TestApp,
    readonly origin: string | null = PUBLIC,
  ) {}

  headers(extra: Record<string, string | undefined> = {}): Record<string, string> {
    const h: Record<string, string | undefined> = {
      'x-requested-with': 'gatehouse',
      ...(this.origin !== null ? { origin: this.origin } : {}),
      ...(this.cookie ? { cookie: `gh_refresh=${this.cookie}` } : {}),
      ...extra,
    };
    return Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined)) as Record<string, string>;
  }

  /** Keeps what the answer's Set-Cookie says, as a browser does. */
  private keep(r: Res): Res {
    assertNoRefreshInBody(r); // on every answer of every browser endpoint in this file
    const c = setCookies(r).find((x) => x.name === 'gh_refresh');
    if (c) this.cookie = c.attrs.get('max-age') === '0' ? undefined : c.value;
    return r;
  }

  async signIn(username: string, password = STRONG_PASSWORD, extra: Record<string, string> = {}, headers: Record<string, string | undefined> = {}) {
    return this.keep(
      await this.app.http.request('POST', '/auth/browser/token', { form: { grant_type: 'password', username, password, ...extra }, headers: this.headers(headers) }),
    );
  }
  async refresh(headers: Record<string, string | undefined> = {}) {
    return this.keep(await this.app.http.request('POST', '/auth/browser/refresh', { headers: this.headers(headers) }));
  }
  /** Another tab of the same browser: the same cookie, sent again. */
  refreshWith(cookie: string) {
    this.cookie = cookie;
    return this.refresh();
  }
  logoutWith(cookie: string, scope?: string) {
    this.cookie = cookie;
    return this.logout(scope);
  }
  async logout(scope?: string, headers: Record<string, string | undefined> = {}) {
    const q = scope ? `?scope=${scope}` : '';
    return this.keep(await this.app.http.request('POST', `/auth/browser/logout${q}`, { headers: this.headers(headers) }));
  }
}

for (const backend of backends()) {
  describe(`browser sessions (${backend})`, () => {
    let app: TestApp;
    before(async () => {
      app = await startApp({ backend, env: { PUBLIC_URL: PUBLIC, CORS_ORIGINS: `${OTHER},*` } });
    });
    after(async () => app?.close());

    const user = () => registerUser(app.http);
    const me = (access: string) => app.http.get('/users/me', access);

    test('sign-in: 200 with the access token only; the refresh token in a gh_refresh cookie with every attribute', async () => {
      const u = await user();
      const page = new Page(app);
      const r = await page.signIn(u.username);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(Object.keys(r.body).sort(), ['access_token', 'expires_in', 'scope', 'token_type']);
      assert.equal(r.body.token_type, 'bearer');
      assert.equal(r.body.expires_in, 900);
      assert.equal(r.body.scope, 'me posts:write');
      assertNoRefreshInBody(r);
      assert.equal(r.headers.get('cache-control'), 'no-store');
      const c = refreshCookie(r);
      assert.match(c.value, REFRESH_RE);
      assert.equal(c.attrs.get('httponly'), true);
      assert.equal(c.attrs.get('samesite'), 'Strict');
      assert.equal(c.attrs.get('path'), '/auth/browser');
      // REFRESH_TOKEN_EXPIRE_DAYS (14) is shorter than SESSION_MAX_DAYS (90).
      assertMaxAge(c, (14 * DAY) / SECOND);
      assert.equal(c.attrs.has('secure'), false, 'http PUBLIC_URL: no Secure');
      assert.equal(c.attrs.has('domain'), false, 'host-only cookie');
      // A normal access token of the cookie's session.
      assert.equal((await me(r.body.access_token)).status, 200);
      const sessions = await app.http.get('/users/me/sessions', r.body.access_token);
      assert.deepEqual(sessions.body.map((s: { id: string }) => s.id), [claims(r.body.access_token).sid]);
    });

    test('refresh: a rotated cookie and a new access token of the same session; the old cookie is spent', async () => {
      const u = await user();
      const page = new Page(app);
      const first = await page.signIn(u.username);
      const firstCookie = page.cookie!;
      app.clock.advance(11 * SECOND);
      const r = await page.refresh();
      assert.equal(r.status, 200, r.text);
      assertNoRefreshInBody(r);
      assert.deepEqual(Object.keys(r.body).sort(), ['access_token', 'expires_in', 'scope', 'token_type']);
      const c = refreshCookie(r);
      assert.match(c.value, REFRESH_RE);
      assert.notEqual(c.value, firstCookie);
      assert.equal(c.attrs.get('httponly'), true);
      assert.equal(c.attrs.get('samesite'), 'Strict');
      assert.equal(c.attrs.get('path'), '/auth/browser');
      assertMaxAge(c, (14 * DAY) / SECOND);
      assert.equal(claims(r.body.access_token).sid, claims(first.body.access_token).sid);
      assert.equal((await me(r.body.access_token)).status, 200);
    });

    test('logout: 204, cookie cleared, the session and its access tokens are over', async () => {
      const u = await user();
      const page = new Page(app);
      const r = await page.signIn(u.username);
      const out = await page.logout();
      assert.equal(out.status, 204, out.text);
      assertCleared(out);
      assert.equal((await me(r.body.access_token)).status, 401);
    });

    test('a wrong password: 400 problem invalid_credentials, no cookie; a refresh_token grant in a body is refused and spends nothing', async () => {
      const u = await user();
      const page = new Page(app);
      const bad = await page.signIn(u.username, 'wrong-Password-1');
      assertProblem(bad, 400, 'invalid_credentials');
      assert.deepEqual(bad.headers.getSetCookie(), []);
      assert.equal(page.cookie, undefined);
      // A refresh token a page should never have: not accepted here in any form.
      const t = await app.http.token({ grant_type: 'password', username: u.username, password: u.password });
      const viaBody = await app.http.request('POST', '/auth/browser/token', {
        form: { grant_type: 'refresh_token', refresh_token: t.body.refresh_token },
        headers: page.headers(),
      });
      assertProblem(viaBody, 400, 'unsupported_grant_type');
      assert.deepEqual(viaBody.headers.getSetCookie(), []);
      assertNoRefreshInBody(viaBody);
      // Still unused: its first use is a rotation, not a reuse.
      app.clock.advance(11 * SECOND);
      assert.equal((await app.http.token({ grant_type: 'refresh_token', refresh_token: t.body.refresh_token })).status, 200);
    });

    test('the same fields as /auth/token: JSON and multipart bodies, grant_type omitted, a narrower scope; invalid_scope as a problem', async () => {
      const u = await user();
      const page = new Page(app);
      const json = await app.http.request('POST', '/auth/browser/token', { json: { username: u.username, password: u.password, scope: 'me' }, headers: page.headers() });
      assert.equal(json.status, 200, json.text);
      assert.equal(json.body.scope, 'me');
      assert.match(refreshCookie(json).value, REFRESH_RE);
      const form = new FormData();
      form.set('username', u.username);
      form.set('password', u.password);
      const multipart = await fetch(`${app.url}/auth/browser/token`, { method: 'POST', body: form, headers: page.headers() });
      assert.equal(multipart.status, 200, await multipart.clone().text());
      assert.equal(((await multipart.json()) as { scope: string }).scope, 'me posts:write');
      const wide = await page.signIn(u.username, STRONG_PASSWORD, { scope: 'admin' });
      assertProblem(wide, 400, 'invalid_scope');
      assert.deepEqual(wide.headers.getSetCookie(), []);
    });

    test('grace window: two refreshes racing with one cookie both answer 200 with the same successor; both tabs stay signed in', async () => {
      const u = await user();
      const page = new Page(app);
      await page.signIn(u.username);
      const original = page.cookie!;
      // Four tabs of one browser wake at once, each with the cookie they share.
      const [a, b, ...more] = await Promise.all([page.refresh(), ...[1, 2, 3].map(() => new Page(app).refreshWith(original))]);
      for (const r of [a!, b!, ...more]) {
        assert.equal(r.status, 200, r.text);
        assert.equal(refreshCookie(r).value, refreshCookie(a!).value, 'the same successor');
      }
      assert.notEqual(refreshCookie(a!).value, original);
      assert.notEqual(a!.body.access_token, b!.body.access_token);
      for (const r of [a!, b!, ...more]) assert.equal((await me(r.body.access_token)).status, 200);
      // A retry within the window (a lost answer), after both: the same successor again.
      app.clock.advance(5 * SECOND);
      const retry = await new Page(app).refreshWith(original);
      assert.equal(retry.status, 200, retry.text);
      assert.equal(refreshCookie(retry).value, refreshCookie(a!).value);
      // The successor carries on, past the window.
      app.clock.advance(11 * SECOND);
      const next = await page.refresh();
      assert.equal(next.status, 200, next.text);
      assert.notEqual(refreshCookie(next).value, refreshCookie(a!).value);
    });

    test('reuse after the grace window: 401, cookie cleared, and the whole session revoked', async () => {
      const u = await user();
      const page = new Page(app);
      const first = await page.signIn(u.username);
      const stolen = page.cookie!;
      const rotated = await page.refresh();
      assert.equal(rotated.status, 200);
      app.clock.advance(11 * SECOND);
      const thief = await new Page(app).refreshWith(stolen);
      assertProblem(thief, 401, 'refresh_token_reused');
      assertCleared(thief);
      assertNoRefreshInBody(thief);
      // The rightful page's successor dies with the session, and its access tokens too.
      const after = await page.refresh();
      assertProblem(after, 401, 'session_revoked');
      assertCleared(after);
      assert.equal(page.cookie, undefined);
      assert.equal((await me(first.body.access_token)).status, 401);
      assert.equal((await me(rotated.body.access_token)).status, 401);
    });

    test('no cookie, a malformed one, an unknown or expired one: 401 problem and the cookie cleared', async () => {
      const none = await new Page(app).refresh();
      assertProblem(none, 401, 'browser_session_missing');
      assertCleared(none);
      for (const value of ['garbage', `ghr_${'A'.repeat(43)}`, '']) {
        const r = await new Page(app).refreshWith(value);
        assert.equal(r.status, 401, `${value}: ${r.text}`);
        assertCleared(r);
      }
      const u = await user();
      const page = new Page(app);
      await page.signIn(u.username);
      const cookie = page.cookie!;
      app.clock.advance(15 * DAY);
      const expired = await page.refresh();
      assertProblem(expired, 401, 'refresh_token_expired');
      assertCleared(expired);
      const out = await new Page(app).logoutWith(cookie);
      assertProblem(out, 401, 'refresh_token_invalid');
      assertCleared(out);
      const outNone = await new Page(app).logout();
      assertProblem(outNone, 401, 'browser_session_missing');
      assertCleared(outNone);
    });

    test('two gh_refresh cookies (one tossed from a sibling subdomain) are refused, neither used', async () => {
      const u = await user();
      const mine = new Page(app);
      await mine.signIn(u.username);
      const theirs = new Page(app);
      await theirs.signIn((await user()).username);
      for (const cookie of [`gh_refresh=${theirs.cookie}; gh_refresh=${mine.cookie}`, `a=1;gh_refresh=${theirs.cookie};  gh_refresh =${mine.cookie}`]) {
        const r = await app.http.request('POST', '/auth/browser/refresh', { headers: { ...mine.headers(), cookie } });
        assertProblem(r, 401, 'browser_session_missing');
        assertCleared(r);
      }
      // Neither token was spent.
      app.clock.advance(11 * SECOND);
      assert.equal((await mine.refresh()).status, 200);
      assert.equal((await theirs.refresh()).status, 200);
    });

    test('a grant added to GRANT_TYPES is served by both token endpoints; its own answers (403 mfa_required) keep their shape', async () => {
      const u = await user();
      const answer = { error: 'mfa_required', error_description: 'A second factor is needed', mfa_token: 'mfa-test', mfa_methods: ['totp'] };
      GRANT_TYPES['urn:test:answer'] = async () => {
        throw new GrantAnswer(403, answer);
      };
      // A stand-in for a later grant: it signs the named user in through the grants' own session opening.
      GRANT_TYPES['urn:test:trusted'] = async (core, p, meta) => {
        const row = await core.users.findForLogin(p.username ?? '');
        if (!row) throw new Error('no such user');
        return (await core.grants.openSession(row, 'me', meta)).response;
      };
      try {
        const page = new Page(app);
        for (const path of ['/auth/token', '/auth/browser/token']) {
          const r = await app.http.request('POST', path, { form: { grant_type: 'urn:test:answer' }, headers: page.headers() });
          assert.equal(r.status, 403, `${path}: ${r.text}`);
          assert.deepEqual(r.body, answer, path);
          assert.equal(r.headers.get('cache-control'), 'no-store');
          assert.deepEqual(r.headers.getSetCookie(), []);
        }
        const bearer = await app.http.token({ grant_type: 'urn:test:trusted', username: u.username });
        assert.equal(bearer.status, 200, bearer.text);
        assert.match(bearer.body.refresh_token, REFRESH_RE);
        const cookie = await page.signIn(u.username, '', { grant_type: 'urn:test:trusted' });
        assert.equal(cookie.status, 200, cookie.text);
        assertNoRefreshInBody(cookie);
        assertMaxAge(refreshCookie(cookie), (14 * DAY) / SECOND);
        assert.equal(cookie.body.scope, 'me');
        assert.equal((await page.refresh()).status, 200);
        // Unknown grants name the supported ones; the browser endpoint never lists refresh_token.
        const unknown = await page.signIn(u.username, '', { grant_type: 'urn:nope' });
        assertProblem(unknown, 400, 'unsupported_grant_type');
        assert.doesNotMatch(unknown.body.detail, /refresh_token/);
        assert.match(unknown.body.detail, /password/);
      } finally {
        delete GRANT_TYPES['urn:test:answer'];
        delete GRANT_TYPES['urn:test:trusted'];
      }
    });

    test('a disabled user’s cookie is dead', async () => {
      const u = await user();
      const page = new Page(app);
      await page.signIn(u.username);
      await app.core.db.query('UPDATE users SET disabled = true WHERE id = $1', [u.id]);
      const r = await page.refresh();
      assert.equal(r.status, 401, r.text);
      assertCleared(r);
    });

    test('https PUBLIC_URL: the cookie is Secure, on every answer that sets or clears it; a plugin prefix moves its Path', async () => {
      const secure = await startApp({ backend, env: { PUBLIC_URL: 'https://id.example.com/' }, options: { prefix: '/id' } });
      try {
        const u = { username: `sec${Date.now() % 1e6}`, password: STRONG_PASSWORD };
        const reg = await secure.http.post('/id/register', { ...u, email: `${u.username}@example.com` });
        assert.equal(reg.status, 201, reg.text);
        const page = new Page(secure, 'https://id.example.com');
        const post = (path: string) => secure.http.request('POST', path, { headers: page.headers() });
        const signIn = await secure.http.request('POST', '/id/browser/token', { form: { username: u.username, password: u.password }, headers: page.headers() });
        assert.equal(signIn.status, 200, signIn.text);
        page.cookie = refreshCookie(signIn).value;
        const refreshed = await post('/id/browser/refresh');
        assert.equal(refreshed.status, 200, refreshed.text);
        page.cookie = refreshCookie(refreshed).value;
        const out = await post('/id/browser/logout');
        assert.equal(out.status, 204, out.text);
        const dead = await post('/id/browser/refresh');
        assert.equal(dead.status, 401, dead.text);
        for (const r of [signIn, refreshed, out, dead]) {
          const c = refreshCookie(r);
          assert.equal(c.attrs.get('secure'), true);
          assert.equal(c.attrs.get('httponly'), true);
          assert.equal(c.attrs.get('samesite'), 'Strict');
          assert.equal(c.attrs.get('path'), '/id/browser');
        }
        // The port-less https origin is PUBLIC_URL's; its http twin is not.
        const plain = await secure.http.request('POST', '/id/browser/refresh', { headers: { ...page.headers(), origin: 'http://id.example.com' } });
        assertProblem(plain, 403, 'csrf_rejected');
      } finally {
        await secure.close();
      }
    });

    test('Max-Age is bounded by the session’s end', async () => {
      const short = await startApp({ backend, env: { PUBLIC_URL: PUBLIC, SESSION_MAX_DAYS: '1', REFRESH_TOKEN_EXPIRE_DAYS: '14' } });
      try {
        const u = await registerUser(short.http);
        const page = new Page(short);
        const r = await page.signIn(u.username);
        assertMaxAge(refreshCookie(r), DAY / SECOND);
        short.clock.advance(DAY / 2);
        const later = await page.refresh();
        assert.equal(later.status, 200, later.text);
        assertMaxAge(refreshCookie(later), DAY / 2 / SECOND);
      } finally {
        await short.close();
      }
    });

    test('logout scopes: local ends this session only; others keeps this one (and its cookie); global ends all', async () => {
      const u = await user();
      const [a, b, c] = [new Page(app), new Page(app), new Page(app)];
      const ta = await a.signIn(u.username);
      const tb = await b.signIn(u.username);
      const tc = await c.signIn(u.username);

      const others = await a.logout('others');
      assert.equal(others.status, 204, others.text);
      assert.deepEqual(others.headers.getSetCookie(), [], 'others: the cookie stays');
      assert.equal((await me(ta.body.access_token)).status, 200);
      assert.equal((await me(tb.body.access_token)).status, 401);
      assert.equal((await me(tc.body.access_token)).status, 401);
      assert.equal((await b.refresh()).status, 401);
      app.clock.advance(11 * SECOND);
      const still = await a.refresh();
      assert.equal(still.status, 200, 'the calling session keeps working');

      const d = new Page(app);
      const td = await d.signIn(u.username);
      const local = await d.logout('local');
      assert.equal(local.status, 204);
      assertCleared(local);
      assert.equal((await me(td.body.access_token)).status, 401);
      assert.equal((await me(still.body.access_token)).status, 200, 'local leaves the other sessions');

      const e = new Page(app);
      await e.signIn(u.username);
      const global = await e.logout('global');
      assert.equal(global.status, 204);
      assertCleared(global);
      assert.equal((await me(still.body.access_token)).status, 401);
      assert.equal((await a.refresh()).status, 401);

      const bad = await new Page(app).logout('everything');
      assert.equal(bad.status, 422, bad.text);
    });

    test('audit: login, refresh and logout recorded as the normal grants record them', async () => {
      const u = await user();
      const page = new Page(app);
      const t = await page.signIn(u.username, STRONG_PASSWORD, {}, { 'user-agent': 'browser-test/1' });
      app.clock.advance(11 * SECOND);
      await page.refresh();
      await page.logout('local');
      await app.core.audit.flush();
      const rows = (
        await app.core.db.query<{ type: string; session_id: string; user_agent: string | null; detail: Record<string, unknown> }>(
          `SELECT type, session_id, user_agent, detail FROM audit_events WHERE user_id = $1 AND type <> 'register'`,
          [u.id],
        )
      ).rows;
      const sid = claims(t.body.access_token).sid;
      assert.deepEqual(rows.map((r) => r.type).sort(), ['login', 'logout', 'refresh']);
      for (const r of rows) assert.equal(r.session_id, sid, r.type);
      assert.equal(rows.find((r) => r.type === 'login')!.user_agent, 'browser-test/1');
      assert.equal(rows.find((r) => r.type === 'logout')!.detail.scope, 'local');
    });

    describe('CSRF: every refusal is a 403 problem that changes nothing', () => {
      const refusals: Array<[string, Record<string, string | undefined>]> = [
        ['no X-Requested-With', { 'x-requested-with': undefined }],
        ['X-Requested-With: XMLHttpRequest', { 'x-requested-with': 'XMLHttpRequest' }],
        ['X-Requested-With: Gatehouse (case matters)', { 'x-requested-with': 'Gatehouse' }],
        ['no Origin', { origin: undefined }],
        ['a foreign Origin', { origin: 'https://evil.example' }],
        ['Origin: null', { origin: 'null' }],
        ['PUBLIC_URL’s host on another scheme', { origin: 'https://pages.gatehouse.test:8080' }],
        ['PUBLIC_URL’s host on another port', { origin: 'http://pages.gatehouse.test' }],
        ['PUBLIC_URL’s origin with a path', { origin: `${PUBLIC}/` }],
        ['a suffix of PUBLIC_URL’s host', { origin: 'http://evilpages.gatehouse.test:8080' }],
        ['a CORS origin’s subdomain', { origin: 'https://x.app.example.org' }],
      ];

      for (const [name, headers] of refusals) {
        test(name, async () => {
          const u = await user();
          const page = new Page(app);
          const first = await page.signIn(u.username);
          assert.equal(first.status, 200);
          const cookie = page.cookie!;
          const sessions = async () => (await app.http.get('/users/me/sessions', first.body.access_token)).body.length as number;

          const headersFor = (p: Page) => p.headers(headers);
          const signIn = await app.http.request('POST', '/auth/browser/token', {
            form: { username: u.username, password: u.password },
            headers: headersFor(page),
          });
          const refresh = await app.http.request('POST', '/auth/browser/refresh', { headers: headersFor(page) });
          const logout = await app.http.request('POST', '/auth/browser/logout?scope=global', { headers: headersFor(page) });
          for (const r of [signIn, refresh, logout]) {
            assertProblem(r, 403, 'csrf_rejected');
            assert.deepEqual(r.headers.getSetCookie(), [], 'no cookie set or cleared');
            assertNoRefreshInBody(r);
          }
          // Nothing changed: no new session, none ended, and the refresh token is unspent
          // (past the grace window its first use is a rotation, not a reuse).
          assert.equal(await sessions(), 1);
          assert.equal((await me(first.body.access_token)).status, 200);
          app.clock.advance(11 * SECOND);
          const r = await page.refresh();
          assert.equal(r.status, 200, r.text);
          assert.notEqual(page.cookie, cookie);
        });
      }

      test('refused requests do not count against the token endpoint’s limit', async () => {
        const limited = await startApp({ backend, env: { PUBLIC_URL: PUBLIC, RATE_LIMIT_TOKEN_PER_MINUTE: '2' } });
        try {
          const u = await registerUser(limited.http);
          const page = new Page(limited);
          for (let i = 0; i < 5; i++) {
            assert.equal((await page.signIn(u.username, STRONG_PASSWORD, {}, { origin: 'https://evil.example' })).status, 403);
            assert.equal((await page.refresh({ 'x-requested-with': undefined })).status, 403);
          }
          assert.equal((await page.signIn(u.username)).status, 200);
          // The limits are the token endpoint's own: a live session's refreshes, RATE_LIMIT_TOKEN_PER_MINUTE a minute.
          assert.equal((await page.refresh()).status, 200);
          assert.equal((await page.refresh()).status, 200);
          const third = await page.refresh();
          assertProblem(third, 429, 'rate_limited');
          assert.deepEqual(third.headers.getSetCookie(), [], 'a 429 keeps the cookie');
          // And the address's, which those refreshes did not spend: one more sign-in, then 429.
          assert.equal((await new Page(limited).signIn(u.username)).status, 200);
          assertProblem(await new Page(limited).signIn(u.username), 429, 'rate_limited');
          // Signing out of a live session still works; a dead cookie is refused by the spent budget.
          const cookie = page.cookie!;
          assert.equal((await page.logout()).status, 204);
          assertProblem(await page.logoutWith(cookie), 429, 'rate_limited');
        } finally {
          await limited.close();
        }
      });

      test('an origin listed only in CORS_ORIGINS works; one allowed only by `*` does not', async () => {
        const u = await user();
        const other = new Page(app, OTHER);
        const r = await other.signIn(u.username);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers.get('access-control-allow-origin'), OTHER);
        assert.equal(r.headers.get('access-control-allow-credentials'), 'true');
        app.clock.advance(11 * SECOND);
        assert.equal((await other.refresh()).status, 200);
        const starred = new Page(app, 'https://anyone.example');
        starred.cookie = other.cookie;
        const refused = await starred.refresh();
        assertProblem(refused, 403, 'csrf_rejected');
        assert.equal(refused.headers.get('access-control-allow-origin'), '*');
        assert.equal(refused.headers.get('access-control-allow-credentials'), null);
      });

      test('CORS preflights: credentials and X-Requested-With for listed origins only, never with `*`', async () => {
        const preflight = (origin: string, path = '/auth/browser/refresh') =>
          app.http.request('OPTIONS', path, {
            headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-requested-with' },
          });
        const ok = await preflight(OTHER);
        assert.equal(ok.status, 204);
        assert.equal(ok.headers.get('access-control-allow-origin'), OTHER);
        assert.equal(ok.headers.get('access-control-allow-credentials'), 'true');
        assert.match(ok.headers.get('access-control-allow-headers') ?? '', /x-requested-with/i);
        assert.match(ok.headers.get('access-control-allow-methods') ?? '', /POST/);
        assert.match(ok.headers.get('vary') ?? '', /origin/i);
        const star = await preflight('https://anyone.example');
        assert.equal(star.headers.get('access-control-allow-origin'), '*');
        assert.equal(star.headers.get('access-control-allow-credentials'), null);
        assert.match(star.headers.get('vary') ?? '', /origin/i);
        // The Bearer API keeps its CORS for listed origins.
        const api = await preflight(OTHER, '/users/me');
        assert.equal(api.headers.get('access-control-allow-origin'), OTHER);
      });

      test('without `*` in CORS_ORIGINS, an unlisted origin gets no CORS grant at all', async () => {
        const strict = await startApp({ backend, env: { PUBLIC_URL: PUBLIC, CORS_ORIGINS: OTHER } });
        try {
          const r = await strict.http.request('OPTIONS', '/auth/browser/token', {
            headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-requested-with' },
          });
          assert.equal(r.headers.get('access-control-allow-origin'), null);
          assert.equal(r.headers.get('access-control-allow-credentials'), null);
        } finally {
          await strict.close();
        }
      });
    });

    test('OpenAPI documents the three routes: the cookie, the CSRF header, 401 and 403', async () => {
      const doc = (await app.http.get('/openapi.json')).body;
      for (const path of ['/auth/browser/token', '/auth/browser/refresh', '/auth/browser/logout']) {
        const op = doc.paths[path]?.post;
        assert.ok(op, path);
        assert.ok(op.responses['403'], `${path} 403`);
        assert.ok(op.parameters.some((p: { in: string; name: string }) => p.in === 'header' && p.name === 'x-requested-with'), `${path} header`);
        if (path !== '/auth/browser/token') {
          assert.ok(op.responses['401'], `${path} 401`);
          assert.ok(op.parameters.some((p: { in: string; name: string }) => p.in === 'cookie' && p.name === 'gh_refresh'), `${path} cookie`);
        }
        assert.equal(JSON.stringify(op.responses['200'] ?? {}).includes('refresh_token'), false);
      }
    });
  });
}
