// Error responses for the OpenAPI document: every status a route can
// answer, each a problem+json body (inline, so a host app needs no shared
// schema of ours). Routes spread what applies to them.
import { Type } from '@fastify/type-provider-typebox';
import { ProblemBody } from '../auth/schemas.js';

export const problem = (description: string) => ({ ...ProblemBody, description });

/** What the guard answers on a protected route. */
export const guarded = (forbidden = 'The token lacks a needed scope (insufficient_scope)') => ({
  401: problem('Missing, invalid, expired or revoked token (see WWW-Authenticate)'),
  403: problem(forbidden),
});

/** What any route with a body can answer before its handler runs. */
export const bodyErrors = {
  400: problem('The body is malformed'),
  413: problem('The body is too large'),
  415: problem('Unsupported Content-Type'),
  422: problem('A field is not valid (errors names each)'),
};

export const limited = { 429: problem('Too many attempts (see Retry-After)') };
export const unavailable = { 503: problem('The database or a hashing thread is unavailable or busy (see Retry-After)') };

export const empty = (description: string) => Type.Null({ description });
