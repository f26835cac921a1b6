// What clients and resource servers discover: RFC 8414 authorization server
// metadata and the JWK set (RFC 7517). Every URL is absolute, built from
// publicUrl (never from a request's Host). Mounted at the root: /.well-known
// is not under the plugin's prefix (nor, by RFC 8414, under the issuer's path).
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AuthCore } from './core.js';
import { GRANT_TYPES } from './grant-dispatch.js';
import { Jwks } from './schemas.js';

const Metadata = Type.Object(
  {
    issuer: Type.String(),
    token_endpoint: Type.String(),
    revocation_endpoint: Type.String(),
    jwks_uri: Type.String(),
    grant_types_supported: Type.Array(Type.String()),
    scopes_supported: Type.Array(Type.String()),
    response_types_supported: Type.Array(Type.String()),
    token_endpoint_auth_methods_supported: Type.Array(Type.String()),
    revocation_endpoint_auth_methods_supported: Type.Array(Type.String()),
  },
  { description: 'RFC 8414 authorization server metadata' },
);

/** The longest a client may cache the metadata (it changes only with the configuration). */
const METADATA_MAX_AGE = 3600;
/** The longest a resource server may cache the JWK set, publish delay permitting. */
const JWKS_MAX_AGE = 300;

export function authorizationServerMetadata(core: Pick<AuthCore, 'options' | 'scopes'>) {
  const { publicUrl, prefix, issuer } = core.options;
  return {
    issuer,
    token_endpoint: `${publicUrl}${prefix}/token`,
    revocation_endpoint: `${publicUrl}${prefix}/revoke`,
    jwks_uri: `${publicUrl}/.well-known/jwks.json`,
    // Every grant the token endpoint dispatches (one list: grant-dispatch.ts).
    grant_types_supported: Object.keys(GRANT_TYPES),
    scopes_supported: Object.keys(core.scopes.descriptions),
    // No authorization endpoint: nothing is obtained through a browser redirect.
    response_types_supported: [],
    // Public first-party clients: no client authentication.
    token_endpoint_auth_methods_supported: ['none'],
    revocation_endpoint_auth_methods_supported: ['none'],
  };
}

const METADATA_PATH = '/.well-known/oauth-authorization-server';

/**
 * Where the metadata is served. RFC 8414 §3.1: for an issuer with a path
 * (PUBLIC_URL https://example.com/gatehouse), clients ask for
 * /.well-known/oauth-authorization-server/gatehouse at the host's root, so
 * that path is served too (a proxy mounting the service under /gatehouse
 * routes it here); the plain path stays for clients that append instead.
 */
export function metadataPaths(issuer: string): string[] {
  let path: string;
  try {
    path = new URL(issuer).pathname.replace(/\/+$/, '');
  } catch {
    return [METADATA_PATH]; // an issuer that is no URL (JWT_ISSUER=gatehouse): nothing to insert
  }
  // Plain segments only: a ':' or '*' would be a route pattern, not a path.
  return path && /^(\/[\w.~%-]+)+$/.test(path) ? [METADATA_PATH, METADATA_PATH + path] : [METADATA_PATH];
}

export const wellKnownRoutes: FastifyPluginAsyncTypebox<{ core: AuthCore }> = async (app, { core }) => {
  const metadata = authorizationServerMetadata(core);
  for (const [i, url] of metadataPaths(core.options.issuer).entries()) {
    app.get(
      url,
      {
        schema: {
          tags: ['auth'],
          summary: 'Authorization server metadata (RFC 8414), for client libraries to configure themselves',
          response: { 200: Metadata },
          hide: i > 0, // the same document at the path-inserted address: documented once
        },
      },
      async (_request, reply) => {
        reply.header('cache-control', `public, max-age=${METADATA_MAX_AGE}`);
        return metadata;
      },
    );
  }

  // A new key is published KEY_PUBLISH_DELAY_SECONDS before it signs: a cached copy never lasts longer.
  const jwksMaxAge = Math.min(JWKS_MAX_AGE, core.options.keyPublishDelaySeconds);
  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        tags: ['auth'],
        summary: 'The public keys that verify access tokens (RFC 7517): the one signing, the next and the retired ones',
        response: { 200: Jwks },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', `public, max-age=${jwksMaxAge}`);
      return { keys: core.keys.jwks(core.clock.now()) };
    },
  );
};
