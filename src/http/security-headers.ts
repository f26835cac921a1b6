// Security headers on every response (@fastify/helmet): an API that nothing
// may frame, sniff or load resources for; HSTS when config.hsts. Swagger UI
// under the docs prefix gets a policy that lets it load its own scripts,
// styles and icons, and still may not be framed; the web pages get
// PAGES_CSP (src/pages/plugin.ts).
import helmet from '@fastify/helmet';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

export interface SecurityHeadersOptions {
  hsts: boolean;
  /** Routes under this prefix (Swagger UI) get the docs policy; register this plugin before them. */
  docsPrefix: string;
}

const DOCS_CSP = {
  useDefaults: false,
  directives: {
    defaultSrc: ["'self'"],
    baseUri: ["'self'"],
    connectSrc: ["'self'"],
    fontSrc: ["'self'", 'data:'],
    formAction: ["'self'"],
    frameAncestors: ["'none'"],
    imgSrc: ["'self'", 'data:'],
    objectSrc: ["'none'"],
    scriptSrc: ["'self'"],
    scriptSrcAttr: ["'none'"],
    // Swagger UI (React) sets style attributes.
    styleSrc: ["'self'", "'unsafe-inline'"],
  },
};

// The web pages (src/pages): script, style and requests from this origin only,
// nothing inline (no 'unsafe-inline', no style attributes either), no framing,
// no <base> (so no relative URL can be redirected), forms post only here.
export const PAGES_CSP = {
  useDefaults: false,
  directives: {
    defaultSrc: ["'none'"],
    scriptSrc: ["'self'"],
    scriptSrcAttr: ["'none'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'"],
    connectSrc: ["'self'"],
    manifestSrc: ["'self'"],
    baseUri: ["'none'"],
    formAction: ["'self'"],
    frameAncestors: ["'none'"],
    objectSrc: ["'none'"],
  },
};

const HSTS = { maxAge: 31_536_000, includeSubDomains: true };

async function securityHeaders(app: FastifyInstance, opts: SecurityHeadersOptions) {
  app.addHook('onRoute', (route) => {
    // Read by helmet's own onRoute hook, which runs after this one.
    if (route.url.startsWith(opts.docsPrefix)) route.helmet = { contentSecurityPolicy: DOCS_CSP };
  });
  await app.register(helmet, {
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    strictTransportSecurity: opts.hsts ? HSTS : false,
  });
  // Without HSTS configured, still when a trusted proxy says the client came over https
  // (request.protocol reads X-Forwarded-Proto only from proxies TRUST_PROXY names).
  if (!opts.hsts) {
    app.addHook('onSend', async (request, reply) => {
      if (request.protocol === 'https') reply.header('strict-transport-security', `max-age=${HSTS.maxAge}; includeSubDomains`);
    });
  }
}

export const securityHeadersPlugin = fp(securityHeaders, { name: 'gatehouse-security-headers', fastify: '5.x' });
