import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { issueToken, signUp } from '../../accounts/accounts.js';
import { serviceOccupancy } from '../../admission/occupancy.js';
import { formatAmount } from '../../billing/money.js';
import type { ServiceRecord } from '../../catalogue/catalogue.js';
import { errors } from '../../errors.js';
import type { RouteDeps } from '../deps.js';
import { accountViewSchema, positiveAmount, problems, secret, serviceViewSchema, text, textBody } from '../schemas.js';

/** A service as the catalogue shows it, with its users now. */
export function serviceView(deps: Pick<RouteDeps, 'occupancy'>, s: Omit<ServiceRecord, 'serverName'>) {
  return {
    id: s.id,
    name: s.name,
    serverId: s.serverId,
    pricePerMinute: formatAmount(s.pricePerMinuteMicros),
    currency: s.currency,
    maxUsers: s.maxUsers,
    activeUsers: serviceOccupancy(deps.occupancy, s.id)?.activeUsers ?? 0,
  };
}

/** What anyone may ask: the catalogue, signing up, logging in, and whether tollgate is up. */
export function publicApi(deps: RouteDeps): FastifyPluginAsyncZod {
  const { limits } = deps;
  const estimate = z.number().nonnegative().max(limits.maxEstimate);
  const signUpBody = z.object({
    name: text(200),
    email: z.email().max(254),
    password: secret(8, 200),
    card: z.object({
      number: z.string().regex(/^[\d ]{12,23}$/, 'must be the card number digits').transform((n) => n.replaceAll(' ', '')),
      expMonth: z.number().int().min(1).max(12),
      expYear: z.number().int().min(2000).max(2100),
      cvc: z.string().regex(/^\d{3,4}$/, 'must be 3 or 4 digits'),
    }),
    estimatedStorageGb: estimate,
    estimatedProcessingHours: estimate,
    outstandingLimit: positiveAmount(2, limits.maxAmountMicros),
  });

  const plugin: FastifyPluginAsyncZod = async (app) => {
    app.get('/v1/services', { schema: { response: { 200: z.object({ services: z.array(serviceViewSchema) }) } } }, async () => ({
      services: deps.catalogue.services().map((s) => serviceView(deps, s)),
    }));

    app.post(
      '/v1/accounts',
      { schema: { body: signUpBody, response: { 201: z.object({ account: accountViewSchema, token: z.string() }), ...problems } } },
      async (request, reply) => {
        const { outstandingLimit, ...rest } = request.body;
        return reply.code(201).send(await signUp(deps, { ...rest, outstandingLimitMicros: outstandingLimit }));
      },
    );

    app.post(
      '/v1/auth/tokens',
      {
        schema: {
          body: z.object({ email: text(254), password: secret(1, 200) }),
          response: { 201: z.object({ token: z.string() }), ...problems },
        },
      },
      async (request, reply) => reply.code(201).send(await issueToken(deps, request.body.email, request.body.password)),
    );

    app.get('/health', { schema: { response: { 200: z.object({ status: z.literal('ok') }), ...problems } } }, async () => {
      await deps.sql`select 1`.catch(() => {
        throw errors.databaseUnavailable();
      });
      return { status: 'ok' as const };
    });

    // Ready: the database answers and every unsettled session has been restored.
    app.get('/ready', { schema: { response: { 200: z.object({ status: z.literal('ready') }), ...problems } } }, async () => {
      await deps.sql`select 1`.catch(() => {
        throw errors.databaseUnavailable();
      });
      if (!deps.readiness.restored) throw errors.restoring();
      return { status: 'ready' as const };
    });

    app.get('/metrics', { schema: { response: { 200: textBody } } }, async (_request, reply) => {
      const { byState, stuck } = deps.queries.countLive();
      deps.metrics.sessions.reset();
      for (const [state, count] of Object.entries(byState)) deps.metrics.sessions.set({ state }, count);
      deps.metrics.stuckSessions.set(stuck);
      return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
    });
  };
  return Object.assign(plugin, { [Symbol.for('fastify.display-name')]: 'public-api' });
}
