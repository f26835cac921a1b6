// How the service serves the web pages (over HTTP, no browser): GET / and
// every page path answer index.html with the pages' strict CSP and no-cache;
// assets are content-hashed, cached for a year, pre-compressed; unknown paths
// and missing assets stay 404 problems; /docs keeps Swagger UI.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { webOut } from '../scripts/build-web.mjs';
import { ensurePagesBuilt } from './web-browser.js';
import { startApp, type TestApp } from './helpers.js';

describe('the web pages, served', () => {
  let app: TestApp;
  let pages: string[];
  before(async () => {
    await ensurePagesBuilt();
    pages = JSON.parse(readFileSync(join(webOut, 'pages.json'), 'utf8')) as string[];
    app = await startApp();
  });
  after(async () => app?.close());

  const concrete = (p: string) => p.replace(/:[^/]+/g, '0b8a3c52-7a43-4a7e-9a1c-1f0e7c2d9b11');

  test('GET / and every page path: index.html, no-cache, a CSP with no inline script or style, no framing, no referrer', async () => {
    assert.ok(pages.includes('/') && pages.includes('/account') && pages.includes('/signin'), JSON.stringify(pages));
    for (const path of pages.map(concrete)) {
      const r = await fetch(`${app.url}${path}`);
      assert.equal(r.status, 200, path);
      assert.match(r.headers.get('content-type') ?? '', /^text\/html/, path);
      assert.equal(r.headers.get('cache-control'), 'no-cache', path);
      const csp = Object.fromEntries(
        (r.headers.get('content-security-policy') ?? '').split(';').map((d) => {
          const [name, ...values] = d.trim().split(/\s+/);
          return [name, values.join(' ')];
        }),
      );
      assert.equal(csp['default-src'], "'none'", path);
      assert.equal(csp['script-src'], "'self'", path);
      assert.equal(csp['style-src'], "'self'", path);
      assert.equal(csp['connect-src'], "'self'", path);
      assert.equal(csp['frame-ancestors'], "'none'", path);
      assert.equal(csp['base-uri'], "'none'", path);
      assert.equal(csp['form-action'], "'self'", path);
      assert.equal(r.headers.get('x-frame-options'), 'DENY', path);
      assert.equal(r.headers.get('referrer-policy'), 'no-referrer', path);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
      const html = await r.text();
      assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, 'no inline script');
      assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i, 'no inline style or handler');
      assert.doesNotMatch(html, /https?:\/\//, 'nothing from another origin (no CDN)');
    }
    // A revalidation costs nothing.
    const first = await fetch(`${app.url}/`);
    const again = await fetch(`${app.url}/`, { headers: { 'if-none-match': first.headers.get('etag')! } });
    assert.equal(again.status, 304);
    assert.equal((await fetch(`${app.url}/`, { method: 'HEAD' })).status, 200);
  });

  test('assets: hashed names, a year of immutable cache, the right types, gzip and brotli copies', async () => {
    const html = await (await fetch(`${app.url}/`)).text();
    const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    assert.equal(assets.length, 2, html);
    for (const asset of assets) {
      assert.match(asset, /^\/assets\/app-[A-Z0-9]{8}\.(js|css)$/);
      const r = await fetch(`${app.url}${asset}`, { headers: { 'accept-encoding': 'identity' } });
      assert.equal(r.status, 200, asset);
      assert.equal(r.headers.get('cache-control'), 'public, max-age=31536000, immutable');
      assert.match(r.headers.get('content-type') ?? '', asset.endsWith('.js') ? /javascript/ : /text\/css/);
      const raw = Buffer.from(await r.arrayBuffer());
      const gz = await fetch(`${app.url}${asset}`, { headers: { 'accept-encoding': 'gzip' }, decompress: false } as RequestInit);
      // fetch (undici) decodes gzip itself; either way the content is the same file.
      const body = Buffer.from(await gz.arrayBuffer());
      assert.ok(body.equals(raw) || gunzipSync(body).equals(raw), asset);
      assert.equal(gz.headers.get('content-encoding'), 'gzip', asset);
    }
  });

  test('unknown paths, missing assets and API routes keep their answers', async () => {
    for (const path of ['/nope', '/assets/app-DOESNOTX.js', '/assets/../package.json', '/blog', '/blog/x/y', '/account/']) {
      const r = await fetch(`${app.url}${path}`);
      assert.equal(r.status, 404, path);
      assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/, path);
      assert.match(r.headers.get('content-security-policy') ?? '', /default-src 'none'/, path);
    }
    const posts = await fetch(`${app.url}/posts`);
    assert.match(posts.headers.get('content-type') ?? '', /^application\/json/);
    const docs = await fetch(`${app.url}/docs`);
    assert.equal(docs.status, 200);
    assert.match(await docs.text(), /swagger-ui/i);
    // A page path takes no other method.
    const post = await fetch(`${app.url}/account`, { method: 'POST' });
    assert.equal(post.status, 405);
  });
});
