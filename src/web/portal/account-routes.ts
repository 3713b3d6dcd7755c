import { randomUUID } from 'node:crypto';
import type {} from '@fastify/csrf-protection';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { findAccount } from '../../accounts/accounts.js';
import { changeAccount, changeCard, changePassword } from '../../accounts/self-service.js';
import { AppError, errors as appErrors } from '../../errors.js';
import { limitedBy, limitersFor } from '../../http/rate-limits.js';
import { cardInput, positiveAmount, secret, text } from '../../http/schemas.js';
import { findStatement, listStatements } from '../../statements/statement-sql.js';
import { statementFile, statementView } from '../../statements/statement-view.js';
import { CUSTOMER_COOKIE } from '../cookies.js';
import { doneMessage, fieldErrors, formFields, numberField, optionalText } from '../forms.js';
import type { WebDeps } from '../web-deps.js';
import { ACCOUNT_LABELS, accountPage, closedPage, type FormState } from './account-pages.js';
import { portalKit, sendPage } from './portal-kit.js';

const hidden = { hide: true } as const;
const DONE = {
  payment: 'Saved how you pay.',
  topup: 'Your balance was topped up.',
  limit: 'Your outstanding limit was changed.',
  card: 'Your card was changed; the old one is forgotten.',
  password: 'Your password was changed; every other device was logged out.',
} as const;
type Done = keyof typeof DONE;
/** Where a refusal's code belongs on the page: next to the field it is about. */
const FIELD_OF_CODE: Record<string, string> = {
  LIMIT_BELOW_RESERVED: 'outstandingLimit',
  WRONG_PASSWORD: 'currentPassword',
  CARD_DECLINED: 'card.number',
  PAYMENT_MODE_SET_BY_OPERATORS: 'paymentMode',
};
const CARD_FIELDS: Record<string, string> = { number: 'card.number', expiry: 'card.expMonth', cvc: 'card.cvc' };

/**
 * The customer's account page and its self-service forms (issue 14): how they pay and a top-up,
 * the outstanding limit, the card, the password, statements to download, closing. Each form calls
 * what the customer API's route calls, after the same state check (self_service).
 */
