import type {} from '@fastify/csrf-protection';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { END_REASONS, sessionMachine } from '../../../machines/session/index.js';
import { serversView } from '../../admission/occupancy.js';
import { formatAmount, inCents } from '../../billing/money.js';
import { AppError } from '../../errors.js';
import { limitedBy, limiter, MINUTE_MS } from '../../http/rate-limits.js';
import { positiveAmount } from '../../http/schemas.js';
import { logInOperator, revokeConsoleSession } from '../../operators/console-sessions.js';
import { sessionLog, sessionLogCsv } from '../../reports/session-log.js';
import { usageReport } from '../../reports/usage.js';
import { sessionHistory } from '../../sessions/ops-queries.js';
import { CONSOLE_COOKIE, sessionCookie } from '../cookies.js';
import { doneMessage, fieldErrors, formFields, numberField, optionalText } from '../forms.js';
import { html } from '../html.js';
import type { WebDeps } from '../web-deps.js';
import { periodStarts, usageChart, type Metric } from './charts.js';
import { consoleKit, sendPage } from './console-kit.js';
import { drawMachine } from './machine-drawing.js';
import { consoleLogInPage, consolePage, consoleSessionPage, SESSION_STATES, serversPage, sessionLogPage, sessionsPage, timeline, type ServerRow } from './pages.js';

const hidden = { hide: true } as const;
const idParams = z.object({ id: z.uuid() });
const read = { permission: 'read' } as const;
const rescue = { permission: 'rescue' } as const;
const admin = { permission: 'admin' } as const;
const DAY_MS = 86_400_000;
const DONE: Record<string, string> = {
  saved: 'Saved.',
  retry: 'Retry sent to the session.',
  terminate: 'Terminate sent to the session.',
  void: 'Void sent to the session.',
};
const date = z.iso.date();

/**
 * The operators' console (/ops): the operator found from the console cookie and checked by the
 * API's own admitOperator (same roles, same permissions per route); every change goes through the
 * same commands and catalogue calls as the operator API, so it is audited the same way.
 */
