import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { findAccount } from '../../accounts/accounts.js';
import { accountHistory } from '../../accounts/account-rows.js';
import { changeAccount, changeCard, changePassword } from '../../accounts/self-service.js';
import { listLiveTokens } from '../../accounts/tokens.js';
import { clientOrigin } from '../../cluster/forwarding.js';
import { EDGE_PREFIX } from '../../edge/edge.js';
import { errors } from '../../errors.js';
import type { SessionView } from '../../sessions/session-view.js';
import { customerAuth } from '../auth.js';
import { findQuote, quoteFor } from '../../quotes/quotes.js';
import { quoteView } from '../../quotes/quote-view.js';
import { answerUsage, usageQuerySchema, usageResponses, usageWindow } from '../routes/usage-reports.js';
import type { RouteDeps } from '../deps.js';
import { clientGone } from '../client-gone.js';
import { idempotencyHooks } from '../idempotency.js';
import { openSessionSchema, quoteSchema } from '../open-schema.js';
import { limitedBy, limitersFor } from '../rate-limits.js';
import {
  accountHistoryLineSchema,
  accountViewSchema,
  cardInput,
  idParams,
  positiveAmount,
  problems,
  quoteViewSchema,
  refundViewSchema,
  secret,
  sessionViewSchema,
  text,
  statementViewSchema,
  textBody,
  tokenViewSchema,
  topUpViewSchema,
} from '../schemas.js';
import { findStatement, listStatements } from '../../statements/statement-sql.js';
import { statementFile, statementView } from '../../statements/statement-view.js';

/**
 * Customers' views of their sessions, with how to reach the service while one is active (the
 * edge's URL for it, its access token, derived so the same each time, and until when) and what
 * it did through the edge.
 */
async function customerViews(deps: RouteDeps, request: FastifyRequest, views: SessionView[]) {
  const traffic = await deps.edge.trafficOf(views.map((view) => view.id));
  const base = deps.edgePublicUrl ?? clientOrigin(request);
  return views.map((view) => ({
    ...view,
    traffic: traffic.get(view.id)!,
    access:
      view.state === 'active' && view.cutoffAt !== null && deps.edge.lets(view.id, Date.parse(view.cutoffAt))
        ? { url: `${base}${EDGE_PREFIX}${view.id}`, token: deps.edge.tokenFor(view.id), expiresAt: view.cutoffAt }
        : null,
  }));
}

export const customerView = async (deps: RouteDeps, request: FastifyRequest, view: SessionView) => (await customerViews(deps, request, [view]))[0]!;