export function portalAccountRoutes(site: FastifyInstance, deps: WebDeps): void {
  const app = site.withTypeProvider<ZodTypeProvider>();
  const { context, customersOnly } = portalKit(deps);
  const { limits } = deps;
  const { topUpsPerAccount, passwordChangesPerAccount } = limitersFor(app, deps.rateLimits);
  const serviceName = (id: string) => deps.catalogue.service(id)?.name ?? 'a service no longer offered';

  const page = async (request: FastifyRequest, reply: FastifyReply, flash: { kind: 'ok' | 'error'; text: string } | null, state: FormState = {}, status = 200) => {
    const account = await findAccount(deps.sql, request.accountId);
    if (!account) return customersOnly(request, reply);
    const [sessions, statements, topUps] = await Promise.all([deps.queries.list(request.accountId), listStatements(deps.sql, request.accountId), deps.topUps.list(request.accountId)]);
    const data = { account, sessions, statements: statements.map(statementView), topUps, serviceName, topUpId: randomUUID() };
    return sendPage(reply, accountPage(await context(request, reply, flash), data, state), status);
  };

  app.get('/account', { schema: { ...hidden, querystring: z.object({ done: z.string().max(20).optional() }) }, preHandler: customersOnly }, async (request, reply) => {
    const done = doneMessage(DONE, request.query.done);
    return page(request, reply, done ? { kind: 'ok', text: done } : null);
  });

  /**
   * One self-service form: its fields read by its schema (errors next to each field), then the
   * change; a refusal with a code is shown next to the field it is about, or above the page.
   */
  const selfService = <S extends z.ZodType>(done: Done, schema: S, read: (form: Record<string, string>) => unknown, change: (request: FastifyRequest, input: z.output<S>) => Promise<unknown>, keep: (form: Record<string, string>) => Record<string, string | undefined>) =>
    async (request: FastifyRequest, reply: FastifyReply) => {
      const form = formFields(request.body);
      const values = keep(form);
      const parsed = schema.safeParse(read(form));
      if (!parsed.success) return page(request, reply, null, { errors: fieldErrors(parsed.error, ACCOUNT_LABELS), values }, 400);
      try {
        await deps.accountStates.require(request.accountId, 'self_service');
        await change(request, parsed.data);
      } catch (error) {
        if (!(error instanceof AppError)) throw error;
        const field = error.code === 'CARD_INVALID' ? (CARD_FIELDS[String(error.extra.field)] ?? 'card.number') : FIELD_OF_CODE[error.code];
        const message = `${error.message} (${error.code})`;
        return page(request, reply, null, field ? { errors: { [field]: message }, values } : { formError: message, values }, error.status);
      }
      return reply.redirect(`/account?done=${done}`, 303);
    };
  const post = (url: string, handler: ReturnType<typeof selfService>, preHandler: ((request: FastifyRequest, reply: FastifyReply) => Promise<unknown>)[] = []) =>
    app.post(url, { schema: hidden, preValidation: app.csrfProtection, preHandler: [customersOnly, ...preHandler] }, handler);

  post(
    '/account/payment',
    selfService(
      'payment',
      z.object({ paymentMode: z.enum(['card', 'prepaid']).optional(), statementPeriod: z.enum(['month', 'week']) }),
      (form) => ({ paymentMode: optionalText(form.paymentMode), statementPeriod: form.statementPeriod }),
      async (request, input) => {
        await changeAccount(deps.sql, request.accountId, input);
      },
      (form) => ({ paymentMode: form.paymentMode, statementPeriod: form.statementPeriod }),
    ),
  );

  post(
    '/account/top-up',
    selfService(
      'topup',
      z.object({ amount: positiveAmount(2, limits.maxAmountMicros), topUpId: z.uuid() }),
      (form) => ({ amount: optionalText(form.amount), topUpId: form.topUpId }),
      (request, input) => deps.topUps.topUp(request.accountId, input.amount, input.topUpId),
      (form) => ({ amount: form.amount }),
    ),
    [limitedBy(topUpsPerAccount)],
  );

  post(
    '/account/limit',
    selfService(
      'limit',
      z.object({ outstandingLimit: positiveAmount(2, limits.maxAmountMicros) }),
      (form) => ({ outstandingLimit: optionalText(form.outstandingLimit) }),
      (request, input) => changeAccount(deps.sql, request.accountId, { outstandingLimit: input.outstandingLimit }),
      (form) => ({ outstandingLimit: form.outstandingLimit }),
    ),
  );

  // The card number and CVC are never sent back into the page (issue 12's rule for sign-up).
  post(
    '/account/card',
    selfService(
      'card',
      z.object({ card: cardInput }),
      (form) => ({ card: { number: form['card.number'], expMonth: numberField(form['card.expMonth']), expYear: numberField(form['card.expYear']), cvc: form['card.cvc'] } }),
      (request, input) => changeCard(deps, request.accountId, input.card),
      (form) => ({ 'card.expMonth': form['card.expMonth'], 'card.expYear': form['card.expYear'] }),
    ),
  );

  post(
    '/account/password',
    selfService(
      'password',
      z.object({ currentPassword: secret(1, 200), newPassword: secret(8, 200) }),
      (form) => ({ currentPassword: form.currentPassword ?? '', newPassword: form.newPassword ?? '' }),
      async (request, input) => {
        const revoked = await changePassword(deps, { accountId: request.accountId, tokenId: request.tokenId, ...input });
        revoked.forEach((hash) => deps.tokens.forget(hash));
      },
      () => ({}),
    ),
    [limitedBy(passwordChangesPerAccount)],
  );

  app.post('/account/close', { schema: hidden, preValidation: app.csrfProtection, preHandler: customersOnly }, async (request, reply) => {
    const form = formFields(request.body);
    const parsed = z.object({ reason: text(500).optional() }).safeParse({ reason: optionalText(form.reason) });
    if (!parsed.success) return page(request, reply, null, { errors: fieldErrors(parsed.error, ACCOUNT_LABELS), values: { reason: form.reason } }, 400);
    const account = await findAccount(deps.sql, request.accountId);
    if (!account) return customersOnly(request, reply);
    try {
      await deps.accountCommands.close(request.accountId, account, parsed.data.reason ?? 'closed by the customer');
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      return page(request, reply, null, { formError: `${error.message} (${error.code})`, values: { reason: form.reason } }, error.status);
    }
    // Closing revoked every token of the account, this cookie's too.
    reply.clearCookie(CUSTOMER_COOKIE, { path: '/' });
    const refunds = await deps.refunds.list(request.accountId);
    return sendPage(reply, closedPage({ ...(await context(request, reply)), signedIn: false }, refunds, account.card));
  });

  app.get(
    '/account/statements/:id',
    { schema: { ...hidden, params: z.object({ id: z.uuid() }), querystring: z.object({ format: z.enum(['json', 'csv', 'pdf']).default('json') }) }, preHandler: customersOnly },
    async (request, reply) => {
      const [account, stored] = await Promise.all([findAccount(deps.sql, request.accountId), findStatement(deps.sql, request.params.id, request.accountId)]);
      if (!account || !stored) throw appErrors.statementNotFound();
      const file = await statementFile(statementView(stored), request.query.format, account);
      return reply.type(file.type).header('content-disposition', `attachment; filename="${file.filename}"`).send(file.body);
    },
  );
}
