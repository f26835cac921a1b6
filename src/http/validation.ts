// Request validation: Fastify's own Ajv compiler, except that bodies are
// never type-coerced. Ajv's default `coerceTypes: 'array'` would turn a JSON
// `12345678` into the username "12345678", `true` into "true", `["x"]` into
// "x" and `null` into "" — a client sending the wrong type gets a 422, as
// Pydantic gives FastAPI clients. Query strings and path parameters are text
// by nature and keep their coercion (`?limit=10` is the integer 10).
import { AjvCompiler } from '@fastify/ajv-compiler';
import type { FastifyServerOptions } from 'fastify';

type BuildValidator = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>['buildValidator'];
type CompileRoute = (route: { schema: unknown; method: string; url: string; httpPart?: string }) => unknown;

const pool = AjvCompiler();

export const buildValidator = ((externalSchemas: Record<string, unknown>, options: { customOptions?: Record<string, unknown> }) => {
  const coercing = pool(externalSchemas as never, options as never) as unknown as CompileRoute;
  const strict = pool(externalSchemas as never, {
    ...options,
    customOptions: { ...options?.customOptions, coerceTypes: false },
  } as never) as unknown as CompileRoute;
  return (route: Parameters<CompileRoute>[0]) => (route.httpPart === 'body' ? strict(route) : coercing(route));
}) as unknown as BuildValidator;
