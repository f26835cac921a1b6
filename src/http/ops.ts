// Operations: liveness and readiness.
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AuthCore } from '../auth/core.js';
import { Problem } from '../auth/schemas.js';
import { problemBody } from './render.js';

export const opsRoutes: FastifyPluginAsyncTypebox<{ core: AuthCore }> = async (app, { core }) => {
  app.get(
    '/health',
    {
      logLevel: 'warn',
      schema: { tags: ['operations'], summary: 'Liveness: 200 while the process runs', response: { 200: Type.Object({ status: Type.Literal('ok') }) } },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/ready',
    {
      logLevel: 'warn',
      schema: {
        tags: ['operations'],
        summary: 'Readiness: 200 when the database (and Redis, where configured) answer, else 503',
        response: { 200: Type.Object({ status: Type.Literal('ready') }), 503: Problem },
      },
    },
    async (_request, reply) => {
      const timeout = <T>(p: Promise<T>) =>
        Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), 2_000).unref())]);
      const failed: string[] = [];
      await timeout(core.db.query('SELECT 1')).catch(() => failed.push('database'));
      if (core.redis) await timeout(core.redis.ping()).catch(() => failed.push('redis'));
      if (failed.length) {
        return reply
          .code(503)
          .type('application/problem+json')
          .send(problemBody(503, `Not ready: ${failed.join(' and ')} not answering`, 'store_unavailable'));
      }
      return { status: 'ready' as const };
    },
  );
};
