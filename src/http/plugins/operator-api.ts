import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { serversView } from '../../admission/occupancy.js';
import { issueServiceCredential } from '../../catalogue/service-credentials.js';
import { listAudit } from '../../audit/audit-log.js';
import { errors } from '../../errors.js';
import { listOperators } from '../../operators/operators.js';
import { ROLES } from '../../operators/roles.js';
import { sessionLog, sessionLogCsv } from '../../reports/session-log.js';
import { answerUsage, usageQuerySchema, usageResponses, usageWindow } from '../routes/usage-reports.js';
import { sessionHistory } from '../../sessions/ops-queries.js';
import { operatorAuth } from '../auth.js';
import type { RouteDeps } from '../deps.js';
import {
  auditEntrySchema,
  historyLineSchema,
  idParams,
  instantParam,
  operatorViewSchema,
  opsServiceViewSchema,
  opsSessionViewSchema,
  positiveAmount,
  problems,
  serverViewSchema,
  serversOccupancySchema,
  tariffInput,
  secret,
  sessionLogRowSchema,
  text,
  textBody,
  upstreamUrlInput,
} from '../schemas.js';
import type { ServiceRecord } from '../../catalogue/catalogue.js';
import { serviceView } from './public-api.js';
import { accountAndWebhookRoutes } from './operator-accounts-routes.js';

const STATES = ['authorizing', 'active', 'over_limit', 'closing', 'settled', 'declined'] as const;
const maxUsers = z.number().int().min(0).max(10_000_000);
const atLeastOne = (body: object) => Object.values(body).some((v) => v !== undefined);

/**
 * What operators may do with their API key, by role (operators/roles.ts): read (occupancy, sessions,
 * the marketing log, the audit log, metrics), rescue sessions (support and admin), change the
 * catalogue and the operator accounts (admin). Every change is written to the audit log.
 */
