import type {} from '@fastify/csrf-protection';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError, errors as appErrors } from '../../errors.js';
import { tariffView } from '../../sessions/session-view.js';
import type { WebDeps } from '../web-deps.js';
import { consoleKit, sendPage } from './console-kit.js';
import { MAX_RULE_ROWS, readTariffForm, SPARE_RULE_ROWS, tariffFormValues, type TariffFormValues } from './tariff-form.js';
import { tariffPage } from './tariff-pages.js';

const params = z.object({ id: z.uuid() });
const query = z.object({ done: z.literal('saved').optional() });

/** Tariff and per-use price editing (issue 13), through the catalogue's own updateService, as PATCH /v1/services/:id. */
export function tariffRoutes(site: FastifyInstance, deps: WebDeps): void {
  const app = site.withTypeProvider<ZodTypeProvider>();
  const { operatorsOnly, context, by, may } = consoleKit(deps);
  const serviceOf = (id: string) => {
    const service = deps.catalogue.service(id);
    if (!service) throw appErrors.serviceNotFound();
    return service;
  };
  const again = async (request: FastifyRequest, reply: FastifyReply, values: TariffFormValues, errors: Record<string, string>, formError: string | null, status: number) => {
    const service = serviceOf((request.params as { id: string }).id);
    const ctx = await context(request, reply);
    return sendPage(reply, tariffPage(ctx, service, values, values.days.length, true, errors, formError), status);
  };

  app.get('/ops/services/:id/tariff', { schema: { hide: true, params, querystring: query }, config: { permission: 'read' }, preHandler: operatorsOnly }, async (request, reply) => {
    const service = serviceOf(request.params.id);
    const ctx = await context(request, reply, request.query.done ? { kind: 'ok', text: 'Tariff saved.' } : null);
    const values = tariffFormValues(tariffView(service.tariff));
    // Spare rows to add rules in, never more rows than a tariff may have rules (the form refuses a row past them).
    return sendPage(reply, tariffPage(ctx, service, values, Math.min(service.tariff.rules.length + SPARE_RULE_ROWS, MAX_RULE_ROWS), may(request, 'admin')));
  });

  app.post(
    '/ops/services/:id/tariff',
    { schema: { hide: true, params }, config: { permission: 'admin' }, preValidation: app.csrfProtection, preHandler: operatorsOnly },
    async (request, reply) => {
      serviceOf(request.params.id);
      const form = readTariffForm(request.body, deps.limits);
      if (!form.ok) return again(request, reply, form.values, form.errors, null, 400);
      try {
        await deps.catalogue.updateService(request.params.id, { pricePerMinuteMicros: form.pricePerMinuteMicros, pricing: form.pricing }, by(request));
      } catch (error) {
        if (!(error instanceof AppError)) throw error;
        return again(request, reply, form.values, {}, `${error.message} (${error.code})`, error.status);
      }
      return reply.redirect(`/ops/services/${request.params.id}/tariff?done=saved`, 303);
    },
  );
}
