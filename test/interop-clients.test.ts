// Real OAuth client libraries against the running service, configured only
// from what it publishes: openid-client (v6) discovers it (RFC 8414), then
// logs in with the password grant, refreshes and revokes; simple-oauth2
// does the same with its ResourceOwnerPassword client.
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import * as oidc from 'openid-client';
import { ResourceOwnerPassword } from 'simple-oauth2';
import { metadataPaths } from '../src/auth/discovery.js';
import { backends, registerUser, startApp, STRONG_PASSWORD, type TestApp } from './helpers.js';
import { freePort } from './process-helpers.js';
import { startPublicApp } from './public-app.js';

for (const backend of backends()) {
  describe(`OAuth client libraries (${backend})`, () => {
    let app: TestApp;
    before(async () => {
      app = await startPublicApp({ backend });
    });
    after(async () => app?.close());

    test('RFC 8414 metadata: the issuer is PUBLIC_URL, every URL absolute from it (never from Host)', async () => {
      const base = app.config.publicUrl;
      assert.equal(app.config.jwtIssuer, base, 'the default issuer is PUBLIC_URL');
      const r = await app.app.inject({ url: '/.well-known/oauth-authorization-server', headers: { host: 'evil.example', 'x-forwarded-host': 'evil.example' } });
      assert.equal(r.statusCode, 200);
      assert.match(String(r.headers['cache-control']), /^public, max-age=\d+$/);
      assert.deepEqual(r.json(), {
        issuer: base,
        token_endpoint: `${base}/auth/token`,
        revocation_endpoint: `${base}/auth/revoke`,
        jwks_uri: `${base}/.well-known/jwks.json`,
        grant_types_supported: [
          'password',
          'refresh_token',
          'urn:gatehouse:params:oauth:grant-type:webauthn',
          'urn:gatehouse:params:oauth:grant-type:mfa-otp',
          'urn:gatehouse:params:oauth:grant-type:mfa-recovery-code',
          'urn:gatehouse:params:oauth:grant-type:mfa-webauthn',
        ],
        scopes_supported: ['me', 'posts:write', 'admin'],
        response_types_supported: [],
        token_endpoint_auth_methods_supported: ['none'],
        revocation_endpoint_auth_methods_supported: ['none'],
      });
      // The JWKS max-age is no longer than the publish delay of a new key.
      const jwks = await app.http.get('/.well-known/jwks.json');
      const maxAge = Number(/max-age=(\d+)/.exec(jwks.headers.get('cache-control') ?? '')?.[1]);
      assert.ok(maxAge <= app.config.keyPublishDelaySeconds, `max-age ${maxAge}`);
    });

    test('openid-client: discovery(), password grant, refresh, revocation', async () => {
      const u = await registerUser(app.http);
      // Plain http on loopback is refused unless asked for (allowInsecureRequests); nothing else is needed.
      await assert.rejects(oidc.discovery(new URL(app.config.jwtIssuer), 'gatehouse', undefined, oidc.None(), { algorithm: 'oauth2' }));
      const config = await oidc.discovery(new URL(app.config.jwtIssuer), 'gatehouse', undefined, oidc.None(), {
        algorithm: 'oauth2',
        execute: [oidc.allowInsecureRequests],
      });
      const meta = config.serverMetadata();
      assert.equal(meta.issuer, app.config.jwtIssuer);
      assert.equal(meta.token_endpoint, `${app.config.publicUrl}/auth/token`);

      const first = await oidc.genericGrantRequest(config, 'password', { username: u.username, password: STRONG_PASSWORD, scope: 'me' });
      assert.equal(first.token_type, 'bearer');
      assert.equal(first.scope, 'me');
      assert.equal((await app.http.get('/users/me', first.access_token)).body.id, u.id);

      const second = await oidc.refreshTokenGrant(config, first.refresh_token!);
      assert.notEqual(second.refresh_token, first.refresh_token);
      assert.equal((await app.http.get('/users/me', second.access_token)).status, 200);

      // Revoking the access token ends that token; revoking the refresh token ends the session.
      await oidc.tokenRevocation(config, second.access_token);
      assert.equal((await app.http.get('/users/me', second.access_token)).status, 401);
      await oidc.tokenRevocation(config, second.refresh_token!);
      await assert.rejects(oidc.refreshTokenGrant(config, second.refresh_token!), (err: Error & { error?: string }) => err.error === 'invalid_grant');
    });

    test('simple-oauth2: password grant, refresh, revoke (access and refresh tokens)', async () => {
      const u = await registerUser(app.http);
      const client = new ResourceOwnerPassword({
        client: { id: 'gatehouse', secret: '' },
        auth: { tokenHost: app.config.publicUrl, tokenPath: '/auth/token', revokePath: '/auth/revoke' },
        options: { authorizationMethod: 'body' },
      });
      const token = await client.getToken({ username: u.username, password: STRONG_PASSWORD, scope: 'me posts:write' });
      const access = token.token.access_token as string;
      assert.equal((await app.http.get('/users/me', access)).body.id, u.id);

      const refreshed = await token.refresh();
      const access2 = refreshed.token.access_token as string;
      assert.notEqual(refreshed.token.refresh_token, token.token.refresh_token);
      assert.equal((await app.http.get('/users/me', access2)).status, 200);

      await refreshed.revoke('access_token');
      assert.equal((await app.http.get('/users/me', access2)).status, 401);
      await refreshed.revoke('refresh_token');
      await assert.rejects(refreshed.refresh(), /Bad Request|400/);
    });
  });
}

