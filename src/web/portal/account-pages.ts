import type { RefundView } from '../../accounts/refunds.js';
import type { TopUpView } from '../../accounts/top-ups.js';
import type { AccountView } from '../../accounts/accounts.js';
import type { SessionView } from '../../sessions/session-view.js';
import type { StatementView } from '../../statements/statement-view.js';
import { html, type SafeHtml } from '../html.js';
import { csrfInput, errorSummary, field, selectField } from '../layout.js';
import { statementRow } from '../statement-rows.js';
import { portalPage, type PortalContext } from './pages.js';

/** Every self-service field's label: errors name the field in the same words. */
export const ACCOUNT_LABELS: Record<string, string> = {
  paymentMode: 'Pay for sessions',
  statementPeriod: 'Statements',
  amount: 'Top-up amount',
  'card.number': 'Card number',
  'card.expMonth': 'Expiry month',
  'card.expYear': 'Expiry year',
  'card.cvc': 'CVC',
  outstandingLimit: 'Outstanding limit',
  currentPassword: 'Current password',
  newPassword: 'New password',
  reason: 'Why you are closing it (optional)',
};

export interface AccountPageData {
  account: AccountView;
  sessions: SessionView[];
  statements: StatementView[];
  topUps: TopUpView[];
  serviceName: (id: string) => string;
  /** A fresh id for the top-up form: sending it twice charges once. */
  topUpId: string;
}

export interface FormState {
  errors?: Record<string, string>;
  formError?: string | null;
  /** What was typed in the form that failed (never a card number, CVC or password). */
  values?: Record<string, string | undefined>;
}

