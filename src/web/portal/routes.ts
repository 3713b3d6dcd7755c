import type {} from '@fastify/csrf-protection';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { signUp } from '../../accounts/accounts.js';
import { logIn } from '../../accounts/login.js';
import { AppError, errors } from '../../errors.js';
import { clientGone } from '../../http/client-gone.js';
import { ACCESS_QUERY } from '../../edge/credentials.js';
import { customerView } from '../../http/plugins/customer-api.js';
import type { SessionView } from '../../sessions/session-view.js';
import { openSessionSchema } from '../../http/open-schema.js';
import { limitedBy, limitersFor } from '../../http/rate-limits.js';
import { positiveAmount } from '../../http/schemas.js';
import { signUpSchema } from '../../http/sign-up-schema.js';
import { CUSTOMER_COOKIE, sessionCookie } from '../cookies.js';
import { doneMessage, fieldErrors, formFields, numberField, optionalText } from '../forms.js';
import type { WebDeps } from '../web-deps.js';
import { catalogueLive, catalogueRows } from './catalogue.js';
import { cataloguePage, logInPage, openSessionPage, sessionPage, SIGN_UP_LABELS, signUpPage, UUID } from './pages.js';
import { formOnce } from './form-once.js';
import { portalKit, sendPage } from './portal-kit.js';
import { sessionLive } from './session-live.js';

const idParams = z.object({ id: z.uuid() });
const hidden = { hide: true } as const;
const CARD_FIELDS: Record<string, string> = { number: 'card.number', expiry: 'card.expMonth', cvc: 'card.cvc' };
const refusalText = (error: AppError) => `${error.message} (${error.code})`;
const idOf = (request: FastifyRequest) => (request.params as { id: string }).id;
const DONE: Record<string, string> = { extended: 'The charge limit was raised.', loggedoff: 'You logged off.' };

/** Only a path on this site: a `next` pointing elsewhere would make the log-in page an open redirect. */
const localPath = (next: string | undefined) => (next && /^\/(?![/\\])[\x21-\x7e]{0,500}$/.test(next) ? next : undefined);

/**
 * The customer portal: pages over the same commands and queries as the JSON API (DESIGN rule 17),
 * the customer found from the session cookie by the API's own token check (admitCustomer).
 * Every form works without script; the script only keeps live numbers fresh.
 */
