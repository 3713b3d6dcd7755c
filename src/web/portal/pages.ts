import { randomUUID } from 'node:crypto';
import type { LineView, SessionView } from '../../sessions/session-view.js';
import { html, type SafeHtml } from '../html.js';
import { csrfInput, errorSummary, field, page } from '../layout.js';
import { statusText, type CatalogueRow } from './catalogue.js';
import { sessionLive, type SessionLive } from './session-live.js';

/** What every portal page knows about who is looking. */
export interface PortalContext {
  signedIn: boolean;
  csrf: string;
  flash?: { kind: 'ok' | 'error'; text: string } | null;
}

const visuallyHidden = (text: string) => html`<span class="visually-hidden">${text}</span>`;

function nav(ctx: PortalContext): SafeHtml {
  if (!ctx.signedIn) return html`<a href="/">Catalogue</a> <a href="/signup">Sign up</a> <a href="/login">Log in</a>`;
  return html`<a href="/">Catalogue</a> <a href="/quote">Get a quote</a> <a href="/account">Account</a>
<form class="inline" method="post" action="/logout">${csrfInput(ctx.csrf)}<button type="submit">Log out</button></form>`;
}

export const portalPage = (ctx: PortalContext, title: string, body: SafeHtml, scripts: string[] = []) =>
  page({ title, nav: nav(ctx), flash: ctx.flash ?? null, scripts }, body);

export function cataloguePage(ctx: PortalContext, rows: CatalogueRow[]): SafeHtml {
  const intro = ctx.signedIn
    ? html`<p>Pick a service and open a session; you pay by the second, up to the limits you set.</p>`
    : html`<p>Pay by the minute for the software you need. <a href="/signup">Sign up</a> or <a href="/login">log in</a> to open a session.</p>`;
  return portalPage(
    ctx,
    'Catalogue',
    html`${intro}
<table class="catalogue" data-live="/catalogue/events">
<caption>Services, with the seats free now (updated live)</caption>
<thead><tr><th scope="col">Service</th><th scope="col">Server</th><th scope="col">Price per minute</th><th scope="col">Seats free</th><th scope="col">Queue</th><th scope="col">Status</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
<tbody>
${rows.map(
  (r) => html`<tr data-service="${r.id}">
<th scope="row">${r.name}</th><td>${r.serverName}</td><td>${r.pricePerMinute} ${r.currency}</td>
<td><span data-field="seatsFree">${r.seatsFree}</span> of ${r.maxUsers}</td>
<td><span data-field="queued">${r.queued}</span> waiting<span data-field="waitText">${r.waitSeconds === null ? '' : `, longest ${r.waitSeconds} s`}</span></td>
<td><span data-field="status">${statusText(r.reachable)}</span></td>
<td>${ctx.signedIn ? html`<a class="button" href="/services/${r.id}/open">Open session${visuallyHidden(` on ${r.name}`)}</a>` : ''}</td>
</tr>`,
)}
</tbody>
</table>`,
    ['portal.js'],
  );
}

export interface SignUpValues {
  [name: string]: string | undefined;
}

/** The fields of sign-up, in order, with what the browser may fill in; a form sent back with errors keeps everything but the card number and the CVC (issue 12). */
export const SIGN_UP_FIELDS: { name: string; label: string; type?: string; autocomplete?: string; inputmode?: string; hint?: string; secret?: boolean }[] = [
  { name: 'name', label: 'Full name', autocomplete: 'name' },
  { name: 'email', label: 'E-mail', type: 'email', autocomplete: 'email' },
  { name: 'password', label: 'Password', type: 'password', autocomplete: 'new-password', hint: 'At least 8 characters.' },
  { name: 'card.number', label: 'Card number', autocomplete: 'cc-number', inputmode: 'numeric', secret: true },
  { name: 'card.expMonth', label: 'Expiry month', autocomplete: 'cc-exp-month', inputmode: 'numeric', hint: '1 to 12' },
  { name: 'card.expYear', label: 'Expiry year', autocomplete: 'cc-exp-year', inputmode: 'numeric', hint: 'For example 2031' },
  { name: 'card.cvc', label: 'CVC', autocomplete: 'cc-csc', inputmode: 'numeric', hint: '3 or 4 digits on the back of the card', secret: true },
  { name: 'estimatedStorageGb', label: 'Estimated storage (GB)', inputmode: 'decimal' },
  { name: 'estimatedProcessingHours', label: 'Estimated processing (hours)', inputmode: 'decimal' },
  { name: 'outstandingLimit', label: 'Outstanding limit', inputmode: 'decimal', hint: 'The most your open sessions may hold on your card at once, like 50.00' },
];

