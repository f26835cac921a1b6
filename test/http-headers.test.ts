// HTTPS-ready settings: security headers, HSTS, CORS, and whose IP counts
// behind a proxy (TRUST_PROXY).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { registerAndLogin, startApp, type TestApp } from './helpers.js';

describe('security headers and CORS', () => {
  let plain: TestApp;
  let hardened: TestApp;
  before(async () => {
    plain = await startApp();
    hardened = await startApp({ env: { HSTS: 'true', CORS_ORIGINS: 'https://app.example.com' } });
  });
  after(async () => {
    await plain?.close();
    await hardened?.close();
  });

  test('every API response carries nosniff, no-referrer, DENY framing and a locked-down CSP', async () => {
    for (const path of ['/health', '/users/me', '/nope']) {
      const r = await plain.http.get(path);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
      assert.equal(r.headers.get('referrer-policy'), 'no-referrer', path);
      assert.equal(r.headers.get('x-frame-options'), 'DENY', path);
      assert.match(r.headers.get('content-security-policy') ?? '', /default-src 'none'/, path);
    }
    assert.equal((await plain.http.get('/health')).headers.get('strict-transport-security'), null, 'no HSTS unless asked');
  });

  test('/docs cannot be framed either, and its policy lets Swagger UI load only its own assets', async () => {
    for (const path of ['/docs', '/docs/', '/docs/static/swagger-ui-bundle.js', '/docs/json']) {
      const r = await fetch(`${plain.url}${path}`);
      assert.equal(r.status, 200, path);
      assert.equal(r.headers.get('x-frame-options'), 'DENY', path);
      const csp = r.headers.get('content-security-policy') ?? '';
      assert.match(csp, /frame-ancestors 'none'/, path);
      assert.match(csp, /script-src 'self'(;|$)/, `${path}: scripts from the service itself, nothing inline: ${csp}`);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
    }
  });

  test('HSTS=true sends Strict-Transport-Security', async () => {
    const r = await hardened.http.get('/health');
    assert.match(r.headers.get('strict-transport-security') ?? '', /max-age=\d+/);
  });

  test('CORS answers the configured origin only', async () => {
    const pre = (origin: string) =>
      fetch(`${hardened.url}/users/me`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
      });
    const ok = await pre('https://app.example.com');
    assert.equal(ok.headers.get('access-control-allow-origin'), 'https://app.example.com');
    assert.match(ok.headers.get('access-control-allow-headers') ?? '', /authorization/i);
    const evil = await pre('https://evil.example.com');
    assert.equal(evil.headers.get('access-control-allow-origin'), null);
    // Without CORS_ORIGINS no cross-origin grant is ever made.
    const none = await fetch(`${plain.url}/health`, { headers: { origin: 'https://app.example.com' } });
    assert.equal(none.headers.get('access-control-allow-origin'), null);
  });
});

describe('TRUST_PROXY', () => {
  test('X-Forwarded-For is ignored unless the proxy is trusted', async () => {
    const untrusted = await startApp();
    const trusted = await startApp({ env: { TRUST_PROXY: '127.0.0.1' } });
    try {
      for (const [app, expected] of [
        [untrusted, '127.0.0.1'],
        [trusted, '203.0.113.7'],
      ] as const) {
        const u = await registerAndLogin(app.http);
        const r = await app.http.token(
          { grant_type: 'refresh_token', refresh_token: u.refresh },
          { 'x-forwarded-for': '203.0.113.7' },
        );
        assert.equal(r.status, 200);
        const sessions = await app.http.get('/users/me/sessions', r.body.access_token);
        assert.equal(sessions.body[0].ip, expected);
      }
    } finally {
      await untrusted.close();
      await trusted.close();
    }
  });

  test('a spoofed X-Forwarded-For cannot dodge the per-IP rate limit when the proxy is not trusted', async () => {
    const app = await startApp({ env: { RATE_LIMIT_TOKEN_PER_MINUTE: '3' } });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await app.http.token({ grant_type: 'password', username: 'nobody', password: 'x' }, { 'x-forwarded-for': `198.51.100.${i}` });
        statuses.push(r.status);
      }
      assert.deepEqual(statuses.slice(3), [429, 429]);
    } finally {
      await app.close();
    }
  });
});
