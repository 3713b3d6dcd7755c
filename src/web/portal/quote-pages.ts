import type { quoteView } from '../../quotes/quote-view.js';
import type { TariffView } from '../../sessions/session-view.js';
import { html, type SafeHtml } from '../html.js';
import { csrfInput, errorSummary, field, selectField } from '../layout.js';
import { breakdownTable, openIdInput, portalPage, type PortalContext } from './pages.js';

type QuoteView = ReturnType<typeof quoteView>;
const DAY_NAMES = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
const hour = (h: number) => `${String(h).padStart(2, '0')}:00`;
/** 121 → "2 min 1 s"; 45 → "45 s". */
const runsFor = (seconds: number) => (seconds < 60 ? `${seconds} s` : `${Math.floor(seconds / 60)} min${seconds % 60 === 0 ? '' : ` ${seconds % 60} s`}`);

/** A tariff in words: its rules, the default price, how time is counted, the price per use. */
export function tariffWords(tariff: TariffView, currency: string): SafeHtml {
  const increments =
    tariff.billing.firstPeriodSeconds === 1 && tariff.billing.incrementSeconds === 1
      ? 'charged by the second'
      : `the first ${tariff.billing.firstPeriodSeconds} s charged whole, then every started ${tariff.billing.incrementSeconds} s`;
  return html`<ul class="tariff">
${tariff.rules.map((r) => html`<li>${r.days.map((d) => DAY_NAMES[d - 1]).join(', ')} ${hour(r.fromHour)} to ${hour(r.toHour % 24)}: ${r.pricePerMinute} ${currency} a minute</li>`)}
<li>${tariff.rules.length > 0 ? 'Any other time' : 'Any time'}: ${tariff.pricePerMinute} ${currency} a minute (hours in ${tariff.timeZone})</li>
<li>Time is ${increments}${tariff.billing.minimumCharge === '0.00' ? '' : `, at least ${tariff.billing.minimumCharge} ${currency} a session`}.</li>
${tariff.perUse ? html`<li>Each ${tariff.perUse.unit === 'request' ? 'request' : 'unit used'}: ${tariff.perUse.price} ${currency}</li>` : ''}
</ul>`;
}

export const QUOTE_LABELS: Record<string, string> = {
  serviceId: 'Service',
  maxMinutes: 'Minutes',
  maxCharge: 'Maximum charge',
  startAt: 'Start (optional)',
};

export function quoteFormPage(
  ctx: PortalContext,
  services: { id: string; name: string; currency: string }[],
  values: Record<string, string | undefined>,
  errors: Record<string, string> = {},
  formError: string | null = null,
): SafeHtml {
  const currency = services[0]?.currency ?? '';
  return portalPage(
    ctx,
    'Get a quote',
    html`${errorSummary(errors, formError)}
<p>A quote fixes the price before you use a service: the price breakdown at today's tariff, held for you until it expires, whatever the list price becomes.</p>
<form method="post" action="/quote" novalidate>
${csrfInput(ctx.csrf)}
${selectField({ name: 'serviceId', label: QUOTE_LABELS.serviceId!, options: services.map((s) => ({ value: s.id, text: s.name })), value: values.serviceId, error: errors.serviceId })}
${field({ name: 'maxMinutes', label: QUOTE_LABELS.maxMinutes!, inputmode: 'decimal', value: values.maxMinutes, error: errors.maxMinutes, hint: 'How long you will use it; or give a maximum charge, or both.' })}
${field({ name: 'maxCharge', label: QUOTE_LABELS.maxCharge!, inputmode: 'decimal', value: values.maxCharge, error: errors.maxCharge, hint: `In ${currency}, like 5.00: the quote says how long it buys.` })}
${field({ name: 'startAt', label: QUOTE_LABELS.startAt!, type: 'datetime-local', value: values.startAt, error: errors.startAt, hint: 'In UTC; blank for now. Prices by the hour depend on it.' })}
<button type="submit">Get quote</button>
</form>`,
  );
}

/** A quote: its total, breakdown, the tariff it holds and until when; the button to open a session with it while it can be used. */
export function quotePage(ctx: PortalContext, quote: QuoteView, serviceName: string, currency: string, refusal: { code: string; text: string } | null): SafeHtml {
  return portalPage(
    ctx,
    `Quote for ${serviceName}`,
    html`<dl class="facts">
<dt>Total</dt><dd data-field="total">${quote.total} ${currency}</dd>
<dt>Time</dt><dd>${quote.minutes === null ? `as long as the total buys (${runsFor(quote.runsForSeconds)} with no use)` : `${quote.minutes} minutes`}, from <time datetime="${quote.startAt}">${quote.startAt.replace('T', ' ').slice(0, 16)} UTC</time></dd>
<dt>Expires</dt><dd><time datetime="${quote.expiresAt}" data-field="expiresAt">${quote.expiresAt.replace('T', ' ').slice(0, 19)} UTC</time></dd>
</dl>
${breakdownTable(quote.lines, currency, quote.tariff.perUse?.price ?? null, 'Price breakdown')}
<h2>The tariff this quote holds</h2>
${tariffWords(quote.tariff, currency)}
${
  quote.sessionId
    ? html`<p>This quote was used: <a href="/sessions/${quote.sessionId}">its session</a>.</p>`
    : refusal
      ? html`<p class="notice" role="status">${refusal.text} (${refusal.code}) <a href="/quote?serviceId=${quote.serviceId}">Get a new quote</a></p>`
      : html`<form method="post" action="/services/${quote.serviceId}/open">
${csrfInput(ctx.csrf)}${openIdInput()}<input type="hidden" name="quoteId" value="${quote.id}">
${field({ name: 'waitSeconds', label: 'Wait for a seat (seconds)', inputmode: 'numeric', value: '0', hint: 'When the service is full, how long to queue.' })}
<button type="submit">Open session with this quote</button>
</form>`
}`,
  );
}