export const SIGN_UP_LABELS = Object.fromEntries(SIGN_UP_FIELDS.map((f) => [f.name, f.label]));

export function signUpPage(ctx: PortalContext, values: SignUpValues = {}, errors: Record<string, string> = {}, formError: string | null = null): SafeHtml {
  return portalPage(
    ctx,
    'Sign up',
    html`${errorSummary(errors, formError)}
<form method="post" action="/signup" novalidate>
${csrfInput(ctx.csrf)}
<fieldset><legend>You</legend>
${SIGN_UP_FIELDS.slice(0, 3).map((f) => field({ ...f, value: f.secret ? undefined : values[f.name], error: errors[f.name] }))}
</fieldset>
<fieldset><legend>Your card</legend>
${SIGN_UP_FIELDS.slice(3, 7).map((f) => field({ ...f, value: f.secret ? undefined : values[f.name], error: errors[f.name] }))}
</fieldset>
<fieldset><legend>What you expect to use</legend>
${SIGN_UP_FIELDS.slice(7).map((f) => field({ ...f, value: values[f.name], error: errors[f.name] }))}
</fieldset>
<button type="submit">Sign up</button>
</form>`,
  );
}

export function logInPage(ctx: PortalContext, values: { email?: string; next?: string } = {}, formError: string | null = null): SafeHtml {
  return portalPage(
    ctx,
    'Log in',
    html`${errorSummary({}, formError)}
<form method="post" action="/login">
${csrfInput(ctx.csrf)}
${values.next ? html`<input type="hidden" name="next" value="${values.next}">` : ''}
${field({ name: 'email', label: 'E-mail', type: 'email', autocomplete: 'username', value: values.email })}
${field({ name: 'password', label: 'Password', type: 'password', autocomplete: 'current-password' })}
<button type="submit">Log in</button>
</form>
<p>No account yet? <a href="/signup">Sign up</a>.</p>`,
  );
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An open form's own id (routes.ts, formOnce): the one it was sent with when it comes back refused, else a new one. */
export function openIdInput(sent?: string): SafeHtml {
  return html`<input type="hidden" name="openId" value="${sent !== undefined && UUID.test(sent) ? sent : randomUUID()}">`;
}

export function openSessionPage(
  ctx: PortalContext,
  row: CatalogueRow,
  values: Record<string, string | undefined> = {},
  errors: Record<string, string> = {},
  formError: string | null = null,
): SafeHtml {
  const full = row.seatsFree === 0;
  // A refused open from a quote's page comes back here: it is still that quote's open.
  const quoteId = values.quoteId !== undefined && UUID.test(values.quoteId) ? values.quoteId : null;
  return portalPage(
    ctx,
    `Open a session on ${row.name}`,
    html`${errorSummary(errors, formError)}
<p>${row.pricePerMinute} ${row.currency} per minute, charged by the second, ${row.maxUsers} seats.</p>
<div data-live="/catalogue/events" data-service="${row.id}">
<p>Seats free: <span data-field="seatsFree">${row.seatsFree}</span>; queue: <span data-field="queued">${row.queued}</span> waiting<span data-field="waitText">${row.waitSeconds === null ? '' : `, longest ${row.waitSeconds} s`}</span> (updated live).</p>
${full ? html`<p class="notice" role="status">The service is full: ${row.queued} waiting${row.waitSeconds === null ? '' : `, the longest for ${row.waitSeconds} s`}. Set how long you will wait for a seat.</p>` : ''}
<p class="notice" data-field="asking" role="status" hidden>Asking for a seat; when the service is full you wait in the queue, up to the time you set.</p>
</div>
${
  quoteId
    ? html`<p>With <a href="/quotes/${quoteId}">your quote</a>: its price and limits hold.</p>`
    : html`<p>Or <a href="/quote?serviceId=${row.id}">get a quote first</a>: a price agreed before you start.</p>`
}
<form method="post" action="/services/${row.id}/open" data-open-form>
${csrfInput(ctx.csrf)}${openIdInput(values.openId)}
${
  quoteId
    ? html`<input type="hidden" name="quoteId" value="${quoteId}">`
    : html`${field({ name: 'maxMinutes', label: 'Max minutes (optional)', inputmode: 'decimal', value: values.maxMinutes, error: errors.maxMinutes, hint: 'The session ends after this long.' })}
${field({ name: 'maxCharge', label: 'Max charge (optional)', inputmode: 'decimal', value: values.maxCharge, error: errors.maxCharge, hint: `In ${row.currency}, like 5.00. Without it, what is left of your outstanding limit.` })}`
}
${field({ name: 'waitSeconds', label: 'Wait for a seat (seconds)', inputmode: 'numeric', value: values.waitSeconds ?? (full ? '30' : '0'), error: errors.waitSeconds, hint: 'When the service is full, how long to queue.' })}
<button type="submit">${quoteId ? 'Open session with this quote' : 'Open session'}</button>
</form>`,
    ['portal.js'],
  );
}

const money = (amount: string | null, currency: string) => (amount === null ? '—' : `${amount} ${currency}`);

function slipText(live: SessionLive): string {
  const slip = live.chargeSlip;
  return slip ? `Charge slip ${slip.id}: ${slip.amount} ${live.currency}, authorization ${slip.authorizationNumber}` : '';
}

/** Where the customer reaches the service while the session runs: the edge, with the session's access token once (the edge trades it for a cookie). */
export type ServiceLink = string | null;

/**
 * A charge itemized (tariff segments, uses, the minimum), as the charge slip has it; the lines add
 * up to the charge. A session's page and a quote's page both show one.
 */
export function breakdownTable(lines: LineView[], currency: string, perUsePrice: string | null, caption: string): SafeHtml | string {
  if (lines.length === 0) return '';
  const hhmm = (at: string) => `${at.slice(0, 10)} ${at.slice(11, 19)} UTC`;
  return html`<table class="breakdown">
<caption>${caption}</caption>
<thead><tr><th scope="col">What</th><th scope="col">Price</th><th scope="col">Charge</th></tr></thead>
<tbody>${lines.map((line) =>
    line.kind === 'time'
      ? html`<tr><th scope="row">${hhmm(line.from)} to ${hhmm(line.to)} (${line.seconds} s)</th><td>${line.pricePerMinute} ${currency} a minute</td><td>${line.charge}</td></tr>`
      : line.kind === 'uses'
        ? html`<tr><th scope="row">${line.units} uses</th><td>${perUsePrice ? `${perUsePrice} ${currency} each` : ''}</td><td>${line.charge}</td></tr>`
        : html`<tr><th scope="row">Minimum charge</th><td></td><td>${line.charge}</td></tr>`,
  )}</tbody>
</table>`;
}

/** `typed`: what the extend form was sent with, shown again when it was refused. */
export function sessionPage(ctx: PortalContext, view: SessionView, serviceName: string, now: number, serviceLink: ServiceLink = null, typed: { maxCharge?: string | undefined } = {}): SafeHtml {
  const live = sessionLive(view, now);
  return portalPage(
    ctx,
    `Session on ${serviceName}`,
    html`<section class="session" data-live="/sessions/${view.id}/events">
<dl class="facts">
<dt>State</dt><dd data-field="state">${live.state}</dd>
<dt>Accrued charge</dt><dd><output data-field="accrued">${live.accrued}</output> ${live.currency}</dd>
<dt>Charge limit</dt><dd><span data-field="maxCharge">${live.maxCharge}</span> ${live.currency}</dd>
<dt>Time left</dt><dd><output data-field="timeLeft">${live.timeLeft}</output></dd>
<dt>Charge</dt><dd data-field="charge">${money(live.charge, live.currency)}</dd>
</dl>
<p class="notice" data-field="warning" role="alert"${live.warning ? '' : html` hidden`}>${live.warning ?? ''}</p>
<p class="ended" data-field="endedText" role="status" aria-live="polite"${live.ended ? '' : html` hidden`}>${live.endedText ?? ''}</p>
<p class="slip" data-field="slip"${live.chargeSlip ? '' : html` hidden`}>${slipText(live)}</p>
${breakdownTable(view.lines, view.currency, view.tariff.perUse?.price ?? null, `Price breakdown${view.charge === null ? ' so far' : ''}`)}
<div class="actions" data-show="running"${live.running ? '' : html` hidden`}>
${serviceLink ? html`<p><a class="button" href="${serviceLink}" target="_blank" rel="noopener noreferrer">Open ${serviceName} in a new tab</a></p>` : ''}
<form method="post" action="/sessions/${view.id}/extend">
${csrfInput(ctx.csrf)}
${field({ name: 'maxCharge', label: 'New charge limit', inputmode: 'decimal', value: typed.maxCharge, hint: `Higher than ${live.maxCharge} ${live.currency}` })}
<button type="submit">Extend</button>
</form>
<form method="post" action="/sessions/${view.id}/logoff">${csrfInput(ctx.csrf)}<button type="submit" class="danger">Log off</button></form>
</div>
</section>
<p><a href="/account">Your account and all your sessions</a></p>`,
    ['portal.js'],
  );
}
