import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { formatAmount } from '../../billing/money.js';
import { findServer, insertServer, insertService, listServices } from '../../catalogue/catalogue.js';
import { errors } from '../../errors.js';
import { requireOperator } from '../auth.js';
import type { RouteDeps } from '../deps.js';
import { positiveAmount } from '../schemas.js';

const name = z.string().trim().min(1).max(200);
const maxUsers = z.number().int().min(0).max(1_000_000);

const uniqueName = (what: string) => (error: unknown) => {
  if ((error as { code?: string }).code === '23505') throw errors.nameTaken(what);
  throw error;
};

export function catalogueRoutes(deps: RouteDeps): FastifyPluginAsyncZod {
  return async (app) => {
    app.get('/v1/services', async () => {
      const services = await listServices(deps.sql);
      const active = await deps.sql<{ serviceId: string; count: number }[]>`
        select service_id as "serviceId", count(*)::int as count from sessions
        where state in ('authorizing', 'active') group by service_id`;
      const activeBy = new Map(active.map((row) => [row.serviceId, row.count]));
      return {
        services: services.map((s) => ({
          id: s.id,
          name: s.name,
          serverId: s.serverId,
          pricePerMinute: formatAmount(s.pricePerMinuteMicros),
          currency: s.currency,
          maxUsers: s.maxUsers,
          activeUsers: activeBy.get(s.id) ?? 0,
        })),
      };
    });

    app.post('/v1/servers', { schema: { body: z.object({ name, maxUsers }) } }, async (request, reply) => {
      requireOperator(deps.adminToken, request);
      const server = { id: randomUUID(), ...request.body };
      await insertServer(deps.sql, server, deps.clock.now()).catch(uniqueName('server'));
      return reply.code(201).send(server);
    });

    app.post(
      '/v1/services',
      { schema: { body: z.object({ name, serverId: z.uuid(), pricePerMinute: positiveAmount(6), maxUsers }) } },
      async (request, reply) => {
        requireOperator(deps.adminToken, request);
        const { pricePerMinute, serverId, ...rest } = request.body;
        if (!(await findServer(deps.sql, serverId))) throw errors.serverNotFound();
        const service = { id: randomUUID(), serverId, pricePerMinuteMicros: pricePerMinute, currency: deps.currency, ...rest };
        await insertService(deps.sql, service, deps.clock.now()).catch(uniqueName('service'));
        return reply.code(201).send({
          id: service.id,
          name: service.name,
          serverId,
          pricePerMinute: formatAmount(pricePerMinute),
          currency: service.currency,
          maxUsers: service.maxUsers,
        });
      },
    );
  };
}
