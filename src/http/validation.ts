// Request validation: Fastify's own Ajv compiler, except that bodies are
// never type-coerced. Ajv's default `coerceTypes: 'array'` would turn a JSON
// `12345678` into the username "12345678", `true` into "true", `["x"]` into
// "x" and `null` into "" — a client sending the wrong type gets a 422, as
// Pydantic gives FastAPI clients. Query strings and path parameters are text
// by nature and keep their coercion (`?limit=10` is the integer 10), with one
// repair: Ajv 8 coerces "Infinity" or "1e999" to a non-finite number that
// then passes `integer` and `maximum` (ajv-validator/ajv#2212, fastify#6718),
// so a coerced part holding one is refused here (422) instead of reaching a
// handler and the database.
//
// Before validation, every string of the body, query and path parameters is
// checked for text PostgreSQL cannot store as sent: NUL (which it refuses,
// and which bcrypt would cut a password at) and UTF-16 surrogates without
// their pair (which the driver would silently turn into U+FFFD).
import { AjvCompiler } from '@fastify/ajv-compiler';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import { AuthError, validationFailed } from '../auth/errors.js';

type BuildValidator = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>['buildValidator'];
type CompileRoute = (route: { schema: unknown; method: string; url: string; httpPart?: string }) => unknown;

const pool = AjvCompiler();

export const buildValidator = ((externalSchemas: Record<string, unknown>, options: { customOptions?: Record<string, unknown> }) => {
  const coercing = pool(externalSchemas as never, options as never) as unknown as CompileRoute;
  const strict = pool(externalSchemas as never, {
    ...options,
    customOptions: { ...options?.customOptions, coerceTypes: false },
  } as never) as unknown as CompileRoute;
  return (route: Parameters<CompileRoute>[0]) => (route.httpPart === 'body' ? strict(route) : finiteOnly(coercing(route) as AjvValidate));
}) as unknown as BuildValidator;

interface AjvValidate {
  (data: unknown, ctx?: unknown): boolean | Promise<unknown>;
  errors?: unknown[] | null;
  schemaEnv?: unknown;
}

/** Where a coerced query, params or headers object holds a non-finite number (its members are scalars or arrays of them). */
function nonFinite(data: unknown): string[] {
  if (data === null || typeof data !== 'object') return [];
  const bad = (x: unknown) => typeof x === 'number' && !Number.isFinite(x);
  const out: string[] = [];
  for (const [k, v] of Object.entries(data)) {
    if (bad(v)) out.push(`/${k}`);
    else if (Array.isArray(v)) v.forEach((x, i) => bad(x) && out.push(`/${k}/${i}`));
  }
  return out;
}

function finiteOnly(validate: AjvValidate): AjvValidate {
  const wrapped: AjvValidate = (data, ctx) => {
    const ok = validate(data, ctx);
    wrapped.errors = validate.errors;
    if (ok !== true) return ok;
    const paths = nonFinite(data);
    if (paths.length === 0) return true;
    wrapped.errors = paths.map((instancePath) => ({ instancePath, keyword: 'type', params: {}, message: 'must be a finite number' }));
    return false;
  };
  // Fastify hands Ajv validators the parent object (so coercion can replace the root) only when this is set.
  wrapped.schemaEnv = validate.schemaEnv;
  return wrapped;
}

// eslint-disable-next-line no-control-regex
const BAD_TEXT = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function badText(value: unknown, path: string, out: string[], depth: number): void {
  if (out.length >= 20 || depth > 32) return;
  if (typeof value === 'string') {
    if (BAD_TEXT.test(value)) out.push(path || '/');
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => badText(v, `${path}/${i}`, out, depth + 1));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) badText(v, `${path}/${k}`, out, depth + 1);
  }
}

/** Registers the checks every request gets before its schema validation. */
export function registerRequestChecks(app: FastifyInstance): void {
  // Bodies are JSON or forms: text/plain (parsed by Fastify by default) is a 415 like any other type.
  app.removeContentTypeParser('text/plain');
  app.addHook('preValidation', async (request) => {
    const paths: string[] = [];
    for (const part of [request.body, request.query, request.params]) badText(part, '', paths, 0);
    if (paths.length === 0) return;
    if (request.routeOptions.config?.oauth) {
      throw new AuthError('invalid_request', `The parameter "${paths[0]!.slice(1).split('/')[0]}" holds characters that are not allowed`);
    }
    throw validationFailed(paths.map((path) => ({ path, message: 'must not contain NUL or unpaired surrogate characters' })));
  });
}
