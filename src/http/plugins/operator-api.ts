import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { serversView } from '../../admission/occupancy.js';
import { errors } from '../../errors.js';
import { sessionLog, sessionLogCsv } from '../../reports/session-log.js';
import { sessionHistory } from '../../sessions/ops-queries.js';
import { operatorAuth } from '../auth.js';
import type { RouteDeps } from '../deps.js';
import {
  historyLineSchema,
  idParams,
  opsSessionViewSchema,
  positiveAmount,
  problems,
  serverViewSchema,
  serversOccupancySchema,
  serviceViewSchema,
  sessionLogRowSchema,
  text,
  textBody,
} from '../schemas.js';
import { serviceView } from './public-api.js';

const STATES = ['authorizing', 'active', 'over_limit', 'closing', 'settled', 'declined'] as const;
const maxUsers = z.number().int().min(0).max(10_000_000);
const atLeastOne = (body: object) => Object.values(body).some((v) => v !== undefined);

/** What operators may do with the operator token: the catalogue, occupancy, sessions, the marketing log. */
export function operatorApi(deps: RouteDeps): FastifyPluginAsyncZod {
  const price = positiveAmount(6, deps.limits.maxPricePerMinuteMicros);
  const name = text(200);
  const listQuery = z.object({
    state: z.enum(STATES).optional(),
    stuck: z.enum(['true', 'false']).optional(),
    serverId: z.uuid().optional(),
    serviceId: z.uuid().optional(),
    limit: z.coerce.number().int().min(1).max(500).default(100),
    cursor: z.string().max(200).optional(),
  });
  const logQuery = z.object({
    format: z.enum(['json', 'csv']).default('json'),
    limit: z.coerce.number().int().min(1).max(100_000).default(10_000),
    offset: z.coerce.number().int().min(0).max(1_000_000_000).default(0),
  });
  const opsSession = z.object({ session: opsSessionViewSchema });

  const plugin: FastifyPluginAsyncZod = async (app) => {
    app.addHook('onRequest', operatorAuth(deps.adminToken));

    app.post(
      '/v1/servers',
      { schema: { body: z.object({ name, maxUsers }), response: { 201: serverViewSchema, ...problems } } },
      async (request, reply) => reply.code(201).send(await deps.catalogue.createServer(request.body)),
    );

    app.patch(
      '/v1/servers/:id',
      {
        schema: {
          params: idParams,
          body: z.object({ name: name.optional(), maxUsers: maxUsers.optional() }).refine(atLeastOne, 'nothing to change'),
          response: { 200: serverViewSchema, ...problems },
        },
      },
      async (request) => deps.catalogue.updateServer(request.params.id, request.body),
    );

    app.post(
      '/v1/services',
      { schema: { body: z.object({ name, serverId: z.uuid(), pricePerMinute: price, maxUsers }), response: { 201: serviceViewSchema, ...problems } } },
      async (request, reply) => {
        const { pricePerMinute, ...rest } = request.body;
        return reply.code(201).send(serviceView(deps, await deps.catalogue.createService({ ...rest, pricePerMinuteMicros: pricePerMinute })));
      },
    );

    app.patch(
      '/v1/services/:id',
      {
        schema: {
          params: idParams,
          body: z.object({ name: name.optional(), maxUsers: maxUsers.optional(), pricePerMinute: price.optional() }).refine(atLeastOne, 'nothing to change'),
          response: { 200: serviceViewSchema, ...problems },
        },
      },
      async (request) => {
        const { pricePerMinute, ...rest } = request.body;
        return serviceView(deps, await deps.catalogue.updateService(request.params.id, { ...rest, pricePerMinuteMicros: pricePerMinute }));
      },
    );

    app.get('/v1/ops/servers', { schema: { response: { 200: serversOccupancySchema, ...problems } } }, async () => ({
      servers: serversView(deps.occupancy, deps.clock.now()),
    }));

    app.get(
      '/v1/ops/sessions',
      { schema: { querystring: listQuery, response: { 200: z.object({ sessions: z.array(opsSessionViewSchema), nextCursor: z.string().nullable() }), ...problems } } },
      async (request) => {
        const { stuck, ...filter } = request.query;
        return deps.queries.opsList({ ...filter, stuck: stuck === undefined ? undefined : stuck === 'true' });
      },
    );

    app.get(
      '/v1/ops/sessions/:id',
      { schema: { params: idParams, response: { 200: opsSession.extend({ history: z.array(historyLineSchema) }), ...problems } } },
      async (request) => {
        const session = await deps.queries.opsView(request.params.id);
        if (!session) throw errors.sessionNotFound();
        return { session, history: await sessionHistory(deps.sql, request.params.id) };
      },
    );

    app.post(
      '/v1/ops/sessions/:id/:action',
      { schema: { params: idParams.extend({ action: z.enum(['terminate', 'retry', 'void']) }), response: { 200: opsSession, ...problems } } },
      async (request) => {
        await deps.commands.opsAction(request.params.id, request.params.action);
        const session = await deps.queries.opsView(request.params.id);
        if (!session) throw errors.sessionNotFound();
        return { session };
      },
    );

    app.get(
      '/v1/ops/session-log',
      { schema: { querystring: logQuery, response: { 200: z.union([z.object({ sessions: z.array(sessionLogRowSchema) }), textBody]), ...problems } } },
      async (request, reply) => {
        const { format, limit, offset } = request.query;
        const sessions = await sessionLog(deps.sql, { limit, offset });
        if (format === 'csv') return reply.type('text/csv; charset=utf-8').send(sessionLogCsv(sessions));
        return { sessions };
      },
    );
  };
  return Object.assign(plugin, { [Symbol.for('fastify.display-name')]: 'operator-api' });
}
