// The renderers: one per wire format, each turning an AuthError into a
// response. problem+json (RFC 9457) everywhere; RFC 6749 §5.2 JSON for the
// OAuth endpoints' errors that RFC 6749 names; the RFC 6750 challenge
// header on 401 and 403 from the guard. `toAuthError` is the one mapping of
// everything else (Fastify's validation and parser errors, database
// failures) to codes, so no internal detail (stack, SQL, driver message)
// ever reaches a response.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { AuthError, ERROR_CODES, validationFailed, type ErrorCode, type FieldError } from '../auth/errors.js';
import { LogThrottle, repeated } from '../auth/log-throttle.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Errors on this route are RFC 6749 §5.2 JSON where RFC 6749 has a name for them. */
    oauth?: boolean;
  }
}

export function problemBody(status: number, detail: string, code: ErrorCode, errors?: FieldError[]) {
  return {
    type: 'about:blank',
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    code,
    ...(errors ? { errors } : {}),
  };
}

/** The RFC 6750 `WWW-Authenticate` value for an error, if it has one. */
export function challenge(err: AuthError, realm: string): string | undefined {
  const kind = ERROR_CODES[err.code] as { challenge?: string | null };
  if (kind.challenge === undefined) return undefined;
  if (kind.challenge === null) return `Bearer realm="${realm}"`;
  if (kind.challenge === 'insufficient_scope') {
    return `Bearer realm="${realm}", error="insufficient_scope", scope="${(err.extra.scope ?? []).join(' ')}"`;
  }
  return `Bearer realm="${realm}", error="${kind.challenge}", error_description="${err.detail}"`;
}

export function sendProblem(reply: FastifyReply, err: AuthError, realm: string) {
  if (err.extra.headers) reply.headers(err.extra.headers);
  const www = challenge(err, realm);
  if (www) reply.header('www-authenticate', www);
  return reply.code(err.status).type('application/problem+json').send(problemBody(err.status, err.detail, err.code, err.extra.errors));
}

export function sendOAuth(reply: FastifyReply, err: AuthError) {
  const oauth = (ERROR_CODES[err.code] as { oauth?: string }).oauth!;
  if (err.extra.headers) reply.headers(err.extra.headers);
  noStore(reply);
  return reply.code(400).type('application/json').send({ error: oauth, error_description: err.detail });
}

/** For every answer that carries a token or personal data (API.md, "Errors"). */
export function noStore(reply: FastifyReply): void {
  reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
}

/** Renders an error in the format of the route it happened on. */
export function sendError(request: FastifyRequest, reply: FastifyReply, err: AuthError, realm: string) {
  const oauth = request.routeOptions.config?.oauth === true && 'oauth' in ERROR_CODES[err.code];
  return oauth ? sendOAuth(reply, err) : sendProblem(reply, err, realm);
}

const CLIENT_ERRORS: Record<string, [ErrorCode, string]> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ['unsupported_media_type', 'Unsupported Content-Type: send application/json'],
  FST_ERR_CTP_BODY_TOO_LARGE: ['payload_too_large', 'The request body is too large'],
  FST_ERR_CTP_EMPTY_JSON_BODY: ['bad_request', 'The request body is empty but Content-Type is application/json'],
  FST_ERR_CTP_INVALID_JSON_BODY: ['bad_request', 'The request body is not valid JSON'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ['bad_request', 'Content-Length does not match the body'],
  FST_ERR_CTP_INVALID_TYPE: ['bad_request', 'The Content-Type header is not valid'],
  FST_ERR_BAD_URL: ['bad_request', 'The URL is not valid'],
  FST_ERR_ASYNC_CONSTRAINT: ['bad_request', 'The request is not valid'],
  FST_ERR_MAX_PARAM_LENGTH: ['uri_too_long', 'A path segment is too long'],
};

// Connection-level failures of PostgreSQL: the service is unavailable, not broken.
// (3D000: the database was dropped; 53300: too many connections.)
const DB_DOWN_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P02', '57P03', '08000', '08003', '08006', '08001', '08004', '3D000', '53300']);

