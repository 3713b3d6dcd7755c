import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { accountHistory } from '../../accounts/account-rows.js';
import { findAccount, listAccounts } from '../../accounts/accounts.js';
import { errors } from '../../errors.js';
import type { Actor } from '../../operators/roles.js';
import { listStatements } from '../../statements/statement-sql.js';
import { statementView } from '../../statements/statement-view.js';
import { deliveryLog } from '../../webhooks/delivery-rows.js';
import { listEndpoints } from '../../webhooks/endpoints.js';
import { disableEndpointBy, registerEndpoint } from '../../webhooks/endpoint-commands.js';
import type { RouteDeps } from '../deps.js';
import {
  accountHistoryLineSchema,
  accountViewSchema,
  idParams,
  instantParam,
  problems,
  refundViewSchema,
  statementViewSchema,
  text,
  webhookDeliverySchema,
  webhookEndpointInput,
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

    const listQuery = z.object({
      state: z.enum(['new', 'active', 'suspended', 'closed']).optional(),
      search: z.string().trim().max(200).optional(),
      limit: z.coerce.number().int().min(1).max(500).default(100),
      // listAccounts refuses a cursor it did not give out.
      cursor: z.string().max(200).optional(),
    });
    app.get(
      '/v1/ops/accounts',
      { schema: { querystring: listQuery, response: { 200: z.object({ accounts: z.array(accountViewSchema), nextCursor: z.string().nullable() }), ...problems } }, config: read },
      async (request) => listAccounts(deps.sql, request.query),
    );

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

    // A closed account's balance sent back to the card: pending ones are driven again until answered, refused ones are an operator's to settle.
    app.get(
      '/v1/ops/accounts/:id/refunds',
      { schema: { params: idParams, response: { 200: z.object({ refunds: z.array(refundViewSchema) }), ...problems } }, config: read },
      async (request) => {
        if (!(await findAccount(deps.sql, request.params.id))) throw errors.accountNotFound();
        return { refunds: await deps.refunds.list(request.params.id) };
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
    app.post(
      '/v1/ops/webhooks',
      {
        schema: {
          body: webhookEndpointInput,
          response: { 201: z.object({ endpoint: webhookEndpointSchema, secret: z.string() }), ...problems },
        },
        config: admin,
      },
      async (request, reply) => reply.code(201).send(await registerEndpoint(deps.sql, request.body, by(request), deps.clock.now())),
    );

    app.get('/v1/ops/webhooks', { schema: { response: { 200: z.object({ endpoints: z.array(webhookEndpointSchema) }), ...problems } }, config: read }, async () => ({
      endpoints: await listEndpoints(deps.sql),
    }));

    app.delete('/v1/ops/webhooks/:id', { schema: { params: idParams, response: { 200: z.object({ endpoint: webhookEndpointSchema }), ...problems } }, config: admin }, async (request) => {
      const endpoint = await disableEndpointBy(deps.sql, request.params.id, by(request), deps.clock.now());
      if (!endpoint) throw errors.webhookNotFound();
      return { endpoint };
    });

    app.get(
      '/v1/ops/webhooks/:id/deliveries',
      {
        schema: {
          params: idParams,
          querystring: z.object({ state: z.enum(['pending', 'delivered', 'failed', 'cancelled']).optional(), limit: z.coerce.number().int().min(1).max(500).default(100) }),
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
