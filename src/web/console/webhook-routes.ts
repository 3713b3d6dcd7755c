import { randomUUID } from 'node:crypto';
import type {} from '@fastify/csrf-protection';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errors as appErrors } from '../../errors.js';
import { webhookEndpointInput } from '../../http/schemas.js';
import { deliveryLog } from '../../webhooks/delivery-rows.js';
import { disableEndpointBy, registerEndpoint } from '../../webhooks/endpoint-commands.js';
import { listEndpoints } from '../../webhooks/endpoints.js';
import { fieldErrors, formFields, formValues } from '../forms.js';
import type { WebDeps } from '../web-deps.js';
import { consoleKit, sendPage } from './console-kit.js';
import { deliveriesPage, webhooksPage } from './webhook-pages.js';

const hidden = { hide: true } as const;
const idParams = z.object({ id: z.uuid() });

/** Webhook endpoints in the console (issue 14): register, list, disable, and each one's delivery log; the same commands as /v1/ops/webhooks. */
export function webhookRoutes(site: FastifyInstance, deps: WebDeps): void {
  const app = site.withTypeProvider<ZodTypeProvider>();
  const { operatorsOnly, context, by, may } = consoleKit(deps);

  app.get('/ops/webhooks', { schema: hidden, config: { permission: 'read' }, preHandler: operatorsOnly }, async (request, reply) =>
    sendPage(reply, webhooksPage(await context(request, reply), { endpoints: await listEndpoints(deps.sql), canAdmin: may(request, 'admin'), formId: randomUUID() })),
  );

  app.post('/ops/webhooks', { schema: hidden, config: { permission: 'admin' }, preValidation: app.csrfProtection, preHandler: operatorsOnly }, async (request, reply) => {
    const url = (formFields(request.body).url ?? '').trim();
    const eventTypes = formValues(request.body, 'eventTypes');
    // A form from before the id (or a tampered one) gets a fresh id, and the page a new one.
    const sent = z.uuid().safeParse(formFields(request.body).endpointId);
    const formId = sent.success ? sent.data : randomUUID();
    const parsed = webhookEndpointInput.safeParse({ url, eventTypes });
    if (!parsed.success) {
      const errors = fieldErrors(parsed.error, { url: 'Endpoint URL', eventTypes: 'Events to send' });
      // An unknown event type is a tampered form; a person sees it as the group's error.
      for (const name of Object.keys(errors).filter((n) => n.startsWith('eventTypes.'))) {
        errors.eventTypes ??= 'Choose events from the list';
        delete errors[name];
      }
      const page = webhooksPage(await context(request, reply), { endpoints: await listEndpoints(deps.sql), canAdmin: true, values: { url, eventTypes }, errors, formId });
      return sendPage(reply, page, 400);
    }
    // The secret is shown on this answer only: no redirect, a reload asks to send the form again.
    const created = await registerEndpoint(deps.sql, { ...parsed.data, id: formId }, by(request), deps.clock.now());
    const page = webhooksPage(await context(request, reply, { kind: 'ok', text: 'Endpoint registered.' }), { endpoints: await listEndpoints(deps.sql), canAdmin: true, created, formId: randomUUID() });
    return sendPage(reply, page, 201);
  });

  app.post('/ops/webhooks/:id/disable', { schema: { ...hidden, params: idParams }, config: { permission: 'admin' }, preValidation: app.csrfProtection, preHandler: operatorsOnly }, async (request, reply) => {
    if (!(await disableEndpointBy(deps.sql, request.params.id, by(request), deps.clock.now()))) throw appErrors.webhookNotFound();
    return reply.redirect('/ops/webhooks', 303);
  });

  app.get(
    '/ops/webhooks/:id',
    { schema: { ...hidden, params: idParams, querystring: z.object({ state: z.enum(['pending', 'delivered', 'failed', 'cancelled']).or(z.literal('')).optional() }) }, config: { permission: 'read' }, preHandler: operatorsOnly },
    async (request, reply) => {
      const state = request.query.state || undefined;
      const endpoint = (await listEndpoints(deps.sql)).find((e) => e.id === request.params.id);
      const deliveries = endpoint ? await deliveryLog(deps.sql, { endpointId: endpoint.id, state, limit: 200 }) : null;
      if (!endpoint || !deliveries) throw appErrors.webhookNotFound();
      return sendPage(reply, deliveriesPage(await context(request, reply), endpoint, deliveries, state));
    },
  );
}
