import type { StatementView } from '../statements/statement-view.js';
import { html, type SafeHtml } from './html.js';

/** One statement with its three downloads; each link names its period for screen readers. */
export function statementRow(s: StatementView, base: string): SafeHtml {
  const period = `${s.periodStart.slice(0, 10)} to ${s.periodEnd.slice(0, 10)}`;
  const link = (format: string) => html`<a href="${base}?format=${format}" download>${format.toUpperCase()}<span class="visually-hidden"> of ${period}</span></a>`;
  return html`<tr><th scope="row">${period} (${s.period})</th><td>${s.totals.charges} ${s.currency}</td><td>${s.totals.topUps} ${s.currency}</td><td>${s.totals.due} ${s.currency}</td>
<td>${link('json')} ${link('csv')} ${link('pdf')}</td></tr>`;
}
