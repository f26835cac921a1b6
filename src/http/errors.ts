// The service's error handling for its own routes: every error through the
// renderers of render.ts, and 404/405 as problem details. (The auth plugin
// sets its own handler in its own context; see src/auth/plugin.ts.)
import type { FastifyInstance } from 'fastify';
import { AuthError } from '../auth/errors.js';
import { errorHandler, sendProblem } from './render.js';

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

export function registerErrorHandling(app: FastifyInstance, realm: string): void {
  app.setErrorHandler(errorHandler(realm));
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    // Fastify answers 404 for a known path with another method; the contract wants 405.
    const allowed = METHODS.filter((m) => m !== request.method && app.findRoute({ method: m, url: path }) !== null);
    if (allowed.length) {
      if (allowed.includes('GET')) allowed.push('HEAD' as never);
      const err = new AuthError('method_not_allowed', `Method ${request.method} is not allowed here`, { headers: { allow: allowed.join(', ') } });
      return sendProblem(reply, err, realm);
    }
    return sendProblem(reply, new AuthError('not_found', 'Not found'), realm);
  });
}
