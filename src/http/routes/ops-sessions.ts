import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errors } from '../../errors.js';
import { sessionHistory, sessionIdsPage } from '../../supervisor/ops-queries.js';
import { requireOperator } from '../auth.js';
import type { RouteDeps } from '../deps.js';
import { idParams } from '../schemas.js';

const STATES = ['authorizing', 'active', 'over_limit', 'closing', 'settled', 'declined'] as const;

const listQuery = z.object({
  state: z.enum(STATES).optional(),
  stuck: z.enum(['true', 'false']).optional(),
  serverId: z.uuid().optional(),
  serviceId: z.uuid().optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().max(200).optional(),
});

const actionParams = idParams.extend({ action: z.enum(['terminate', 'retry', 'void']) });

export function opsSessionRoutes(deps: RouteDeps): FastifyPluginAsyncZod {
  return async (app) => {
    app.addHook('onRequest', async (request) => requireOperator(deps.adminToken, request));

    app.get('/v1/ops/sessions', { schema: { querystring: listQuery } }, async (request) => {
      const { stuck, state, serverId, serviceId, limit, cursor } = request.query;
      if (stuck === 'true') {
        // Only sessions still running can be stuck, and every one of them is held in memory.
        const matching = deps.supervisor
          .stuckSessions()
          .filter((s) => (!state || s.state === state) && (!serverId || s.serverId === serverId) && (!serviceId || s.serviceId === serviceId));
        const offset = cursor ? Number(cursor) || 0 : 0;
        const page = matching.slice(offset, offset + limit);
        return { sessions: page, nextCursor: offset + limit < matching.length ? String(offset + limit) : null };
      }
      const { ids, nextCursor } = await sessionIdsPage(deps.sql, { state, serverId, serviceId, limit, cursor });
      const views = await Promise.all(ids.map((id) => deps.supervisor.opsView(id)));
      const sessions = views.filter((v) => v !== null).filter((v) => stuck !== 'false' || !v.stuck);
      return { sessions, nextCursor };
    });

    app.get('/v1/ops/sessions/:id', { schema: { params: idParams } }, async (request) => {
      const session = await deps.supervisor.opsView(request.params.id);
      if (!session) throw errors.sessionNotFound();
      return { session, history: await sessionHistory(deps.sql, request.params.id) };
    });

    app.post('/v1/ops/sessions/:id/:action', { schema: { params: actionParams } }, async (request) => ({
      session: await deps.supervisor.opsAction(request.params.id, request.params.action),
    }));
  };
}