export function operatorApi(deps: RouteDeps): FastifyPluginAsyncZod {
  const price = positiveAmount(6, deps.limits.maxPricePerMinuteMicros);
  const tariff = tariffInput(deps.limits);
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
  const auditQuery = z.object({
    operatorId: z.uuid().optional(),
    action: z.string().max(100).optional(),
    targetType: z.enum(['server', 'service', 'session', 'operator', 'account', 'webhook']).optional(),
    targetId: z.string().max(100).optional(),
    since: instantParam.optional(),
    until: instantParam.optional(),
    limit: z.coerce.number().int().min(1).max(500).default(100),
    cursor: z.string().regex(/^\d{1,18}$/, 'must be the nextCursor of a previous page').optional(),
  })
    // As the usage report's from and to: a window that ends before it starts is a mistake, not an empty list.
    .refine((q) => q.since === undefined || q.until === undefined || Date.parse(q.since) < Date.parse(q.until), { message: 'must be before until', path: ['since'] });
  const opsSession = z.object({ session: opsSessionViewSchema });
  /** The signing secret is in the answer only the one time it is made. */
  const opsService = (changed: { service: ServiceRecord; signingSecret: string | null }) => ({
    ...serviceView(deps, changed.service),
    upstreamUrl: changed.service.upstreamUrl,
    ...(changed.signingSecret === null ? {} : { signingSecret: changed.signingSecret }),
  });
  const read = { permission: 'read' } as const;
  const rescue = { permission: 'rescue' } as const;
  const admin = { permission: 'admin' } as const;

  const plugin: FastifyPluginAsyncZod = async (app) => {
    app.addHook('onRequest', operatorAuth({ bootstrapToken: deps.bootstrapToken, operatorFor: deps.operatorFor }));
    const by = (request: FastifyRequest) => ({ actor: request.operator, requestId: request.id });

    app.post(
      '/v1/servers',
      { schema: { body: z.object({ name, maxUsers }), response: { 201: serverViewSchema, ...problems } }, config: admin },
      async (request, reply) => reply.code(201).send(await deps.catalogue.createServer(request.body, by(request))),
    );

    app.patch(
      '/v1/servers/:id',
      {
        schema: {
          params: idParams,
          // Strict: a field it does not take is refused, not dropped with the rest applied.
          body: z.strictObject({ name: name.optional(), maxUsers: maxUsers.optional() }).refine(atLeastOne, 'nothing to change'),
          response: { 200: serverViewSchema, ...problems },
        },
        config: admin,
      },
      async (request) => deps.catalogue.updateServer(request.params.id, request.body, by(request)),
    );

    app.post(
      '/v1/services',
      {
        schema: {
          body: z.object({ name, serverId: z.uuid(), pricePerMinute: price, maxUsers, tariff: tariff.optional(), upstreamUrl: upstreamUrlInput.optional() }),
          response: { 201: opsServiceViewSchema, ...problems },
        },
        config: admin,
      },
      async (request, reply) => {
        const { pricePerMinute, tariff: pricing, ...rest } = request.body;
        return reply.code(201).send(opsService(await deps.catalogue.createService({ ...rest, pricePerMinuteMicros: pricePerMinute, pricing }, by(request))));
      },
    );

    app.patch(
      '/v1/services/:id',
      {
        schema: {
          params: idParams,
          // Strict: a field it does not take is refused, not dropped with the rest applied.
          body: z
            .strictObject({
              name: name.optional(),
              maxUsers: maxUsers.optional(),
              pricePerMinute: price.optional(),
              tariff: tariff.optional(),
              upstreamUrl: upstreamUrlInput.optional(),
              // Named to be refused: stripped like any unknown key, a move was answered 200 and not made (an outside probe).
              serverId: z.never({ error: 'a service stays on the server it was made on: make a new service on the other server' }).optional(),
            })
            .refine(atLeastOne, 'nothing to change'),
          response: { 200: opsServiceViewSchema, ...problems },
        },
        config: admin,
      },
      async (request) => {
        const { pricePerMinute, tariff: pricing, ...rest } = request.body;
        return opsService(await deps.catalogue.updateService(request.params.id, { ...rest, pricePerMinuteMicros: pricePerMinute, pricing }, by(request)));
      },
    );

    // The service's credential for the metering API, shown once; a new one replaces the old at once.
    app.post(
      '/v1/services/:id/credential',
      { schema: { params: idParams, response: { 201: z.object({ serviceId: z.uuid(), credential: z.string() }), ...problems } }, config: admin },
      async (request, reply) => {
        const credential = await issueServiceCredential(deps.sql, request.params.id, by(request), deps.clock.now());
        return reply.code(201).send({ serviceId: request.params.id, credential });
      },
    );

    // A leaked secret is replaced: the new one is shown once and the old one stops at once.
    app.post(
      '/v1/services/:id/signing-secret',
      { schema: { params: idParams, response: { 200: z.object({ signingSecret: z.string() }), ...problems } }, config: admin },
      async (request) => ({ signingSecret: await deps.catalogue.rotateSigningSecret(request.params.id, by(request)) }),
    );

    app.get('/v1/ops/servers', { schema: { response: { 200: serversOccupancySchema, ...problems } }, config: read }, async () => ({
      servers: serversView(deps.occupancy, deps.clock.now()),
    }));

    app.get(
      '/v1/ops/sessions',
      {
        schema: { querystring: listQuery, response: { 200: z.object({ sessions: z.array(opsSessionViewSchema), nextCursor: z.string().nullable() }), ...problems } },
        config: read,
      },
      async (request) => {
        const { stuck, ...filter } = request.query;
        return deps.queries.opsList({ ...filter, stuck: stuck === undefined ? undefined : stuck === 'true' });
      },
    );

    app.get(
      '/v1/ops/sessions/:id',
      { schema: { params: idParams, response: { 200: opsSession.extend({ history: z.array(historyLineSchema) }), ...problems } }, config: read },
      async (request) => {
        const session = await deps.queries.opsView(request.params.id);
        if (!session) throw errors.sessionNotFound();
        const traffic = (await deps.edge.trafficOf([session.id])).get(session.id)!;
        return { session: { ...session, traffic }, history: await sessionHistory(deps.sql, request.params.id) };
      },
    );

    // One route per rescue, so an action tollgate does not have is 404 NOT_FOUND, as any unknown path.
    for (const action of ['terminate', 'retry', 'void'] as const) {
      app.post(
        `/v1/ops/sessions/:id/${action}`,
        { schema: { params: idParams, response: { 200: opsSession, ...problems } }, config: rescue },
        async (request) => {
          await deps.commands.opsAction(request.params.id, action, by(request));
          const session = await deps.queries.opsView(request.params.id);
          if (!session) throw errors.sessionNotFound();
          return { session };
        },
      );
    }

    accountAndWebhookRoutes(app, deps, by);

    app.get(
      '/v1/ops/session-log',
      {
        schema: { querystring: logQuery, response: { 200: z.union([z.object({ sessions: z.array(sessionLogRowSchema) }), textBody]), ...problems } },
        config: read,
      },
      async (request, reply) => {
        const { format, limit, offset } = request.query;
        const sessions = await sessionLog(deps.sql, { limit, offset });
        if (format === 'csv') return reply.type('text/csv; charset=utf-8').send(sessionLogCsv(sessions));
        return { sessions };
      },
    );

    app.get(
      '/v1/ops/reports/usage',
      { schema: { querystring: usageQuerySchema.extend({ by: z.enum(['service', 'customer']).default('service'), accountId: z.uuid().optional() }), response: usageResponses }, config: read },
      async (request, reply) => {
        const { by, accountId, serviceId, period, timeZone, format } = request.query;
        const window = usageWindow(request.query, deps.clock.now());
        return answerUsage(deps.sql, reply, { by, accountId, serviceId, period, timeZone, ...window }, format);
      },
    );

    app.get(
      '/v1/ops/audit',
      { schema: { querystring: auditQuery, response: { 200: z.object({ entries: z.array(auditEntrySchema), nextCursor: z.string().nullable() }), ...problems } }, config: read },
      async (request) => {
        const { since, until, cursor, ...filter } = request.query;
        return listAudit(deps.sql, {
          ...filter,
          since: since === undefined ? undefined : Date.parse(since),
          until: until === undefined ? undefined : Date.parse(until),
          before: cursor === undefined ? undefined : BigInt(cursor),
        });
      },
    );

    const operatorAnswer = z.object({ operator: operatorViewSchema, apiKey: z.string() });
    // The bootstrap token may call this one route, and only while no enabled admin exists.
    app.post(
      '/v1/ops/operators',
      {
        schema: { body: z.object({ name: text(100), role: z.enum(ROLES), password: secret(12, 200).optional() }), response: { 201: operatorAnswer, ...problems } },
        config: { ...admin, bootstrap: true },
      },
      async (request, reply) => reply.code(201).send(await deps.operators.create(request.body, request.operator, request.id)),
    );

    app.get('/v1/ops/operators', { schema: { response: { 200: z.object({ operators: z.array(operatorViewSchema) }), ...problems } }, config: admin }, async () => ({
      operators: await listOperators(deps.sql),
    }));

    app.patch(
      '/v1/ops/operators/:id',
      {
        schema: {
          params: idParams,
          body: z.object({ role: z.enum(ROLES).optional(), disabled: z.boolean().optional() }).refine(atLeastOne, 'nothing to change'),
          response: { 200: operatorViewSchema, ...problems },
        },
        config: admin,
      },
      async (request) => deps.operators.update(request.params.id, request.body, request.operator, request.id),
    );

    app.post(
      '/v1/ops/operators/:id/key',
      { schema: { params: idParams, response: { 200: operatorAnswer, ...problems } }, config: admin },
      async (request) => deps.operators.newKey(request.params.id, request.operator, request.id),
    );

    // Prometheus scrapes with a read_only operator's key (scrape config: authorization).
    app.get('/metrics', { schema: { response: { 200: textBody } }, config: read }, async (_request, reply) => {
      const { byState, stuck } = deps.queries.countLive();
      deps.metrics.sessions.reset();
      for (const [state, count] of Object.entries(byState)) deps.metrics.sessions.set({ state }, count);
      deps.metrics.stuckSessions.set(stuck);
      return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
    });
  };
  return Object.assign(plugin, { [Symbol.for('fastify.display-name')]: 'operator-api' });
}