export function portalRoutes(site: FastifyInstance, deps: WebDeps): void {
  const app = site.withTypeProvider<ZodTypeProvider>();
  const { limits } = deps;
  const signUpBody = signUpSchema(limits);
  const openBody = openSessionSchema(limits);
  const csrf = { preValidation: app.csrfProtection };
  // Shared with the JSON API: a limit counts every try, whichever way it comes.
  const { signUpPerAddress, signUpPerEmail, loginPerAddress, loginPerEmail, opensPerAccount } = limitersFor(app, deps.rateLimits);

  const { signedIn, context, customersOnly } = portalKit(deps);
  /** The edge's address for the session with its access token, the JSON API's own (customerView); null unless the edge lets it in. */
  const serviceLink = async (request: FastifyRequest, view: SessionView) => {
    const { access } = await customerView(deps, request, view);
    return access ? `${access.url}/?${ACCESS_QUERY}=${encodeURIComponent(access.token)}` : null;
  };
  const serviceName = (id: string) => deps.catalogue.service(id)?.name ?? 'a service no longer offered';

  app.get('/', { schema: hidden }, async (request, reply) => sendPage(reply, cataloguePage(await context(request, reply), catalogueRows(deps))));

  app.get('/catalogue/events', { schema: hidden, config: { longLived: true } }, async (request, reply) => {
    deps.live.stream(request, reply, { view: async () => catalogueLive(catalogueRows(deps)), occupancy: true });
  });

  app.get('/signup', { schema: hidden }, async (request, reply) => sendPage(reply, signUpPage(await context(request, reply))));

  app.post('/signup', { schema: hidden, onRequest: limitedBy(signUpPerAddress), preValidation: app.csrfProtection, preHandler: limitedBy(signUpPerEmail) }, async (request, reply) => {
    const form = formFields(request.body);
    const candidate = {
      name: form.name,
      email: form.email?.trim(),
      password: form.password,
      card: { number: form['card.number'], expMonth: numberField(form['card.expMonth']), expYear: numberField(form['card.expYear']), cvc: form['card.cvc'] },
      estimatedStorageGb: numberField(form.estimatedStorageGb),
      estimatedProcessingHours: numberField(form.estimatedProcessingHours),
      outstandingLimit: optionalText(form.outstandingLimit),
    };
    const parsed = signUpBody.safeParse(candidate);
    const again = async (errors: Record<string, string>, formError: string | null, status: number) =>
      sendPage(reply, signUpPage(await context(request, reply), form, errors, formError), status);
    if (!parsed.success) return again(fieldErrors(parsed.error, SIGN_UP_LABELS), null, 400);
    const { outstandingLimit, ...rest } = parsed.data;
    try {
      const { token } = await signUp(deps, { ...rest, outstandingLimitMicros: outstandingLimit });
      reply.setCookie(CUSTOMER_COOKIE, token, sessionCookie(request));
      return reply.redirect('/account', 303);
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      if (error.code === 'EMAIL_TAKEN') {
        const advice = error.extra.closed ? 'This e-mail belongs to a closed account, which is not reopened: use another e-mail' : 'An account with this e-mail already exists: log in instead';
        return again({ email: advice }, null, error.status);
      }
      if (error.code === 'CARD_INVALID') {
        const name = CARD_FIELDS[String(error.extra.field)] ?? 'card.number';
        return again({ [name]: `${SIGN_UP_LABELS[name]}: ${error.message}` }, null, error.status);
      }
      if (error.code === 'CARD_DECLINED') return again({ 'card.number': error.message }, null, error.status);
      return again({}, `${error.message} (${error.code})`, error.status);
    }
  });

  app.get('/login', { schema: { ...hidden, querystring: z.object({ next: z.string().max(600).optional() }) } }, async (request, reply) => {
    const next = localPath((request.query as { next?: string }).next);
    return sendPage(reply, logInPage(await context(request, reply), next ? { next } : {}));
  });

  app.post('/login', { schema: hidden, onRequest: limitedBy(loginPerAddress), preValidation: app.csrfProtection, preHandler: limitedBy(loginPerEmail) }, async (request, reply) => {
    const form = formFields(request.body);
    const next = localPath(form.next);
    const values = { email: form.email ?? '', ...(next && { next }) };
    if (!form.email?.trim() || !form.password) {
      return sendPage(reply, logInPage(await context(request, reply), values, 'Enter your e-mail and your password.'), 400);
    }
    try {
      const { token } = await logIn(deps.login, form.email.slice(0, 254), form.password.slice(0, 200));
      reply.setCookie(CUSTOMER_COOKIE, token, sessionCookie(request));
      return reply.redirect(next ?? '/account', 303);
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      if (error.extra.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.extra.retryAfterSeconds));
      return sendPage(reply, logInPage(await context(request, reply), values, `${error.message} (${error.code})`), error.status);
    }
  });

  // Log out: the token stops working at once, here and (within TOKEN_CACHE_TTL_MS) everywhere.
  app.post('/logout', { schema: hidden, ...csrf }, async (request, reply) => {
    if (await signedIn(request)) await deps.tokens.revoke(request.accountId, request.tokenId);
    reply.clearCookie(CUSTOMER_COOKIE, { path: '/' });
    return reply.redirect('/', 303);
  });

  const openPage = async (request: FastifyRequest, reply: FastifyReply, values: Record<string, string | undefined> = {}, errors: Record<string, string> = {}, formError: string | null = null, status = 200) => {
    const row = catalogueRows(deps).find((r) => r.id === idOf(request));
    if (!row) throw new AppError(404, 'SERVICE_NOT_FOUND', 'No service has this id.');
    return sendPage(reply, openSessionPage(await context(request, reply), row, values, errors, formError), status);
  };

  app.get('/services/:id/open', { schema: { ...hidden, params: idParams }, preHandler: customersOnly }, async (request, reply) => openPage(request, reply));

  app.post('/services/:id/open', { schema: { ...hidden, params: idParams }, preValidation: app.csrfProtection, preHandler: [customersOnly, limitedBy(opensPerAccount)] }, async (request, reply) => {
    const form = formFields(request.body);
    const parsed = openBody.safeParse({
      serviceId: request.params.id,
      maxMinutes: numberField(form.maxMinutes),
      maxCharge: optionalText(form.maxCharge),
      waitSeconds: numberField(form.waitSeconds),
      quoteId: optionalText(form.quoteId),
    });
    if (!parsed.success) {
      return openPage(request, reply, form, fieldErrors(parsed.error, { maxMinutes: 'Max minutes', maxCharge: 'Max charge', waitSeconds: 'Wait for a seat' }), null, 400);
    }
    const { maxMinutes, maxCharge, waitSeconds, quoteId } = parsed.data;
    // A page without its form id (cached from before it had one) opens nothing; a fresh form comes back.
    if (!UUID.test(form.openId ?? '')) return openPage(request, reply, { ...form, openId: undefined }, {}, refusalText(errors.openFormOutOfDate()), 400);
    try {
      const outcome = await formOnce(
        { store: deps.idempotency, clock: deps.clock },
        { accountId: request.accountId, kind: 'open', formId: form.openId!, values: { ...parsed.data, maxCharge: form.maxCharge ?? null }, waitMs: (waitSeconds + 60) * 1000 },
        async (sessionId) => {
          const { view } = await deps.commands.open({
            accountId: request.accountId,
            serviceId: request.params.id,
            quoteId,
            maxMs: maxMinutes === undefined ? null : Math.round(maxMinutes * 60_000),
            maxChargeMicros: maxCharge ?? null,
            waitMs: Math.round(waitSeconds * 1000),
            sessionId,
            // A client gone before the answer is not charged (a page nobody saw), as in the JSON API
            // without a key: a double click drops the first request, whose open is abandoned and
            // its claim released, and the second sending, waiting on it, opens afresh.
            signal: clientGone(reply),
            answerKept: false,
          });
          return `/sessions/${view.id}`;
        },
      );
      if (outcome.kind === 'done') return reply.redirect(outcome.location, 303);
      if (outcome.kind === 'changed') return openPage(request, reply, { ...form, openId: undefined }, {}, refusalText(errors.openFormAlreadySent()), 409);
      // Still at work: the same form comes back, so sending it again waits for (or gets) that open.
      const busy = errors.openFormStillSending();
      reply.header('retry-after', String(busy.extra.retryAfterSeconds));
      return openPage(request, reply, form, {}, refusalText(busy), busy.status);
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      // Waiting longer helps only where seats are what is short.
      const seats = error.code === 'SERVICE_AT_CAPACITY' || error.code === 'SERVER_AT_CAPACITY' || error.code === 'QUEUE_FULL';
      const retry = typeof error.extra.retryAfterSeconds === 'number' ? ` Try again in ${error.extra.retryAfterSeconds} s${seats ? ', or wait longer for a seat' : ''}.` : '';
      // A quote that cannot open (used, expired, not found) is not offered again: the plain form comes back.
      const values = error.code.startsWith('QUOTE_') ? { ...form, quoteId: undefined } : form;
      // The form sent failed and kept nothing: sent again (corrected, or later), it opens afresh.
      return openPage(request, reply, values, {}, `${error.message}${retry} (${error.code})`, error.status);
    }
  });

  const sessionOf = async (request: FastifyRequest) => {
    const view = await deps.queries.view(request.accountId, idOf(request));
    if (!view) throw new AppError(404, 'SESSION_NOT_FOUND', 'No session of yours has this id.');
    return view;
  };

  app.get('/sessions/:id', { schema: { ...hidden, params: idParams, querystring: z.object({ done: z.string().max(20).optional() }) }, preHandler: customersOnly }, async (request, reply) => {
    const done = doneMessage(DONE, request.query.done);
    const view = await sessionOf(request);
    return sendPage(reply, sessionPage(await context(request, reply, done ? { kind: 'ok', text: done } : null), view, serviceName(view.serviceId), deps.clock.now(), await serviceLink(request, view)));
  });

  app.get('/sessions/:id/events', { schema: { ...hidden, params: idParams }, config: { longLived: true }, preHandler: customersOnly }, async (request, reply) => {
    const view = await sessionOf(request);
    deps.live.stream(request, reply, {
      // Checked without counting as a use: an open tab must not keep the log-in from expiring.
      stillAllowed: async () => {
        const token = request.cookies[CUSTOMER_COOKIE];
        return token !== undefined && (await deps.tokens.resolve(token, { touch: false }))?.tokenId === request.tokenId;
      },
      view: async () => sessionLive((await deps.queries.view(request.accountId, view.id)) ?? view, deps.clock.now()),
      events: (event) => event.payload.sessionId === view.id,
      everyMs: 1000,
      // Only a running session accrues by itself; its end and settling arrive as domain events.
      tickWhile: (live) => (live as { running: boolean }).running || !(live as { ended: boolean }).ended,
    });
  });

  /** A command on the session; a refusal is shown on the session's page, with its code. */
  const sessionCommand = (run: (request: FastifyRequest) => Promise<unknown>, done: keyof typeof DONE) =>
    async (request: FastifyRequest, reply: FastifyReply) => {
      try {
        await run(request);
        return reply.redirect(`/sessions/${idOf(request)}?done=${done}`, 303);
      } catch (error) {
        if (!(error instanceof AppError)) throw error;
        const view = await sessionOf(request);
        const ctx = await context(request, reply, { kind: 'error', text: `${error.message} (${error.code})` });
        // A refused extend shows the form with what was typed, as every other form does.
        const typed = { maxCharge: formFields(request.body).maxCharge };
        return sendPage(reply, sessionPage(ctx, view, serviceName(view.serviceId), deps.clock.now(), await serviceLink(request, view), typed), error.status);
      }
    };

  app.post('/sessions/:id/extend', { schema: { ...hidden, params: idParams }, preValidation: app.csrfProtection, preHandler: customersOnly }, sessionCommand(async (request) => {
    const parsed = z.object({ maxCharge: positiveAmount(2, limits.maxAmountMicros) }).safeParse({ maxCharge: optionalText(formFields(request.body).maxCharge) });
    if (!parsed.success) throw new AppError(400, 'VALIDATION_FAILED', fieldErrors(parsed.error, { maxCharge: 'New charge limit' }).maxCharge ?? 'New charge limit is not valid');
    return deps.commands.extend(request.accountId, idOf(request), parsed.data.maxCharge);
  }, 'extended'));

  app.post('/sessions/:id/logoff', { schema: { ...hidden, params: idParams }, preValidation: app.csrfProtection, preHandler: customersOnly }, sessionCommand(
    (request) => deps.commands.logoff(request.accountId, idOf(request)),
    'loggedoff',
  ));
}
