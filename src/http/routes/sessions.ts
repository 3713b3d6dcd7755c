import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errors } from '../../errors.js';
import { requireCustomer } from '../auth.js';
import type { RouteDeps } from '../deps.js';
import { idParams, positiveAmount } from '../schemas.js';

// A week: longer sessions outlive a card authorization's validity.
const MAX_MINUTES = 7 * 24 * 60;

const openBody = (maxWaitSeconds: number) => z.object({
  serviceId: z.uuid(),
  maxMinutes: z
    .number()
    .min(1 / 60, 'must be at least one second (1/60 of a minute)')
    .max(MAX_MINUTES)
    .optional(),
  maxCharge: positiveAmount(2).optional(),
  waitSeconds: z.number().min(0).max(maxWaitSeconds).default(0),
});

export function sessionRoutes(deps: RouteDeps): FastifyPluginAsyncZod {
  const body = openBody(deps.admissionMaxWaitSeconds);
  return async (app) => {
    app.post('/v1/sessions', { schema: { body } }, async (request, reply) => {
      const accountId = await requireCustomer(deps.tokens, request);
      const { serviceId, maxMinutes, maxCharge, waitSeconds } = request.body;
      const session = await deps.supervisor.open({
        accountId,
        serviceId,
        maxMs: maxMinutes === undefined ? null : Math.round(maxMinutes * 60_000),
        maxChargeMicros: maxCharge ?? null,
        waitMs: Math.round(waitSeconds * 1000),
      });
      return reply.code(session.state === 'authorizing' ? 202 : 201).send(session);
    });

    app.get('/v1/sessions', async (request) => {
      const accountId = await requireCustomer(deps.tokens, request);
      return { sessions: await deps.supervisor.list(accountId) };
    });

    app.get('/v1/sessions/:id', { schema: { params: idParams } }, async (request) => {
      const accountId = await requireCustomer(deps.tokens, request);
      const session = await deps.supervisor.get(accountId, request.params.id);
      if (!session) throw errors.sessionNotFound();
      return session;
    });

    app.post(
      '/v1/sessions/:id/extend',
      { schema: { params: idParams, body: z.object({ maxCharge: positiveAmount(2) }) } },
      async (request) => {
        const accountId = await requireCustomer(deps.tokens, request);
        return deps.supervisor.extend(accountId, request.params.id, request.body.maxCharge);
      },
    );

    app.post('/v1/sessions/:id/logoff', { schema: { params: idParams } }, async (request, reply) => {
      const accountId = await requireCustomer(deps.tokens, request);
      const { view, settled } = await deps.supervisor.logoff(accountId, request.params.id);
      return reply.code(settled ? 200 : 202).send(view);
    });
  };
}
