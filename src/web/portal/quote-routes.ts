import type {} from '@fastify/csrf-protection';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError, errors as appErrors } from '../../errors.js';
import { quoteSchema } from '../../http/open-schema.js';
import { quoteView } from '../../quotes/quote-view.js';
import { findQuote, quoteFor, usableQuote } from '../../quotes/quotes.js';
import { fieldErrors, formFields, numberField, optionalText } from '../forms.js';
import type { WebDeps } from '../web-deps.js';
import { portalKit, sendPage } from './portal-kit.js';
import { QUOTE_LABELS, quoteFormPage, quotePage } from './quote-pages.js';

const hidden = { hide: true } as const;

/** A datetime-local field ("2026-12-01T09:30"), read as UTC as its hint says; anything else is left for the schema to name. */
const utcInstant = (text: string | undefined) => {
  const value = optionalText(text);
  if (value === undefined) return undefined;
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(:\d{2})?$/.exec(value);
  return match ? `${match[1]}${match[2] ?? ':00'}Z` : value;
};

/**
 * Quotes in the portal (issue 13): the form, and a quote's page with its breakdown, expiry and a
 * button that opens a session holding it. The same quoteFor and rules as POST /v1/quotes.
 */
export function quoteRoutes(site: FastifyInstance, deps: WebDeps): void {
  const app = site.withTypeProvider<ZodTypeProvider>();
  const { context, customersOnly } = portalKit(deps);
  const body = quoteSchema(deps.limits);
  const services = () => deps.catalogue.services().map((s) => ({ id: s.id, name: s.name, currency: s.currency }));
  const formPage = async (request: FastifyRequest, reply: FastifyReply, values: Record<string, string | undefined>, errors: Record<string, string> = {}, formError: string | null = null, status = 200) =>
    sendPage(reply, quoteFormPage(await context(request, reply), services(), values, errors, formError), status);

  app.get('/quote', { schema: { ...hidden, querystring: z.object({ serviceId: z.uuid().optional() }) }, preHandler: customersOnly }, async (request, reply) =>
    formPage(request, reply, { serviceId: request.query.serviceId }),
  );

  app.post('/quote', { schema: hidden, preValidation: app.csrfProtection, preHandler: customersOnly }, async (request, reply) => {
    const form = formFields(request.body);
    const candidate = {
      serviceId: optionalText(form.serviceId),
      maxMinutes: numberField(form.maxMinutes),
      maxCharge: optionalText(form.maxCharge),
      startAt: utcInstant(form.startAt),
    };
    if (candidate.maxMinutes === undefined && candidate.maxCharge === undefined) {
      return formPage(request, reply, form, { maxMinutes: 'Enter minutes, a maximum charge, or both' }, null, 400);
    }
    const parsed = body.safeParse(candidate);
    if (!parsed.success) return formPage(request, reply, form, fieldErrors(parsed.error, QUOTE_LABELS), null, 400);
    try {
      const quote = await quoteFor(deps, { accountId: request.accountId, ...parsed.data });
      return reply.redirect(`/quotes/${quote.id}`, 303);
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      return formPage(request, reply, form, {}, `${error.message} (${error.code})`, error.status);
    }
  });

  app.get('/quotes/:id', { schema: { ...hidden, params: z.object({ id: z.uuid() }) }, preHandler: customersOnly }, async (request, reply) => {
    const quote = await findQuote(deps.sql, request.params.id, request.accountId);
    if (!quote) throw appErrors.quoteNotFound();
    // Whether it can still open a session is the quote rules' own answer (used, expired), not this page's.
    let refusal: { code: string; text: string } | null = null;
    try {
      usableQuote(quote, quote.serviceId, deps.clock.now());
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      refusal = { code: error.code, text: error.message };
    }
    const service = deps.catalogue.service(quote.serviceId);
    return sendPage(reply, quotePage(await context(request, reply), quoteView(quote), service?.name ?? 'a service no longer offered', service?.currency ?? deps.currency, refusal));
  });
}
