import type {} from '@fastify/csrf-protection';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AccountEvent } from '../../../machines/account/index.js';
import { accountHistory } from '../../accounts/account-rows.js';
import { findAccount, listAccounts } from '../../accounts/accounts.js';
import { AppError, errors as appErrors } from '../../errors.js';
import { text } from '../../http/schemas.js';
import { findStatement, listStatements } from '../../statements/statement-sql.js';
import { statementFile, statementView } from '../../statements/statement-view.js';
import { doneMessage, fieldErrors, formFields } from '../forms.js';
import type { WebDeps } from '../web-deps.js';
import { ACCOUNT_STATES, accountsPage, consoleAccountPage, STATE_ACTIONS, type StateAction } from './account-pages.js';
import { consoleKit, sendPage } from './console-kit.js';

const hidden = { hide: true } as const;
const idParams = z.object({ id: z.uuid() });
const DONE = { suspend: 'Account suspended.', resume: 'Account resumed.', close: 'Account closed.', 'payment-mode': 'Payment mode set.' } as const;
const doneQuery = z.object({ done: z.enum(['suspend', 'resume', 'close', 'payment-mode']).optional() });

/**
 * Customers' accounts in the console (issue 14): the list, one account with its state changes,
 * payment mode, balances, statements and history. Changes go through AccountCommands, as the
 * operator API's do, so the machine decides and the audit log records.
 */
export function consoleAccountRoutes(site: FastifyInstance, deps: WebDeps): void {
  const app = site.withTypeProvider<ZodTypeProvider>();
  const { operatorsOnly, context, by, may } = consoleKit(deps);
  const reasonSchema = z.object({ reason: text(500) });

  /** The changes the account's machine would take now (rule 12: the machine knows, the page asks). */
  const actionsOf = async (accountId: string): Promise<StateAction[]> => {
    const snapshot = await deps.accountStates.snapshotOf(accountId);
    if (!snapshot) return [];
    const base = { at: deps.clock.now(), by: { kind: 'operator' as const, id: null, name: 'console' }, reason: 'asking' };
    const events: Record<StateAction, AccountEvent> = {
      suspend: { type: 'SUSPEND', ...base, until: null },
      resume: { type: 'RESUME', ...base },
      close: { type: 'CLOSE', ...base, unsettledSessions: 0 },
    };
    return STATE_ACTIONS.map((a) => a.action).filter((action) => snapshot.can(events[action]));
  };

  const accountPage = async (
    request: FastifyRequest,
    reply: FastifyReply,
    id: string,
    options: { flash?: { kind: 'ok' | 'error'; text: string } | null; errors?: Record<string, string>; formError?: string | null; values?: Record<string, string>; status?: number } = {},
  ) => {
    const account = await findAccount(deps.sql, id);
    if (!account) throw appErrors.accountNotFound();
    const [history, statements, actions, refunds] = await Promise.all([accountHistory(deps.sql, id), listStatements(deps.sql, id), actionsOf(id), deps.refunds.list(id)]);
    const ctx = await context(request, reply, options.flash ?? null);
    const body = consoleAccountPage(ctx, {
      account,
      refunds,
      history,
      statements: statements.map(statementView),
      actions,
      canRescue: may(request, 'rescue'),
      canAdmin: may(request, 'admin'),
      errors: options.errors ?? {},
      formError: options.formError ?? null,
      values: options.values ?? {},
    });
    return sendPage(reply, body, options.status ?? 200);
  };

  /** Runs a change; a bad reason is shown next to its field, a refusal (the machine's, with its code) above the page. */
  const change = async (request: FastifyRequest, reply: FastifyReply, form: keyof typeof DONE, run: (reason: string, fields: Record<string, string>) => Promise<unknown>) => {
    const id = (request.params as { id: string }).id;
    const fields = formFields(request.body);
    const values = { ...fields, form };
    const parsed = reasonSchema.safeParse({ reason: fields.reason ?? '' });
    if (!parsed.success) {
      const { reason } = fieldErrors(parsed.error, { reason: 'Reason' });
      return accountPage(request, reply, id, { errors: { [`${form}.reason`]: reason ?? 'Enter a reason' }, values, status: 400 });
    }
    try {
      await run(parsed.data.reason, fields);
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      return accountPage(request, reply, id, { formError: `${error.message} (${error.code})`, values, status: error.status });
    }
    return reply.redirect(`/ops/accounts/${id}?done=${form}`, 303);
  };

  const listQuery = z.object({
    state: z.enum(ACCOUNT_STATES).or(z.literal('')).optional(),
    search: z.string().trim().max(200).optional(),
    cursor: z.string().max(200).optional(),
  });
  app.get('/ops/accounts', { schema: { ...hidden, querystring: listQuery }, config: { permission: 'read' }, preHandler: operatorsOnly }, async (request, reply) => {
    const { state, search, cursor } = request.query;
    const page = await listAccounts(deps.sql, { state: state || undefined, search: search || undefined, cursor, limit: 100 });
    return sendPage(reply, accountsPage(await context(request, reply), page.accounts, { state, search }, page.nextCursor));
  });

  app.get('/ops/accounts/:id', { schema: { ...hidden, params: idParams, querystring: doneQuery }, config: { permission: 'read' }, preHandler: operatorsOnly }, async (request, reply) => {
    const done = doneMessage(DONE, request.query.done);
    return accountPage(request, reply, request.params.id, { flash: done ? { kind: 'ok', text: done } : null });
  });

  app.post(
    '/ops/accounts/:id/payment-mode',
    { schema: { ...hidden, params: idParams }, config: { permission: 'admin' }, preValidation: app.csrfProtection, preHandler: operatorsOnly },
    async (request, reply) =>
      change(request, reply, 'payment-mode', async (reason, fields) => {
        const mode = z.enum(['card', 'prepaid', 'postpaid']).safeParse(fields.paymentMode);
        if (!mode.success) throw appErrors.validation('Choose card, prepaid or postpaid.');
        await deps.accountCommands.setPaymentMode(request.params.id, mode.data, by(request), reason);
      }),
  );

  app.post(
    '/ops/accounts/:id/:action',
    { schema: { ...hidden, params: idParams.extend({ action: z.enum(['suspend', 'resume', 'close']) }) }, config: { permission: 'rescue' }, preValidation: app.csrfProtection, preHandler: operatorsOnly },
    async (request, reply) => {
      const { id, action } = request.params;
      return change(request, reply, action, (reason) =>
        deps.accountCommands.byOperator(id, action === 'suspend' ? { kind: 'suspend', until: null } : { kind: action }, by(request), reason),
      );
    },
  );

  app.get(
    '/ops/accounts/:id/statements/:statementId',
    { schema: { ...hidden, params: idParams.extend({ statementId: z.uuid() }), querystring: z.object({ format: z.enum(['json', 'csv', 'pdf']).default('json') }) }, config: { permission: 'read' }, preHandler: operatorsOnly },
    async (request, reply) => {
      const [account, stored] = await Promise.all([findAccount(deps.sql, request.params.id), findStatement(deps.sql, request.params.statementId, request.params.id)]);
      if (!account || !stored) throw appErrors.statementNotFound();
      const file = await statementFile(statementView(stored), request.query.format, account);
      return reply.type(file.type).header('content-disposition', `attachment; filename="${file.filename}"`).send(file.body);
    },
  );
}
