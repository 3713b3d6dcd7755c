import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { serviceOccupancy, serversView } from '../../admission/occupancy.js';
import { formatAmount } from '../../billing/money.js';
import type { ServiceRecord } from '../../catalogue/catalogue.js';
import { requireOperator } from '../auth.js';
import type { RouteDeps } from '../deps.js';
import { idParams, positiveAmount } from '../schemas.js';

const name = z.string().trim().min(1).max(200);
const maxUsers = z.number().int().min(0).max(10_000_000);

const atLeastOne = (body: object) => Object.values(body).some((v) => v !== undefined);

export function catalogueRoutes(deps: RouteDeps): FastifyPluginAsyncZod {
  const view = (s: Omit<ServiceRecord, 'serverName'>) => ({
    id: s.id,
    name: s.name,
    serverId: s.serverId,
    pricePerMinute: formatAmount(s.pricePerMinuteMicros),
    currency: s.currency,
    maxUsers: s.maxUsers,
    activeUsers: serviceOccupancy(deps.occupancy, s.id)?.activeUsers ?? 0,
  });

  return async (app) => {
    app.get('/v1/services', async () => ({ services: deps.catalogue.services().map(view) }));

    app.post('/v1/servers', { schema: { body: z.object({ name, maxUsers }) } }, async (request, reply) => {
      requireOperator(deps.adminToken, request);
      return reply.code(201).send(await deps.catalogue.createServer(request.body));
    });

    app.patch(
      '/v1/servers/:id',
      {
        schema: {
          params: idParams,
          body: z.object({ name: name.optional(), maxUsers: maxUsers.optional() }).refine(atLeastOne, 'nothing to change'),
        },
      },
      async (request) => {
        requireOperator(deps.adminToken, request);
        return deps.catalogue.updateServer(request.params.id, request.body);
      },
    );

    app.post(
      '/v1/services',
      { schema: { body: z.object({ name, serverId: z.uuid(), pricePerMinute: positiveAmount(6), maxUsers }) } },
      async (request, reply) => {
        requireOperator(deps.adminToken, request);
        const { pricePerMinute, ...rest } = request.body;
        return reply.code(201).send(view(await deps.catalogue.createService({ ...rest, pricePerMinuteMicros: pricePerMinute })));
      },
    );

    app.patch(
      '/v1/services/:id',
      {
        schema: {
          params: idParams,
          body: z
            .object({ name: name.optional(), maxUsers: maxUsers.optional(), pricePerMinute: positiveAmount(6).optional() })
            .refine(atLeastOne, 'nothing to change'),
        },
      },
      async (request) => {
        requireOperator(deps.adminToken, request);
        const { pricePerMinute, ...rest } = request.body;
        return view(await deps.catalogue.updateService(request.params.id, { ...rest, pricePerMinuteMicros: pricePerMinute }));
      },
    );

    app.get('/v1/ops/servers', async (request) => {
      requireOperator(deps.adminToken, request);
      return { servers: serversView(deps.occupancy, deps.clock.now()) };
    });
  };
}
