import type { DeliveryView } from '../../webhooks/delivery-rows.js';
import type { EndpointView } from '../../webhooks/endpoints.js';
import { WEBHOOK_EVENT_TYPES } from '../../webhooks/webhook-events.js';
import { html, type SafeHtml } from '../html.js';
import { checkboxes, csrfInput, errorSummary, field, selectField } from '../layout.js';
import { consolePage, type ConsoleContext } from './pages.js';

const when = (iso: string | null) => (iso ? html`<time datetime="${iso}">${iso.replace('T', ' ').slice(0, 19)} UTC</time>` : '—');

export interface WebhooksPageOptions {
  endpoints: EndpointView[];
  canAdmin: boolean;
  /** The endpoint just registered and its signing secret, shown this once. */
  created?: { endpoint: EndpointView; secret: string } | null;
  values?: { url?: string | undefined; eventTypes?: string[] };
  errors?: Record<string, string>;
  /** The form's own id, the endpoint's to be: the form sent twice registers one endpoint. */
  formId: string;
}

export function webhooksPage(ctx: ConsoleContext, options: WebhooksPageOptions): SafeHtml {
  const { errors = {}, values = {} } = options;
  return consolePage(
    ctx,
    'Webhook endpoints',
    html`${errorSummary(errors, null)}
${
  options.created
    ? html`<div class="notice" role="status"><p>Endpoint registered. Its signing secret, shown this once (deliveries carry an HMAC-SHA256 of the timestamp and body made with it):</p>
<p><code class="secret" data-field="secret">${options.created.secret}</code></p></div>`
    : ''
}
<table>
<thead><tr><th scope="col">URL</th><th scope="col">Events</th><th scope="col">Registered</th><th scope="col">Disabled</th>${options.canAdmin ? html`<th scope="col"><span class="visually-hidden">Action</span></th>` : ''}</tr></thead>
<tbody>${options.endpoints.map(
      (e) => html`<tr><th scope="row"><a href="/ops/webhooks/${e.id}">${e.url}</a></th><td>${e.eventTypes.join(', ')}</td><td>${when(e.createdAt)}</td><td>${when(e.disabledAt)}</td>
${options.canAdmin ? html`<td>${e.disabledAt ? '' : html`<form method="post" action="/ops/webhooks/${e.id}/disable">${csrfInput(ctx.csrf)}<button type="submit" class="secondary">Disable<span class="visually-hidden"> ${e.url}</span></button></form>`}</td>` : ''}</tr>`,
    )}</tbody>
</table>
${options.endpoints.length === 0 ? html`<p>No endpoint registered yet.</p>` : ''}
${
  options.canAdmin
    ? html`<section class="panel"><h2>Register an endpoint</h2>
<form method="post" action="/ops/webhooks" novalidate>
${csrfInput(ctx.csrf)}<input type="hidden" name="endpointId" value="${options.formId}">
${field({ name: 'url', label: 'Endpoint URL', type: 'url', value: values.url, error: errors.url, hint: 'http or https, like https://example.com/tollgate-events' })}
${checkboxes({ name: 'eventTypes', legend: 'Events to send', options: WEBHOOK_EVENT_TYPES.map((t) => ({ value: t, text: t })), checked: values.eventTypes ?? [], error: errors.eventTypes })}
<button type="submit">Register endpoint</button>
</form></section>`
    : ''
}`,
  );
}

export function deliveriesPage(ctx: ConsoleContext, endpoint: EndpointView, deliveries: DeliveryView[], state: string | undefined): SafeHtml {
  return consolePage(
    ctx,
    `Deliveries to ${endpoint.url}`,
    html`<p>Events: ${endpoint.eventTypes.join(', ')}. ${endpoint.disabledAt ? html`Disabled ${when(endpoint.disabledAt)}.` : 'Active.'} <a href="/ops/webhooks">All endpoints</a></p>
<form method="get" action="/ops/webhooks/${endpoint.id}" class="filters" aria-label="Filter deliveries">
${selectField({ name: 'state', label: 'Delivery state', options: ['', 'pending', 'delivered', 'failed', 'cancelled'].map((s) => ({ value: s, text: s || 'any' })), value: state ?? '' })}
<button type="submit">Filter</button>
</form>
<table>
<thead><tr><th scope="col">Event</th><th scope="col">Type</th><th scope="col">State</th><th scope="col">Attempts</th><th scope="col">Queued</th><th scope="col">Delivered</th><th scope="col">Attempt log</th></tr></thead>
<tbody>${deliveries.map(
      (d) => html`<tr><th scope="row">${d.eventId}</th><td>${d.eventType}</td><td>${d.state}${d.nextAttemptAt ? html`, next ${when(d.nextAttemptAt)}` : ''}</td><td>${d.attempts}</td><td>${when(d.createdAt)}</td><td>${when(d.deliveredAt)}</td>
<td><ol>${d.log.map((a) => html`<li>${when(a.at)}: ${a.statusCode === null ? `no answer (${a.error ?? 'error'})` : `HTTP ${a.statusCode}`}, ${a.durationMs} ms</li>`)}</ol></td></tr>`,
    )}</tbody>
</table>
${deliveries.length === 0 ? html`<p>No delivery${state ? ` in state ${state}` : ''} yet.</p>` : ''}`,
  );
}