export function consoleRoutes(site: FastifyInstance, deps: WebDeps): void {
  const app = site.withTypeProvider<ZodTypeProvider>();
  const { sql, clock } = deps;
  const logInPerAddress = limiter(app, { max: deps.rateLimits.loginPerAddress, windowMs: MINUTE_MS });
  const price = positiveAmount(6, deps.limits.maxPricePerMinuteMicros);
  const cap = z.number().int().min(0).max(10_000_000);

  const { operatorsOnly, stillOperator, context, by, may } = consoleKit(deps);
  const doneFlash = (done: string | undefined) => {
    const text = doneMessage(DONE, done);
    return text ? { kind: 'ok' as const, text } : null;
  };
  const services = () => deps.catalogue.services().map((s) => ({ id: s.id, name: s.name }));
  const serviceName = (id: string) => deps.catalogue.service(id)?.name ?? id;
  const doneQuery = z.object({ done: z.string().max(20).optional() });

  const serverRows = (): ServerRow[] =>
    serversView(deps.occupancy, clock.now()).map((server) => ({
      ...server,
      services: server.services.map((s) => {
        const record = deps.catalogue.service(s.id);
        return { ...s, pricePerMinute: record ? formatAmount(record.pricePerMinuteMicros) : '—', currency: record?.currency ?? '' };
      }),
    }));

  app.get('/ops/login', { schema: hidden }, async (request, reply) => sendPage(reply, consoleLogInPage(await context(request, reply))));

  app.post('/ops/login', { schema: hidden, onRequest: limitedBy(logInPerAddress), preValidation: app.csrfProtection }, async (request, reply) => {
    const form = formFields(request.body);
    try {
      const { token } = await logInOperator(deps.console, (form.name ?? '').slice(0, 100), (form.password ?? '').slice(0, 200));
      reply.setCookie(CONSOLE_COOKIE, token, { ...sessionCookie(request), sameSite: 'strict' });
      return reply.redirect('/ops', 303);
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      const text = error.code === 'INVALID_CREDENTIALS' ? 'Operator name or password is wrong.' : error.message;
      return sendPage(reply, consoleLogInPage(await context(request, reply), form.name ?? '', `${text} (${error.code})`), error.status);
    }
  });

  app.post('/ops/logout', { schema: hidden, preValidation: app.csrfProtection }, async (request, reply) => {
    const token = request.cookies[CONSOLE_COOKIE];
    if (token) await revokeConsoleSession(sql, token, clock.now());
    reply.clearCookie(CONSOLE_COOKIE, { path: '/' });
    return reply.redirect('/ops/login', 303);
  });

  app.get('/ops', { schema: { ...hidden, querystring: doneQuery }, config: read, preHandler: operatorsOnly }, async (request, reply) =>
    sendPage(reply, serversPage(await context(request, reply, doneFlash(request.query.done)), serverRows(), may(request, 'admin'))),
  );

  app.get('/ops/occupancy/events', { schema: hidden, config: { ...read, longLived: true }, preHandler: operatorsOnly }, async (request, reply) => {
    deps.live.stream(request, reply, { stillAllowed: stillOperator(request), view: async () => ({ servers: serverRows() }), occupancy: true, everyMs: 5000 });
  });

  /** A row's change: saved, or the page again with the refusal on top and, for bad input, each error by its field in that row. */
  const changed = async (request: FastifyRequest, reply: FastifyReply, change: (form: Record<string, string>) => Promise<unknown>) => {
    const form = formFields(request.body);
    const id = (request.params as { id: string }).id;
    try {
      await change(form);
      return reply.redirect('/ops?done=saved', 303);
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      const refused = { id, values: form, errors: (error.extra.fields ?? {}) as Record<string, string> };
      return sendPage(reply, serversPage(await context(request, reply, { kind: 'error', text: `${error.message} (${error.code})` }), serverRows(), true, refused), error.status);
    }
  };
  const invalid = (of: string, fields: Record<string, string>) => new AppError(400, 'VALIDATION_FAILED', `${of}: ${Object.values(fields).join('; ')}`, { fields });
  const nameOf = (kind: 'server' | 'service', id: string) =>
    (kind === 'server' ? serverRows().find((server) => server.id === id)?.name : deps.catalogue.service(id)?.name) ?? id;

  app.post('/ops/servers/:id', { schema: { ...hidden, params: idParams }, config: admin, preValidation: app.csrfProtection, preHandler: operatorsOnly }, async (request, reply) =>
    changed(request, reply, async (form) => {
      const parsed = z.object({ maxUsers: cap }).safeParse({ maxUsers: numberField(form.maxUsers) });
      if (!parsed.success) throw invalid(nameOf('server', request.params.id), fieldErrors(parsed.error, { maxUsers: 'Cap' }));
      await deps.catalogue.updateServer(request.params.id, parsed.data, by(request));
    }),
  );

  app.post('/ops/services/:id', { schema: { ...hidden, params: idParams }, config: admin, preValidation: app.csrfProtection, preHandler: operatorsOnly }, async (request, reply) =>
    changed(request, reply, async (form) => {
      const name = nameOf('service', request.params.id);
      const parsed = z.object({ maxUsers: cap.optional(), pricePerMinute: price.optional() }).safeParse({ maxUsers: numberField(form.maxUsers), pricePerMinute: optionalText(form.pricePerMinute) });
      if (!parsed.success) throw invalid(name, fieldErrors(parsed.error, { maxUsers: 'Cap', pricePerMinute: 'Price per minute' }));
      // Nothing to change is refused, as the API's PATCH {} is, not saved as a change.
      if (parsed.data.maxUsers === undefined && parsed.data.pricePerMinute === undefined) {
        throw invalid(name, { maxUsers: 'Give a cap, a price per minute, or both', pricePerMinute: 'Give a cap, a price per minute, or both' });
      }
      await deps.catalogue.updateService(request.params.id, { maxUsers: parsed.data.maxUsers, pricePerMinuteMicros: parsed.data.pricePerMinute }, by(request));
    }),
  );

  const listQuery = z.object({
    state: z.enum(SESSION_STATES).or(z.literal('')).optional(),
    stuck: z.enum(['true', 'false']).optional(),
    serviceId: z.uuid().or(z.literal('')).optional(),
    cursor: z.string().max(200).optional(),
  });
  app.get('/ops/sessions', { schema: { ...hidden, querystring: listQuery }, config: read, preHandler: operatorsOnly }, async (request, reply) => {
    const { state, stuck, serviceId, cursor } = request.query;
    const page = await deps.queries.opsList({ state: state || undefined, serviceId: serviceId || undefined, stuck: stuck === 'true' ? true : undefined, limit: 100, cursor });
    return sendPage(reply, sessionsPage(await context(request, reply), page.sessions, { state, stuck, serviceId }, services(), page.nextCursor, serviceName, may(request, 'rescue')));
  });

  const opsSessionOf = async (id: string) => {
    const session = await deps.queries.opsView(id);
    if (!session) throw new AppError(404, 'SESSION_NOT_FOUND', 'No session has this id.');
    return session;
  };

  app.get('/ops/sessions/:id', { schema: { ...hidden, params: idParams, querystring: doneQuery }, config: read, preHandler: operatorsOnly }, async (request, reply) => {
    const session = await opsSessionOf(request.params.id);
    const history = await sessionHistory(sql, session.id);
    const ctx = await context(request, reply, doneFlash(request.query.done));
    return sendPage(reply, consoleSessionPage(ctx, session, history, drawMachine(sessionMachine, session.path), serviceName(session.serviceId), may(request, 'rescue')));
  });

  // Not every transition is a domain event (a capture's retries are not): the page is also refreshed each second while open.
  app.get('/ops/sessions/:id/events', { schema: { ...hidden, params: idParams }, config: { ...read, longLived: true }, preHandler: operatorsOnly }, async (request, reply) => {
    const id = request.params.id;
    await opsSessionOf(id);
    deps.live.stream(request, reply, {
      stillAllowed: stillOperator(request),
      view: async () => {
        const session = await opsSessionOf(id);
        return {
          path: session.path,
          stuck: session.stuck ? `yes: ${session.stuckReason ?? ''}` : 'no',
          accrued: `${inCents(session.accrued)} ${session.currency}`,
          timeline: timeline(await sessionHistory(sql, id)).value,
        };
      },
      events: (event) => event.payload.sessionId === id,
      everyMs: 1000,
    });
  });

  app.post(
    '/ops/sessions/:id/:action',
    { schema: { ...hidden, params: idParams.extend({ action: z.enum(['terminate', 'retry', 'void']) }) }, config: rescue, preValidation: app.csrfProtection, preHandler: operatorsOnly },
    async (request, reply) => {
      const { id, action } = request.params;
      try {
        await deps.commands.opsAction(id, action, by(request));
        return reply.redirect(`/ops/sessions/${id}?done=${action}`, 303);
      } catch (error) {
        if (!(error instanceof AppError)) throw error;
        const session = await opsSessionOf(id);
        const ctx = await context(request, reply, { kind: 'error', text: `${error.message} (${error.code})` });
        return sendPage(reply, consoleSessionPage(ctx, session, await sessionHistory(sql, id), drawMachine(sessionMachine, session.path), serviceName(session.serviceId), true), error.status);
      }
    },
  );

  const logQuery = z.object({
    serviceId: z.uuid().or(z.literal('')).optional(),
    endReason: z.enum(END_REASONS).or(z.literal('')).optional(),
    from: date.or(z.literal('')).optional(),
    to: date.or(z.literal('')).optional(),
  });
  const logFilter = (query: z.infer<typeof logQuery>, limit: number) => ({
    limit,
    offset: 0,
    serviceId: query.serviceId || undefined,
    endReason: query.endReason || undefined,
    openedFrom: query.from ? new Date(`${query.from}T00:00:00Z`) : undefined,
    openedTo: query.to ? new Date(`${query.to}T00:00:00Z`) : undefined,
  });

  app.get('/ops/log', { schema: { ...hidden, querystring: logQuery }, config: read, preHandler: operatorsOnly }, async (request, reply) => {
    const rows = await sessionLog(sql, logFilter(request.query, 500));
    return sendPage(reply, sessionLogPage(await context(request, reply), rows, request.query, services()));
  });

  app.get('/ops/log.csv', { schema: { ...hidden, querystring: logQuery }, config: read, preHandler: operatorsOnly }, async (request, reply) => {
    const rows = await sessionLog(sql, logFilter(request.query, 100_000));
    return reply.type('text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="session-log.csv"').send(sessionLogCsv(rows));
  });

  app.get('/ops/charts', { schema: { ...hidden, querystring: z.object({ period: z.enum(['hour', 'day']).default('hour') }) }, config: read, preHandler: operatorsOnly }, async (request, reply) => {
    const { period } = request.query;
    const now = clock.now();
    // The last two days by the hour, or the last thirty by the day (the usage report's own bounds hold these).
    const to = (Math.floor(now / (period === 'hour' ? 3_600_000 : DAY_MS)) + 1) * (period === 'hour' ? 3_600_000 : DAY_MS);
    const from = to - (period === 'hour' ? 2 * DAY_MS : 30 * DAY_MS);
    const rows = await usageReport(sql, { period, by: 'service', from: new Date(from), to: new Date(to), timeZone: 'UTC', asOf: new Date(now) });
    const periods = periodStarts(from, to, period);
    const label = (iso: string) => (period === 'hour' ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(0, 10));
    const metrics: Metric[] = ['sessions', 'minutes', 'revenue'];
    return sendPage(
      reply,
      consolePage(
        await context(request, reply),
        `Usage per ${period}`,
        html`<p>Per service, UTC. <a href="/ops/charts?period=${period === 'hour' ? 'day' : 'hour'}">Per ${period === 'hour' ? 'day' : 'hour'} instead</a>.</p>
${metrics.map((metric) => html`<h2>${metric[0]!.toUpperCase()}${metric.slice(1)} per ${period}</h2>${usageChart(rows, metric, periods, label)}`)}`,
      ),
    );
  });
}