export function isUnavailable(err: { code?: string; message?: string }): boolean {
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

/** The thread pools' refusals (thread-pool.ts), by error name: a 503 to retry in a second, never a fault. */
const BUSY = new Map([
  ['QueueFullError', 'The service is busy; try again shortly'],
  ['PoolClosedError', 'The service is shutting down; try again shortly'],
]);

/**
 * Any error → an AuthError, and whether it is the service's fault (to be
 * logged as an error). `oauth`: the route answers RFC 6749, whose
 * validation errors name the first bad parameter.
 */
export function toAuthError(error: unknown, oauth = false): { err: AuthError; fault?: 'unavailable' | 'bug' | 'data' } {
  if (error instanceof AuthError) return { err: error };
  const e = (error ?? {}) as FastifyError;
  const busy = BUSY.get(e.name);
  if (busy) return { err: new AuthError('busy', busy, { headers: { 'retry-after': '1' } }) };
  if (e.validation) {
    const errors = fieldErrors(e);
    if (oauth) return { err: new AuthError('invalid_request', `Invalid parameter ${errors[0]?.path ?? ''}`.trim()) };
    return { err: validationFailed(errors) };
  }
  const known = e.code ? CLIENT_ERRORS[e.code] : undefined;
  if (known) return { err: new AuthError(known[0], known[1]) };
  // busboy's own parse errors (a truncated or malformed multipart body) carry no status.
  if (typeof e.stack === 'string' && /[\\/]@fastify[\\/]busboy[\\/]/.test(e.stack) && e.statusCode === undefined) {
    return { err: new AuthError('bad_request', 'The multipart body is malformed') };
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return { err: new AuthError('bad_request', 'The request is not valid', { status: e.statusCode }) };
  }
  if (isDataException(e)) {
    const detail = oauth ? 'A parameter holds a value that cannot be stored' : 'The request holds a value that cannot be stored';
    return { err: new AuthError('bad_request', detail), fault: 'data' };
  }
  if (isUnavailable(e)) {
    return { err: new AuthError('store_unavailable', 'The service is temporarily unavailable', { headers: { 'retry-after': '5' } }), fault: 'unavailable' };
  }
  return { err: new AuthError('internal_error', 'An unexpected error occurred'), fault: 'bug' };
}

/**
 * A Fastify error handler rendering every error in the contract's formats.
 * Outage lines (every request fails the same way while PostgreSQL is away)
 * are logged once per message and window, then as a count (`throttle`).
 */
export function errorHandler(realm: string, throttle = new LogThrottle()) {
  const outage = (request: FastifyRequest, level: 'error' | 'warn', msg: string, fields: Record<string, unknown>) =>
    throttle.log(
      `${level} ${msg}`,
      () => request.log[level](fields, msg),
      (count, windowMs) => request.log[level]({ code: fields.code, repeated: count }, repeated(msg, count, windowMs)),
    );
  return function handleError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    const oauth = request.routeOptions.config?.oauth === true;
    const { err, fault } = toAuthError(error, oauth);
    if (fault === 'bug') request.log.error({ err: error, code: err.code }, 'unhandled error');
    else if (fault === 'unavailable') outage(request, 'error', 'database unavailable', { code: err.code, err: { code: error.code, message: error.message } });
    else if (fault === 'data') request.log.warn({ code: err.code, pgCode: error.code }, 'a value in the request was refused by the database');
    else if (err.status >= 500) outage(request, 'warn', err.detail, { code: err.code });
    else request.log.info({ code: err.code, status: err.status }, 'request refused');
    return sendError(request, reply, err, realm);
  };
}

/**
 * Fastify's `frameworkErrors` option: errors met while routing (a path that
 * does not decode, a parameter over maxParamLength), which otherwise get
 * Fastify's own JSON instead of problem details.
 */
export function frameworkErrors(realm: string) {
  return function routingError(error: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
    const known = error.code ? CLIENT_ERRORS[error.code] : undefined;
    const err = known ? new AuthError(known[0], known[1]) : new AuthError('bad_request', 'The request is not valid');
    return sendProblem(reply, err, realm);
  };
}

/**
 * Fastify's `clientErrorHandler` option: errors Node's HTTP parser meets
 * before there is a request (headers over the size limit, a request that
 * does not parse, a timeout), which Fastify otherwise answers with JSON of
 * its own. Written to the socket as problem details, then the connection
 * ends, as Node does.
 */
export function clientErrors() {
  return function clientError(this: FastifyInstance, error: NodeJS.ErrnoException, socket: Duplex) {
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const err =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? new AuthError('headers_too_large', 'The request line and headers are too large')
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? new AuthError('request_timeout', 'The request took too long to arrive')
          : new AuthError('bad_request', 'The request is not valid HTTP');
    this.log.info({ code: err.code, status: err.status }, 'request refused by the HTTP parser');
    if (socket.writable) {
      const body = JSON.stringify(problemBody(err.status, err.detail, err.code));
      socket.write(
        `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status]}\r\nContent-Type: application/problem+json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy(error);
  };
}
