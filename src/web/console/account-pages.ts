import type { AccountHistoryLine } from '../../accounts/account-rows.js';
import type { RefundView } from '../../accounts/refunds.js';
import type { AccountView } from '../../accounts/accounts.js';
import type { StatementView } from '../../statements/statement-view.js';
import { html, type SafeHtml } from '../html.js';
import { csrfInput, errorSummary, field, selectField } from '../layout.js';
import { statementRow } from '../statement-rows.js';
import { consolePage, type ConsoleContext } from './pages.js';

export const ACCOUNT_STATES = ['new', 'active', 'suspended', 'closed'] as const;
const when = (iso: string) => html`<time datetime="${iso}">${iso.replace('T', ' ').slice(0, 16)} UTC</time>`;

export function accountsPage(ctx: ConsoleContext, accounts: AccountView[], filter: { state?: string | undefined; search?: string | undefined }, nextCursor: string | null): SafeHtml {
  const query = new URLSearchParams(Object.entries(filter).filter((e): e is [string, string] => Boolean(e[1])));
  return consolePage(
    ctx,
    'Accounts',
    html`<form method="get" action="/ops/accounts" class="filters" aria-label="Filter accounts">
${field({ name: 'search', label: 'Name or e-mail contains', value: filter.search })}
${selectField({ name: 'state', label: 'State', options: [{ value: '', text: 'any' }, ...ACCOUNT_STATES.map((s) => ({ value: s, text: s }))], value: filter.state ?? '' })}
<button type="submit">Filter</button>
</form>
<table>
<thead><tr><th scope="col">Customer</th><th scope="col">E-mail</th><th scope="col">State</th><th scope="col">Pays by</th><th scope="col">Balance</th><th scope="col">Reserved of limit</th><th scope="col">Since</th></tr></thead>
<tbody>${accounts.map(
      (a) => html`<tr><th scope="row"><a href="/ops/accounts/${a.id}">${a.name}</a></th><td>${a.email}</td><td>${a.state}</td><td>${a.paymentMode}</td>
<td>${a.paymentMode === 'prepaid' ? `${a.balance} ${a.currency}` : '—'}</td><td>${a.reserved} of ${a.outstandingLimit} ${a.currency}</td><td>${when(a.createdAt)}</td></tr>`,
    )}</tbody>
</table>
${accounts.length === 0 ? html`<p>No account matches.</p>` : ''}
${nextCursor ? html`<p><a href="/ops/accounts?${query.toString()}${query.size > 0 ? '&' : ''}cursor=${encodeURIComponent(nextCursor)}">Older accounts</a></p>` : ''}`,
  );
}

/** The state changes an operator may ask for, with what each does; the account machine says which it takes now. */
export const STATE_ACTIONS = [
  { action: 'suspend', label: 'Suspend', why: 'no new sessions; running ones are ended and settled' },
  { action: 'resume', label: 'Resume', why: 'sessions may open again' },
  { action: 'close', label: 'Close', why: 'for good, once every session has settled' },
] as const;
export type StateAction = (typeof STATE_ACTIONS)[number]['action'];

export interface AccountPageOptions {
  account: AccountView;
  /** The balance sent back to the card at the close. */
  refunds: RefundView[];
  history: AccountHistoryLine[];
  statements: StatementView[];
  /** The state changes the account's machine would take now. */
  actions: StateAction[];
  canRescue: boolean;
  canAdmin: boolean;
  errors?: Record<string, string>;
  formError?: string | null;
  /** What was typed in the form that failed. */
  values?: Record<string, string | undefined>;
}