export function accountPage(ctx: PortalContext, data: AccountPageData, state: FormState = {}): SafeHtml {
  const { account } = data;
  const errors = state.errors ?? {};
  const values = state.values ?? {};
  const text = (name: string, options: { type?: string; value?: string | undefined; hint?: string; autocomplete?: string; inputmode?: string } = {}) =>
    field({ name, label: ACCOUNT_LABELS[name]!, error: errors[name], ...options, value: options.value ?? values[name] });
  const money = (amount: string) => `${amount} ${account.currency}`;
  return portalPage(
    ctx,
    'Your account',
    html`${errorSummary(errors, state.formError ?? null)}
<dl class="facts">
<dt>Name</dt><dd>${account.name}</dd>
<dt>E-mail</dt><dd>${account.email}</dd>
<dt>State</dt><dd>${account.state}</dd>
<dt>Card</dt><dd>${account.card.brand} ending ${account.card.last4}, expires ${String(account.card.expMonth).padStart(2, '0')}/${account.card.expYear}</dd>
<dt>Pays by</dt><dd data-field="paymentMode">${account.paymentMode === 'card' ? 'a hold on the card per session' : account.paymentMode === 'prepaid' ? 'the prepaid balance' : 'postpaid: on each statement'}</dd>
${account.paymentMode === 'prepaid' ? html`<dt>Balance</dt><dd data-field="balance">${money(account.balance)}</dd><dt>Held by open sessions</dt><dd>${money(account.balanceHeld)}</dd>` : ''}
<dt>Outstanding limit</dt><dd>${money(account.outstandingLimit)}</dd>
<dt>Reserved now</dt><dd>${money(account.reserved)}</dd>
<dt>Estimated storage</dt><dd>${account.estimatedStorageGb} GB</dd>
<dt>Estimated processing</dt><dd>${account.estimatedProcessingHours} hours</dd>
</dl>

<section class="panel"><h2>How you pay</h2>
<form method="post" action="/account/payment">
${csrfInput(ctx.csrf)}
${
  account.paymentMode === 'postpaid'
    ? html`<p>Your sessions are charged on each statement; operators set this.</p>`
    : selectField({
        name: 'paymentMode',
        label: ACCOUNT_LABELS.paymentMode!,
        options: [
          { value: 'card', text: 'A hold on my card for each session' },
          { value: 'prepaid', text: 'From a prepaid balance I top up' },
        ],
        value: values.paymentMode ?? account.paymentMode,
        error: errors.paymentMode,
      })
}
${selectField({
  name: 'statementPeriod',
  label: ACCOUNT_LABELS.statementPeriod!,
  options: [
    { value: 'month', text: 'Monthly' },
    { value: 'week', text: 'Weekly' },
  ],
  value: values.statementPeriod ?? account.statementPeriod,
  error: errors.statementPeriod,
  hint: 'A new length starts with the next period.',
})}
<button type="submit">Save how you pay</button>
</form>
${
  account.paymentMode === 'prepaid'
    ? html`<form method="post" action="/account/top-up">
${csrfInput(ctx.csrf)}<input type="hidden" name="topUpId" value="${data.topUpId}">
${text('amount', { inputmode: 'decimal', hint: `Charged to your card now, in ${account.currency}, like 20.00` })}
<button type="submit">Top up</button>
</form>
${data.topUps.length > 0 ? html`<table><caption>Top-ups</caption><thead><tr><th scope="col">When</th><th scope="col">Amount</th><th scope="col">State</th></tr></thead>
<tbody>${data.topUps.slice(0, 20).map((t) => html`<tr><td>${t.createdAt.replace('T', ' ').slice(0, 16)} UTC</td><td>${money(t.amount)}</td><td>${t.state}${t.declineReason ? ` (${t.declineReason})` : ''}</td></tr>`)}</tbody></table>` : ''}`
    : ''
}
</section>

<section class="panel"><h2>Outstanding limit</h2>
<form method="post" action="/account/limit">
${csrfInput(ctx.csrf)}
${text('outstandingLimit', { inputmode: 'decimal', value: values.outstandingLimit ?? account.outstandingLimit, hint: `The most your open sessions may hold at once; not below what they hold now (${money(account.reserved)}).` })}
<button type="submit">Change outstanding limit</button>
</form></section>

<section class="panel"><h2>Change card</h2>
<form method="post" action="/account/card" novalidate>
${csrfInput(ctx.csrf)}
${text('card.number', { autocomplete: 'cc-number', inputmode: 'numeric', value: '' })}
${text('card.expMonth', { autocomplete: 'cc-exp-month', inputmode: 'numeric', hint: '1 to 12' })}
${text('card.expYear', { autocomplete: 'cc-exp-year', inputmode: 'numeric', hint: 'For example 2031' })}
${text('card.cvc', { autocomplete: 'cc-csc', inputmode: 'numeric', value: '', hint: '3 or 4 digits on the back of the card' })}
<button type="submit">Change card</button>
</form></section>

<section class="panel"><h2>Change password</h2>
<form method="post" action="/account/password">
${csrfInput(ctx.csrf)}
${text('currentPassword', { type: 'password', autocomplete: 'current-password', value: '' })}
${text('newPassword', { type: 'password', autocomplete: 'new-password', value: '', hint: 'At least 8 characters. Every other device you are logged in on is logged out.' })}
<button type="submit">Change password</button>
</form></section>

<section class="panel"><h2>Statements</h2>
${
  data.statements.length === 0
    ? html`<p>No statement yet: the first comes when your first ${account.statementPeriod} ends.</p>`
    : html`<table><thead><tr><th scope="col">Period</th><th scope="col">Charges</th><th scope="col">Top-ups</th><th scope="col">Due</th><th scope="col">Download</th></tr></thead>
<tbody>${data.statements.map((s) => statementRow(s, `/account/statements/${s.id}`))}</tbody></table>`
}</section>

<section class="panel"><h2>Your sessions</h2>
${
  data.sessions.length === 0
    ? html`<p>No sessions yet. <a href="/">Open one from the catalogue</a>.</p>`
    : html`<table>
<thead><tr><th scope="col">Service</th><th scope="col">Opened</th><th scope="col">State</th><th scope="col">Charge</th><th scope="col">Charge slip</th></tr></thead>
<tbody>${data.sessions.map(
        (s) => html`<tr>
<th scope="row"><a href="/sessions/${s.id}">${data.serviceName(s.serviceId)}</a></th>
<td><time datetime="${s.createdAt}">${s.createdAt.replace('T', ' ').slice(0, 19)} UTC</time></td>
<td>${s.state}${s.endReason ? ` (${s.endReason.replaceAll('_', ' ')})` : ''}</td>
<td>${s.charge === null ? `${s.accrued} ${s.currency} so far` : `${s.charge} ${s.currency}`}</td>
<td>${s.chargeSlip ? `${s.chargeSlip.id} (authorization ${s.chargeSlip.authorizationNumber})` : '—'}</td>
</tr>`,
      )}</tbody>
</table>`
}</section>

<section class="panel"><h2>Close your account</h2>
<p>Once every session has settled. You are logged out, and your last statement still comes.</p>
${account.balance !== '0.00' ? html`<p data-field="refundOnClose">Your unused balance, ${money(account.balance)}, goes back to your card ending ${account.card.last4} when the account closes.</p>` : ''}
<form method="post" action="/account/close">
${csrfInput(ctx.csrf)}
${text('reason')}
<button type="submit" class="danger">Close account</button>
</form></section>`,
  );
}

export function closedPage(ctx: PortalContext, refunds: RefundView[], card: { last4: string }): SafeHtml {
  const refundLine = (r: RefundView) =>
    r.state === 'refunded'
      ? html`<li>${r.amount} ${r.currency} refunded to your card ending ${card.last4}</li>`
      : r.state === 'pending'
        ? html`<li>${r.amount} ${r.currency} on its way back to your card ending ${card.last4}: the card company has not answered yet, and it is sent again until it does</li>`
        : html`<li>${r.amount} ${r.currency} refused by the card company: our operators will return it to you</li>`;
  return portalPage(
    ctx,
    'Account closed',
    html`<p role="status">Your account is closed and you are logged out. Your last statement is still produced at the end of its period.</p>
${refunds.length > 0 ? html`<h2>Your unused balance</h2><ul data-field="refunds">${refunds.map(refundLine)}</ul>` : ''}
<p><a href="/">Back to the catalogue</a></p>`,
  );
}