/** What a customer may do with their bearer token: their account and their sessions. */
export function customerApi(deps: RouteDeps): FastifyPluginAsyncZod {
  const { limits } = deps;
  const openBody = openSessionSchema(limits);
  const quoteBody = quoteSchema(limits);
  const sessionAnswer = { response: { 200: sessionViewSchema, 201: sessionViewSchema, 202: sessionViewSchema, ...problems } };

  const plugin: FastifyPluginAsyncZod = async (app) => {
    app.addHook('onRequest', customerAuth(deps.tokens));
    idempotencyHooks(app, { store: deps.idempotency, clock: deps.clock });
    const { opensPerAccount, topUpsPerAccount, passwordChangesPerAccount } = limitersFor(app, deps.rateLimits);
    // Top-ups charge the card: as many a minute as opens, counted apart.

    app.get('/v1/auth/tokens', { schema: { response: { 200: z.object({ tokens: z.array(tokenViewSchema) }), ...problems } } }, async (request) => ({
      tokens: await listLiveTokens(deps.sql, request.accountId, request.tokenId, deps.clock.now()),
    }));

    // Log out: the token this request carries stops working at once.
    app.delete('/v1/auth/tokens/current', { schema: { response: { 204: z.null(), ...problems } } }, async (request, reply) => {
      await deps.tokens.revoke(request.accountId, request.tokenId);
      return reply.code(204).send(null);
    });

    app.delete('/v1/auth/tokens/:id', { schema: { params: idParams, response: { 204: z.null(), ...problems } } }, async (request, reply) => {
      if (!(await deps.tokens.revoke(request.accountId, request.params.id))) throw errors.tokenNotFound();
      return reply.code(204).send(null);
    });

    // The customer's own usage, per service and period.
    app.get('/v1/account/usage', { schema: { querystring: usageQuerySchema, response: usageResponses } }, async (request, reply) => {
      const { serviceId, period, timeZone, format } = request.query;
      const window = usageWindow(request.query, deps.clock.now());
      return answerUsage(deps.sql, reply, { by: 'service', accountId: request.accountId, serviceId, period, timeZone, ...window }, format);
    });

    const accountAnswer = { response: { 200: z.object({ account: accountViewSchema }), ...problems } };
    const theAccount = async (accountId: string) => {
      const account = await findAccount(deps.sql, accountId);
      if (!account) throw errors.unauthenticated();
      return { account };
    };
    // A wrong current password is an argon2 check like a log-in: counted per account as log-ins are per e-mail.

    app.get('/v1/account', { schema: accountAnswer }, async (request) => theAccount(request.accountId));

    // Self-service: the card, the outstanding limit, the password, closing. A closed account has no token left to ask with.
    app.put('/v1/account/card', { schema: { body: z.object({ card: cardInput }), ...accountAnswer } }, async (request) => {
      await deps.accountStates.require(request.accountId, 'self_service');
      await changeCard(deps, request.accountId, request.body.card);
      return theAccount(request.accountId);
    });

    const accountChange = z
      .object({
        outstandingLimit: positiveAmount(2, limits.maxAmountMicros).optional(),
        paymentMode: z.enum(['card', 'prepaid']).optional(),
        statementPeriod: z.enum(['month', 'week']).optional(),
      })
      .refine((body) => Object.values(body).some((v) => v !== undefined), 'give outstandingLimit, paymentMode or statementPeriod');
    app.patch('/v1/account', { schema: { body: accountChange, ...accountAnswer } }, async (request) => {
      await deps.accountStates.require(request.accountId, 'self_service');
      await changeAccount(deps.sql, request.accountId, request.body);
      return theAccount(request.accountId);
    });

    app.get('/v1/account/statements', { schema: { response: { 200: z.object({ statements: z.array(statementViewSchema) }), ...problems } } }, async (request) => ({
      statements: (await listStatements(deps.sql, request.accountId)).map(statementView),
    }));

    app.get(
      '/v1/account/statements/:id',
      {
        schema: {
          params: idParams,
          querystring: z.object({ format: z.enum(['json', 'csv', 'pdf']).default('json') }),
          response: { 200: z.union([statementViewSchema, textBody]), ...problems },
        },
      },
      async (request, reply) => {
        const stored = await findStatement(deps.sql, request.params.id, request.accountId);
        if (!stored) throw errors.statementNotFound();
        const view = statementView(stored);
        if (request.query.format === 'json') return view;
        const { type, filename, body } = await statementFile(view, request.query.format, (await theAccount(request.accountId)).account);
        // Fastify sends a Buffer as it is, never through the response schema's serializer; the type only knows the schema.
        return reply.type(type).header('content-disposition', `attachment; filename="${filename}"`).send(body as string);
      },
    );

    // A prepaid balance grows by a card charge (src/accounts/top-ups.ts); a retry with the same Idempotency-Key charges once.
    app.post(
      '/v1/account/top-ups',
      {
        schema: { body: z.object({ amount: positiveAmount(2, limits.maxAmountMicros) }), response: { 201: z.object({ topUp: topUpViewSchema, account: accountViewSchema }), ...problems } },
        config: { idempotent: 'pending-resource' },
        // Counted before the Idempotency-Key is claimed, as opens are: a card charge per request is what card testing wants.
        onRequest: limitedBy(topUpsPerAccount),
      },
      async (request, reply) => {
        await deps.accountStates.require(request.accountId, 'self_service');
        const topUp = await deps.topUps.topUp(request.accountId, request.body.amount, request.idempotency?.resourceId ?? undefined);
        return reply.code(201).send({ topUp, ...(await theAccount(request.accountId)) });
      },
    );

    app.get('/v1/account/top-ups', { schema: { response: { 200: z.object({ topUps: z.array(topUpViewSchema) }), ...problems } } }, async (request) => ({
      topUps: await deps.topUps.list(request.accountId),
    }));

    app.put(
      '/v1/account/password',
      {
        schema: { body: z.object({ currentPassword: secret(1, 200), newPassword: secret(8, 200) }), response: { 204: z.null(), ...problems } },
        preHandler: limitedBy(passwordChangesPerAccount),
      },
      async (request, reply) => {
        await deps.accountStates.require(request.accountId, 'self_service');
        const revoked = await changePassword(deps, { accountId: request.accountId, tokenId: request.tokenId, ...request.body });
        revoked.forEach((hash) => deps.tokens.forget(hash));
        return reply.code(204).send(null);
      },
    );

    // The body (a reason) is optional: a POST without one reaches the schema as null.
    // The answer is the customer's last look (their tokens go with the close): the balance's refunds to the card included.
    app.post(
      '/v1/account/close',
      { schema: { body: z.object({ reason: text(500).optional() }).nullish(), response: { 200: z.object({ account: accountViewSchema, refunds: z.array(refundViewSchema) }), ...problems } } },
      async (request) => {
        const { account } = await theAccount(request.accountId);
        await deps.accountCommands.close(request.accountId, account, request.body?.reason ?? 'closed by the customer');
        return { ...(await theAccount(request.accountId)), refunds: await deps.refunds.list(request.accountId) };
      },
    );

    app.get('/v1/account/history', { schema: { response: { 200: z.object({ history: z.array(accountHistoryLineSchema) }), ...problems } } }, async (request) => ({
      history: await accountHistory(deps.sql, request.accountId),
    }));

    // Counted before the Idempotency-Key is claimed (preHandler): a 429 is never kept as a key's answer.
    app.post('/v1/sessions', { schema: { body: openBody, ...sessionAnswer }, config: { idempotent: 'resource' }, onRequest: limitedBy(opensPerAccount) }, async (request, reply) => {
      const { serviceId, maxMinutes, maxCharge, waitSeconds, quoteId } = request.body;
      const { view, pending } = await deps.commands.open({
        accountId: request.accountId,
        serviceId,
        quoteId,
        maxMs: maxMinutes === undefined ? null : Math.round(maxMinutes * 60_000),
        maxChargeMicros: maxCharge ?? null,
        waitMs: Math.round(waitSeconds * 1000),
        sessionId: request.idempotency?.resourceId ?? undefined,
        signal: clientGone(reply),
        answerKept: request.idempotency !== null,
      });
      return reply.code(pending ? 202 : 201).send(await customerView(deps, request, view));
    });

    // A price agreed before use: the breakdown and the total, at the tariff as it is now.
    app.post('/v1/quotes', { schema: { body: quoteBody, response: { 201: quoteViewSchema, ...problems } } }, async (request, reply) => {
      const quote = await quoteFor(deps, { accountId: request.accountId, ...request.body });
      return reply.code(201).send(quoteView(quote));
    });

    app.get('/v1/quotes/:id', { schema: { params: idParams, response: { 200: quoteViewSchema, ...problems } } }, async (request) => {
      const quote = await findQuote(deps.sql, request.params.id, request.accountId);
      if (!quote) throw errors.quoteNotFound();
      return quoteView(quote);
    });

    app.get('/v1/sessions', { schema: { response: { 200: z.object({ sessions: z.array(sessionViewSchema) }), ...problems } } }, async (request) => ({
      sessions: await customerViews(deps, request, await deps.queries.list(request.accountId)),
    }));

    app.get('/v1/sessions/:id', { schema: { params: idParams, ...sessionAnswer } }, async (request) => {
      const session = await deps.queries.view(request.accountId, request.params.id);
      if (!session) throw errors.sessionNotFound();
      return customerView(deps, request, session);
    });

    app.post(
      '/v1/sessions/:id/extend',
      { schema: { params: idParams, body: z.object({ maxCharge: positiveAmount(2, limits.maxAmountMicros) }), ...sessionAnswer }, config: { idempotent: 'action' } },
      async (request) => customerView(deps, request, await deps.commands.extend(request.accountId, request.params.id, request.body.maxCharge)),
    );

    app.post('/v1/sessions/:id/logoff', { schema: { params: idParams, ...sessionAnswer }, config: { idempotent: 'action' } }, async (request, reply) => {
      const { view, settled } = await deps.commands.logoff(request.accountId, request.params.id);
      return reply.code(settled ? 200 : 202).send(await customerView(deps, request, view));
    });
  };
  return Object.assign(plugin, { [Symbol.for('fastify.display-name')]: 'customer-api' });
}
