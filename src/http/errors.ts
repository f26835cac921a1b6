// One place that turns every error into the contract's format: RFC 6749
// JSON on the OAuth endpoints, problem+json everywhere else. Nothing
// internal (stack, SQL, driver message) ever reaches a response.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { QueueFullError } from '../auth/thread-pool.js';
import { HttpProblem, OAuthError, problemBody, type FieldError } from './problem.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Errors on this route are RFC 6749 §5.2 JSON. */
    oauth?: boolean;
  }
}

const CLIENT_ERRORS: Record<string, [number, string]> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'Unsupported Content-Type: send application/json'],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'The request body is too large'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'The request body is empty but Content-Type is application/json'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'The request body is not valid JSON'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'Content-Length does not match the body'],
  FST_ERR_CTP_INVALID_TYPE: [400, 'The Content-Type header is not valid'],
  FST_ERR_BAD_URL: [400, 'The URL is not valid'],
  FST_ERR_ASYNC_CONSTRAINT: [400, 'The request is not valid'],
};

// Connection-level failures of PostgreSQL: the service is unavailable, not broken.
// (3D000: the database was dropped; 53300: too many connections.)
const DB_DOWN_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P02', '57P03', '08000', '08003', '08006', '08001', '08004', '3D000', '53300']);

function isUnavailable(err: { code?: string; message?: string }): boolean {
  if (err.code && DB_DOWN_CODES.has(err.code)) return true;
  const m = err.message ?? '';
  // …and a database already closed (pg pool ended, PGlite closed): shutting down, or lost.
  return /Connection terminated|timeout exceeded when trying to connect|connect ECONNREFUSED|Client has encountered a connection error|Cannot use a pool after calling end|PGlite is closed/.test(m);
}

// PostgreSQL class 22 (data exception): a value it cannot take, e.g. NUL in
// text (22021) or a malformed uuid (22P02). The request is at fault; the
// edge checks (validation.ts) should have caught it first.
function isDataException(err: { code?: unknown }): boolean {
  return typeof err.code === 'string' && /^22[0-9A-Z]{3}$/.test(err.code);
}

function fieldErrors(err: FastifyError): FieldError[] {
  return (err.validation ?? []).map((v) => {
    const params = v.params as Record<string, unknown>;
    let path = v.instancePath || '';
    if (v.keyword === 'required' && typeof params.missingProperty === 'string') path += `/${params.missingProperty}`;
    if (v.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') path += `/${params.additionalProperty}`;
    const message = v.keyword === 'required' ? 'is required' : v.keyword === 'additionalProperties' ? 'is not allowed' : (v.message ?? 'is not valid');
    return { path: path || '/', message };
  });
}

function sendProblem(reply: FastifyReply, status: number, detail: string, errors?: FieldError[], headers?: Record<string, string>) {
  if (headers) reply.headers(headers);
  return reply.code(status).type('application/problem+json').send(problemBody(status, detail, errors));
}

function sendOAuth(reply: FastifyReply, status: number, error: string, description: string) {
  return reply
    .code(status)
    .header('cache-control', 'no-store')
    .header('pragma', 'no-cache')
    .type('application/json')
    .send({ error, error_description: description });
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const oauth = request.routeOptions.config?.oauth === true;
    if (error instanceof OAuthError) return sendOAuth(reply, error.status, error.error, error.description);
    if (error instanceof HttpProblem) return sendProblem(reply, error.status, error.detail, error.extra.errors, error.extra.headers);
    if (error instanceof QueueFullError) {
      return sendProblem(reply, 503, 'The service is busy; try again shortly', undefined, { 'retry-after': '1' });
    }
    if (error.validation) {
      const errors = fieldErrors(error);
      if (oauth) return sendOAuth(reply, 400, 'invalid_request', `Invalid parameter ${errors[0]?.path ?? ''}`.trim());
      return sendProblem(reply, 422, 'The request is not valid', errors);
    }
    const known = error.code ? CLIENT_ERRORS[error.code] : undefined;
    const status = known?.[0] ?? (error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : undefined);
    if (status) {
      const detail = known?.[1] ?? 'The request is not valid';
      if (oauth && status !== 413 && status !== 429) return sendOAuth(reply, 400, 'invalid_request', detail);
      return sendProblem(reply, status, detail);
    }
    if (isDataException(error)) {
      request.log.warn({ code: error.code }, 'a value in the request was refused by the database');
      if (oauth) return sendOAuth(reply, 400, 'invalid_request', 'A parameter holds a value that cannot be stored');
      return sendProblem(reply, 400, 'The request holds a value that cannot be stored');
    }
    if (isUnavailable(error)) {
      request.log.error({ err: { code: error.code, message: error.message } }, 'database unavailable');
      return sendProblem(reply, 503, 'The service is temporarily unavailable', undefined, { 'retry-after': '5' });
    }
    request.log.error({ err: error }, 'unhandled error');
    return sendProblem(reply, 500, 'An unexpected error occurred');
  });

  const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    // Fastify answers 404 for a known path with another method; the contract wants 405.
    const allowed = METHODS.filter((m) => m !== request.method && app.findRoute({ method: m, url: path }) !== null);
    if (allowed.length) {
      if (allowed.includes('GET')) allowed.push('HEAD' as never);
      return sendProblem(reply, 405, `Method ${request.method} is not allowed here`, undefined, { allow: allowed.join(', ') });
    }
    return sendProblem(reply, 404, 'Not found');
  });
}

/**
 * Fastify's `frameworkErrors` option: errors met while routing (a path that
 * does not decode, a parameter over maxParamLength), which otherwise get
 * Fastify's own JSON instead of problem details.
 */
export function frameworkErrors(error: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') return sendProblem(reply, 414, 'A path segment is too long');
  const known = error.code ? CLIENT_ERRORS[error.code] : undefined;
  return sendProblem(reply, known?.[0] ?? 400, known?.[1] ?? 'The request is not valid');
}
