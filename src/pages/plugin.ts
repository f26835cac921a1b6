// The web pages (web/, built into dist/web by scripts/build-web.mjs), served by
// the service beside the API: index.html for every page path the build lists
// in pages.json (the router in the page picks the page; any other unknown path
// stays a 404 problem), no-cache so a deploy is seen at the next load; the
// content-hashed assets under /assets/ cached for a year. Pages get a strict
// Content-Security-Policy: scripts and styles from this origin only, nothing
// inline, requests to this origin only, no framing, no <base>, forms here.
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PAGES_CSP } from '../http/security-headers.js';

/** dist/web of this checkout: src/pages/ (tsx) and dist/pages/ (built) are both two levels down. */
export const DEFAULT_WEB_DIR = fileURLToPath(new URL('../../dist/web', import.meta.url));

export interface PagesOptions {
  dir?: string;
}

/** True when the pages are built (dist/web/index.html exists). */
export function pagesBuilt(dir = DEFAULT_WEB_DIR): boolean {
  return existsSync(join(dir, 'index.html')) && existsSync(join(dir, 'pages.json'));
}

export async function webPages(app: FastifyInstance, opts: PagesOptions = {}): Promise<void> {
  const dir = opts.dir ?? DEFAULT_WEB_DIR;
  const html = readFileSync(join(dir, 'index.html'));
  const paths = JSON.parse(readFileSync(join(dir, 'pages.json'), 'utf8')) as string[];
  const etag = `"${createHash('sha256').update(html).digest('base64url').slice(0, 22)}"`;

  await app.register(fastifyStatic, {
    root: join(dir, 'assets'),
    prefix: '/assets/',
    decorateReply: false,
    index: false,
    // Names carry a hash of their content: a changed file has a new name.
    immutable: true,
    maxAge: 365 * 24 * 3600 * 1000,
    preCompressed: true,
    etag: false,
    lastModified: false,
    schemaHide: true,
  });

  for (const url of paths) {
    app.get(url, { schema: { hide: true }, helmet: { contentSecurityPolicy: PAGES_CSP } }, async (request, reply) => {
      reply.header('cache-control', 'no-cache').header('etag', etag).type('text/html; charset=utf-8');
      if (request.headers['if-none-match'] === etag) return reply.code(304).send();
      return reply.send(html);
    });
  }
}
