import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { signUp } from '../../accounts/accounts.js';
import { logIn } from '../../accounts/login.js';
import { seatsFreeOf, serviceOccupancy } from '../../admission/occupancy.js';
import { formatAmount } from '../../billing/money.js';
import { tariffView } from '../../sessions/session-view.js';
import type { ServiceRecord } from '../../catalogue/catalogue.js';
import { errors } from '../../errors.js';
import type { RouteDeps } from '../deps.js';
import { limitedBy, limitersFor } from '../rate-limits.js';
import { accountViewSchema, problems, secret, serviceViewSchema, text } from '../schemas.js';
import { signUpSchema } from '../sign-up-schema.js';

/** A service as the catalogue shows it, with its users now. */
export function serviceView(deps: Pick<RouteDeps, 'occupancy' | 'reachable'>, s: Omit<ServiceRecord, 'serverName'>) {
  return {
    id: s.id,
    name: s.name,
    serverId: s.serverId,
    pricePerMinute: formatAmount(s.pricePerMinuteMicros),
    tariff: tariffView(s.tariff),
    currency: s.currency,
    maxUsers: s.maxUsers,
    activeUsers: serviceOccupancy(deps.occupancy, s.id)?.activeUsers ?? 0,
    seatsFree: seatsFreeOf(deps.occupancy, s.id) ?? s.maxUsers,
    reachable: deps.reachable(s.id),
  };
}

/** What anyone may ask: the catalogue, signing up, logging in (both rate-limited), and whether tollgate is up. */
export function publicApi(deps: RouteDeps): FastifyPluginAsyncZod {
  const { limits } = deps;
  const signUpBody = signUpSchema(limits);

  const plugin: FastifyPluginAsyncZod = async (app) => {
    const { rateLimits } = deps;
    // Per address before the body is read (a flood costs no parsing), per e-mail once it is valid.
    const { signUpPerAddress, signUpPerEmail, loginPerAddress, loginPerEmail } = limitersFor(app, rateLimits);

    app.get('/v1/services', { schema: { response: { 200: z.object({ services: z.array(serviceViewSchema) }) } } }, async () => ({
      services: deps.catalogue.services().map((s) => serviceView(deps, s)),
    }));

    app.post(
      '/v1/accounts',
      {
        schema: { body: signUpBody, response: { 201: z.object({ account: accountViewSchema, token: z.string() }), ...problems } },
        onRequest: limitedBy(signUpPerAddress),
        preHandler: limitedBy(signUpPerEmail),
      },
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
        onRequest: limitedBy(loginPerAddress),
        preHandler: limitedBy(loginPerEmail),
      },
      async (request, reply) => reply.code(201).send(await logIn(deps.login, request.body.email, request.body.password)),
    );

    // Cheap: the database is asked at most once a second, however many ask (health-probe.ts).
    app.get('/health', { schema: { response: { 200: z.object({ status: z.literal('ok') }), ...problems } } }, async () => {
      if (!(await deps.health.databaseAnswers())) throw errors.databaseUnavailable();
      return { status: 'ok' as const };
    });

    // Ready: the database answers and every unsettled session has been restored.
    app.get('/ready', { schema: { response: { 200: z.object({ status: z.literal('ready') }), ...problems } } }, async () => {
      if (!(await deps.health.databaseAnswers())) throw errors.databaseUnavailable();
      if (!deps.readiness.restored) throw errors.restoring();
      return { status: 'ready' as const };
    });
  };
  return Object.assign(plugin, { [Symbol.for('fastify.display-name')]: 'public-api' });
}