export function consoleAccountPage(ctx: ConsoleContext, options: AccountPageOptions): SafeHtml {
  const { account, errors = {}, values = {} } = options;
  const reasonField = (form: string, label: string) =>
    field({ name: 'reason', id: `f-${form}-reason`, label, value: values.form === form ? values.reason : undefined, error: errors[`${form}.reason`] });
  return consolePage(
    ctx,
    `Account of ${account.name}`,
    html`${errorSummary(errors, options.formError ?? null)}
<dl class="facts">
<dt>Account</dt><dd>${account.id}</dd>
<dt>E-mail</dt><dd>${account.email}</dd>
<dt>State</dt><dd data-field="state">${account.state}</dd>
<dt>Pays by</dt><dd>${account.paymentMode}</dd>
<dt>Prepaid balance</dt><dd>${account.balance} ${account.currency} free, ${account.balanceHeld} ${account.currency} held by open sessions</dd>
<dt>Outstanding limit</dt><dd>${account.outstandingLimit} ${account.currency}, ${account.reserved} reserved now</dd>
<dt>Card</dt><dd>${account.card.brand} ending ${account.card.last4}</dd>
<dt>Statements</dt><dd>every ${account.statementPeriod}</dd>
</dl>
${
  options.canRescue && options.actions.length > 0
    ? html`<section class="panel"><h2>Change the state</h2>
${STATE_ACTIONS.filter((a) => options.actions.includes(a.action)).map(
  (a) => html`<form method="post" action="/ops/accounts/${account.id}/${a.action}" class="filters">
${csrfInput(ctx.csrf)}<input type="hidden" name="form" value="${a.action}">
${reasonField(a.action, `Reason to ${a.label.toLowerCase()}`)}
<button type="submit" class="${a.action === 'resume' ? '' : 'danger'}">${a.label} account</button> <span class="hint">${a.why}</span>
</form>`,
)}</section>`
    : ''
}
${
  options.canAdmin
    ? html`<section class="panel"><h2>How the account pays</h2>
<form method="post" action="/ops/accounts/${account.id}/payment-mode" class="filters">
${csrfInput(ctx.csrf)}<input type="hidden" name="form" value="payment-mode">
${selectField({
  name: 'paymentMode',
  label: 'Payment mode',
  options: [
    { value: 'card', text: 'card: each session holds on the card' },
    { value: 'prepaid', text: 'prepaid: sessions hold on the balance' },
    { value: 'postpaid', text: 'postpaid: trusted, charged on the statement' },
  ],
  value: values.form === 'payment-mode' ? values.paymentMode : account.paymentMode,
  error: errors['payment-mode.paymentMode'],
})}
${reasonField('payment-mode', 'Reason for the change')}
<button type="submit">Set payment mode</button>
</form></section>`
    : ''
}
<section class="panel"><h2>Statements</h2>
${
  options.statements.length === 0
    ? html`<p>No statement yet: the first comes when the account's first ${account.statementPeriod} ends.</p>`
    : html`<table><thead><tr><th scope="col">Period</th><th scope="col">Charges</th><th scope="col">Top-ups</th><th scope="col">Due</th><th scope="col">Download</th></tr></thead>
<tbody>${options.statements.map((s) => statementRow(s, `/ops/accounts/${account.id}/statements/${s.id}`))}</tbody></table>`
}</section>
${
  options.refunds.length === 0
    ? ''
    : html`<section class="panel"><h2>Refunds of the balance</h2>
<p class="hint">Sent to the card when the account closed. Pending ones are sent again, with the same key, until the card company answers; refused ones are still owed to the customer and must be settled by hand.</p>
<table data-field="refunds"><thead><tr><th scope="col">When</th><th scope="col">Amount</th><th scope="col">Against capture</th><th scope="col">State</th><th scope="col">Attempts</th><th scope="col">Last error</th></tr></thead>
<tbody>${options.refunds.map(
        (r) => html`<tr><td>${when(r.createdAt)}</td><td>${r.amount} ${r.currency}</td><td>${r.captureId}</td><td>${r.state}${r.refundId ? ` (${r.refundId})` : ''}</td><td>${r.attempts}</td><td>${r.lastError ?? '—'}</td></tr>`,
      )}</tbody></table></section>`
}
<section class="panel"><h2>History</h2>
<table><thead><tr><th scope="col">When</th><th scope="col">Change</th><th scope="col">By</th><th scope="col">Reason</th></tr></thead>
<tbody>${options.history.map(
      (h) => html`<tr><td>${when(h.at)}</td><td>${h.from ?? '(new)'} → ${h.to}</td><td>${h.by.name} (${h.by.kind})</td><td>${h.reason}</td></tr>`,
    )}</tbody></table></section>`,
  );
}
