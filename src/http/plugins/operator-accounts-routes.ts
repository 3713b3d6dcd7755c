import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { accountHistory } from '../../accounts/account-rows.js';
import { findAccount } from '../../accounts/accounts.js';
import { recordAudit } from '../../audit/audit-log.js';
import { errors } from '../../errors.js';
import type { Actor } from '../../operators/roles.js';
import { listStatements } from '../../statements/statement-sql.js';
import { statementView } from '../../statements/statement-view.js';
import { deliveryLog } from '../../webhooks/delivery-rows.js';
import { createEndpoint, disableEndpoint, listEndpoints } from '../../webhooks/endpoints.js';
import { WEBHOOK_EVENT_TYPES } from '../../webhooks/webhook-events.js';
import type { RouteDeps } from '../deps.js';
import {
  accountHistoryLineSchema,
  accountViewSchema,
  idParams,
  instantParam,
  problems,
  statementViewSchema,
  text,
  webhookDeliverySchema,
  webhookEndpointSchema,
} from '../schemas.js';

type App = Parameters<FastifyPluginAsyncZod>[0];

/**
 * The operator routes for customers' accounts (states, ways to pay, statements) and for webhook
 * endpoints, registered inside the operator plugin (its auth hook, its roles).
 */
export function accountAndWebhookRoutes(app: App, deps: RouteDeps, by: (request: FastifyRequest) => { actor: Actor; requestId: string }): void {
  const read = { permission: 'read' } as const;
  const rescue = { permission: 'rescue' } as const;
  const admin = { permission: 'admin' } as const;
    const accountWithHistory = z.object({ account: accountViewSchema, history: z.array(accountHistoryLineSchema) });
    const accountAnswer = async (id: string) => {
      const account = await findAccount(deps.sql, id);
      if (!account) throw errors.accountNotFound();
      return { account, history: await accountHistory(deps.sql, id) };
    };
    const reason = text(500);

    app.get('/v1/ops/accounts/:id', { schema: { params: idParams, response: { 200: accountWithHistory, ...problems } }, config: read }, async (request) =>
      accountAnswer(request.params.id),
    );

    app.get(
      '/v1/ops/accounts/:id/statements',
      { schema: { params: idParams, response: { 200: z.object({ statements: z.array(statementViewSchema) }), ...problems } }, config: read },
      async (request) => {
        if (!(await findAccount(deps.sql, request.params.id))) throw errors.accountNotFound();
        return { statements: (await listStatements(deps.sql, request.params.id)).map(statementView) };
      },
    );

    // Suspending ends the account's running sessions (they settle) and refuses new ones; `until` ends it by itself.
    app.post(
      '/v1/ops/accounts/:id/suspend',
      { schema: { params: idParams, body: z.object({ reason, until: instantParam.optional() }), response: { 200: accountWithHistory, ...problems } }, config: rescue },
      async (request) => {
        const until = request.body.until === undefined ? null : Date.parse(request.body.until);
        if (until !== null && until <= deps.clock.now()) throw errors.validation('until must lie in the future.', [{ path: ['until'], message: 'must lie in the future' }]);
        await deps.accountCommands.byOperator(request.params.id, { kind: 'suspend', until }, by(request), request.body.reason);
        return accountAnswer(request.params.id);
      },
    );

    app.post(
      '/v1/ops/accounts/:id/payment-mode',
      {
        schema: { params: idParams, body: z.object({ paymentMode: z.enum(['card', 'prepaid', 'postpaid']), reason }), response: { 200: accountWithHistory, ...problems } },
        config: admin,
      },
      async (request) => {
        await deps.accountCommands.setPaymentMode(request.params.id, request.body.paymentMode, by(request), request.body.reason);
        return accountAnswer(request.params.id);
      },
    );

    app.post(
      '/v1/ops/accounts/:id/:action',
      {
        schema: { params: idParams.extend({ action: z.enum(['resume', 'close']) }), body: z.object({ reason }), response: { 200: accountWithHistory, ...problems } },
        config: rescue,
      },
      async (request) => {
        await deps.accountCommands.byOperator(request.params.id, { kind: request.params.action }, by(request), request.body.reason);
        return accountAnswer(request.params.id);
      },
    );

    // Webhooks: endpoints for domain events, signed and retried (src/webhooks); the secret is shown once.
    const webhookUrl = z
      .url({ protocol: /^https?$/, message: 'must be an http or https URL' })
      .max(2000);
    app.post(
      '/v1/ops/webhooks',
      {
        schema: {
          body: z.object({ url: webhookUrl, eventTypes: z.array(z.enum(WEBHOOK_EVENT_TYPES)).min(1).max(WEBHOOK_EVENT_TYPES.length) }),
          response: { 201: z.object({ endpoint: webhookEndpointSchema, secret: z.string() }), ...problems },
        },
        config: admin,
      },
      async (request, reply) => {
        const at = deps.clock.now();
        const created = await createEndpoint(deps.sql, { ...request.body, createdBy: request.operator.operatorId, at });
        await recordAudit(deps.sql, { ...by(request), action: 'webhook.create', targetType: 'webhook', targetId: created.endpoint.id, before: null, after: created.endpoint, at });
        return reply.code(201).send(created);
      },
    );

    app.get('/v1/ops/webhooks', { schema: { response: { 200: z.object({ endpoints: z.array(webhookEndpointSchema) }), ...problems } }, config: read }, async () => ({
      endpoints: await listEndpoints(deps.sql),
    }));

    app.delete('/v1/ops/webhooks/:id', { schema: { params: idParams, response: { 200: z.object({ endpoint: webhookEndpointSchema }), ...problems } }, config: admin }, async (request) => {
      const at = deps.clock.now();
      const endpoint = await disableEndpoint(deps.sql, request.params.id, at);
      if (!endpoint) throw errors.webhookNotFound();
      await recordAudit(deps.sql, { ...by(request), action: 'webhook.disable', targetType: 'webhook', targetId: endpoint.id, before: null, after: endpoint, at });
      return { endpoint };
    });

    app.get(
      '/v1/ops/webhooks/:id/deliveries',
      {
        schema: {
          params: idParams,
          querystring: z.object({ state: z.enum(['pending', 'delivered', 'failed']).optional(), limit: z.coerce.number().int().min(1).max(500).default(100) }),
          response: { 200: z.object({ deliveries: z.array(webhookDeliverySchema) }), ...problems },
        },
        config: read,
      },
      async (request) => {
        const deliveries = await deliveryLog(deps.sql, { endpointId: request.params.id, ...request.query });
        if (deliveries === null) throw errors.webhookNotFound();
        return { deliveries };
      },
    );
}
