import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { sessionLog, sessionLogCsv } from '../../reports/session-log.js';
import { requireOperator } from '../auth.js';
import type { RouteDeps } from '../deps.js';

const logQuery = z.object({
  format: z.enum(['json', 'csv']).default('json'),
  limit: z.coerce.number().int().min(1).max(100_000).default(10_000),
  offset: z.coerce.number().int().min(0).default(0),
});

export function opsRoutes(deps: RouteDeps): FastifyPluginAsyncZod {
  return async (app) => {
    app.get('/v1/ops/session-log', { schema: { querystring: logQuery } }, async (request, reply) => {
      requireOperator(deps.adminToken, request);
      const { format, limit, offset } = request.query;
      const sessions = await sessionLog(deps.sql, { limit, offset });
      if (format === 'csv') return reply.type('text/csv; charset=utf-8').send(sessionLogCsv(sessions));
      return { sessions };
    });

    app.get('/metrics', async (_request, reply) => {
      const { byState, stuck } = deps.supervisor.countLive();
      deps.metrics.sessions.reset();
      for (const [state, count] of Object.entries(byState)) deps.metrics.sessions.set({ state }, count);
      deps.metrics.stuckSessions.set(stuck);
      return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
    });

    // Ready: the database answers and every unsettled session has been restored.
    app.get('/ready', async (_request, reply) => {
      const database = await deps.sql`select 1`.then(() => true, () => false);
      if (database && deps.readiness.restored) return { status: 'ready' };
      return reply.code(503).type('application/problem+json').send({
        type: 'about:blank',
        title: 'Service Unavailable',
        status: 503,
        code: database ? 'RESTORING' : 'DATABASE_UNAVAILABLE',
        detail: database ? 'Sessions are still being restored.' : 'The database does not answer.',
      });
    });

    app.get('/health', async (_request, reply) => {
      try {
        await deps.sql`select 1`;
        return { status: 'ok' };
      } catch {
        return reply.code(503).type('application/problem+json').send({
          type: 'about:blank',
          title: 'Service Unavailable',
          status: 503,
          code: 'DATABASE_UNAVAILABLE',
          detail: 'The database does not answer.',
        });
      }
    });
  };
}
