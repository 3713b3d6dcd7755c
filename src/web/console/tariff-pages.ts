import type { ServiceRecord } from '../../catalogue/catalogue.js';
import { html, type SafeHtml } from '../html.js';
import { checkboxes, csrfInput, errorSummary, field, selectField } from '../layout.js';
import { consolePage, type ConsoleContext } from './pages.js';
import { labels, ruleField, type TariffFormValues } from './tariff-form.js';

const WEEKDAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'].map((text, i) => ({ value: String(i + 1), text }));
const PER_USE_UNITS = [
  { value: '', text: 'No charge per use' },
  { value: 'request', text: 'Each request through the edge' },
  { value: 'unit', text: 'Each unit the service reports (metering API)' },
];

/**
 * A service's tariff as one form (issue 13): the default price and time zone, the rules (weekdays,
 * an hour range, a price per minute), billing increments and minimum, and the price per use. A
 * read-only operator sees the same form without its button.
 */
export function tariffPage(
  ctx: ConsoleContext,
  service: Pick<ServiceRecord, 'id' | 'name' | 'currency'>,
  values: TariffFormValues,
  ruleRows: number,
  canEdit: boolean,
  errors: Record<string, string> = {},
  formError: string | null = null,
): SafeHtml {
  const names = labels(ruleRows);
  const text = (name: string, hint: string, inputmode = 'decimal') =>
    field({ name, label: names[name]!, value: values.fields[name], error: errors[name], hint, inputmode });
  const rule = (row: number) => html`<fieldset><legend>Rule ${row + 1}</legend>
${checkboxes({ name: ruleField(row, 'days'), legend: names[ruleField(row, 'days')]!, options: WEEKDAYS, checked: values.days[row] ?? [], error: errors[ruleField(row, 'days')] })}
${text(ruleField(row, 'fromHour'), 'Local hour, 0 to 23', 'numeric')}
${text(ruleField(row, 'toHour'), 'Up to this hour, 1 to 24; at or before the start: past midnight', 'numeric')}
${text(ruleField(row, 'pricePerMinute'), `In ${service.currency}, like 0.50`)}
</fieldset>`;
  return consolePage(
    ctx,
    `Tariff of ${service.name}`,
    html`${errorSummary(errors, formError)}
<p>A new tariff applies to sessions opened from now on; a running session, and a quote already given, keep the tariff they have. <a href="/ops">Back to servers and services</a></p>
<form method="post" action="/ops/services/${service.id}/tariff" novalidate>
${csrfInput(ctx.csrf)}
<fieldset><legend>Price by the minute</legend>
${text('pricePerMinute', `Where no rule applies, in ${service.currency}, like 0.50`)}
${text('timeZone', 'The time zone of the rules’ days and hours (IANA), like Europe/Paris', 'text')}
</fieldset>
<fieldset><legend>Rules</legend>
<p class="hint">The last rule that matches a minute sets its price. A blank row is no rule; clear a row to remove its rule.</p>
<div class="rules">${Array.from({ length: ruleRows }, (_, row) => rule(row))}</div>
</fieldset>
<fieldset><legend>Billing increments and minimum</legend>
${text('billing.firstPeriodSeconds', 'Charged whole once the session has run one second: 60 charges the first minute whole', 'numeric')}
${text('billing.incrementSeconds', 'Then every started increment: 60 for whole minutes, 1 for per second', 'numeric')}
${text('billing.minimumCharge', `In ${service.currency}; 0.00 for none`)}
</fieldset>
<fieldset><legend>Charge per use</legend>
${selectField({ name: 'perUse.unit', label: names['perUse.unit']!, options: PER_USE_UNITS, value: values.fields['perUse.unit'] ?? '', error: errors['perUse.unit'] })}
${text('perUse.price', `In ${service.currency}, up to 6 decimals, like 0.002`)}
</fieldset>
${canEdit ? html`<button type="submit">Save tariff</button>` : html`<p class="hint">Only an admin changes prices.</p>`}
</form>`,
  );
}