/**
 * A reverse proxy mounting the service under /gatehouse, as a team sharing
 * a host would: /gatehouse/* goes to the service's /*, and so does RFC 8414's
 * path-inserted metadata address at the host's root; anything else is 404.
 */
async function mountUnderPath(target: string, port: number): Promise<Server> {
  const metadata = '/.well-known/oauth-authorization-server/gatehouse';
  const proxy = createServer((req, res) => {
    const url = req.url ?? '/';
    const path = url === metadata ? url : url.startsWith('/gatehouse/') ? url.slice('/gatehouse'.length) : undefined;
    if (!path) return void res.writeHead(404).end();
    const upstream = httpRequest(new URL(path, target), { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve));
  return proxy;
}

describe('PUBLIC_URL with a path, behind a reverse proxy', () => {
  test('the metadata is also served where RFC 8414 puts it for an issuer with a path; only plain paths', () => {
    const at = '/.well-known/oauth-authorization-server';
    assert.deepEqual(metadataPaths('https://example.com'), [at]);
    assert.deepEqual(metadataPaths('https://example.com/'), [at]);
    assert.deepEqual(metadataPaths('https://example.com/auth/v1/'), [at, `${at}/auth/v1`]);
    assert.deepEqual(metadataPaths('gatehouse'), [at], 'JWT_ISSUER=gatehouse: no URL, nothing to insert');
    assert.deepEqual(metadataPaths('https://example.com/a:b/*'), [at], 'no route pattern from a path');
  });

  test('openid-client discovers it at the path-inserted address, then signs in and refreshes through the proxy', async () => {
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}/gatehouse`;
    const app = await startApp({ env: { PUBLIC_URL: publicUrl } });
    const proxy = await mountUnderPath(app.url, port);
    try {
      assert.equal(app.config.jwtIssuer, publicUrl);
      const u = await registerUser(app.http);
      const config = await oidc.discovery(new URL(publicUrl), 'gatehouse', undefined, oidc.None(), {
        algorithm: 'oauth2',
        execute: [oidc.allowInsecureRequests],
      });
      const meta = config.serverMetadata();
      assert.equal(meta.issuer, publicUrl);
      assert.equal(meta.token_endpoint, `${publicUrl}/auth/token`);
      assert.equal(meta.jwks_uri, `${publicUrl}/.well-known/jwks.json`);
      const first = await oidc.genericGrantRequest(config, 'password', { username: u.username, password: STRONG_PASSWORD, scope: 'me' });
      const second = await oidc.refreshTokenGrant(config, first.refresh_token!);
      const me = await fetch(`${publicUrl}/users/me`, { headers: { authorization: `Bearer ${second.access_token}` } });
      assert.equal(me.status, 200);
      assert.equal(((await me.json()) as { id: string }).id, u.id);
      // Only the address the issuer's path gives: another path is not this issuer's metadata.
      assert.equal((await app.http.get('/.well-known/oauth-authorization-server/elsewhere')).status, 404);
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
      await app.close();
    }
  });
});
