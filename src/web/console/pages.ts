import { inCents } from '../../billing/money.js';
import { END_REASONS, sessionMachine } from '../../../machines/session/index.js';
import type { SessionLogRow } from '../../reports/session-log.js';
import type { HistoryLine } from '../../sessions/ops-queries.js';
import type { OpsSessionView } from '../../sessions/queries.js';
import { html, type SafeHtml } from '../html.js';
import { csrfInput, field, page } from '../layout.js';

export interface ConsoleContext {
  /** Null on the log-in page. */
  operator: { name: string; role: string } | null;
  csrf: string;
  flash?: { kind: 'ok' | 'error'; text: string } | null;
}

export const SESSION_STATES = ['authorizing', 'active', 'over_limit', 'closing', 'settled', 'declined'] as const;

function nav(ctx: ConsoleContext): SafeHtml {
  if (!ctx.operator) return html`<a href="/ops/login">Operator log-in</a> <a href="/docs">API reference</a>`;
  return html`<a href="/ops">Servers</a> <a href="/ops/sessions">Sessions</a> <a href="/ops/sessions?stuck=true">Stuck</a> <a href="/ops/accounts">Accounts</a> <a href="/ops/webhooks">Webhooks</a> <a href="/ops/log">Marketing log</a> <a href="/ops/charts">Charts</a> <a href="/docs">API reference</a>
<span class="hint">${ctx.operator.name} (${ctx.operator.role})</span>
<form class="inline" method="post" action="/ops/logout">${csrfInput(ctx.csrf)}<button type="submit">Log out</button></form>`;
}

export const consolePage = (ctx: ConsoleContext, title: string, body: SafeHtml, scripts: string[] = []) =>
  page({ title, nav: nav(ctx), flash: ctx.flash ?? null, scripts }, body);

export function consoleLogInPage(ctx: ConsoleContext, name = '', formError: string | null = null): SafeHtml {
  return consolePage(
    ctx,
    'Operator log-in',
    html`${formError ? html`<div class="error-summary" role="alert"><p>${formError}</p></div>` : ''}
<form method="post" action="/ops/login">
${csrfInput(ctx.csrf)}
${field({ name: 'name', label: 'Operator name', autocomplete: 'username', value: name })}
${field({ name: 'password', label: 'Password', type: 'password', autocomplete: 'current-password' })}
<button type="submit">Log in</button>
</form>`,
  );
}

export interface GateRow {
  id: string;
  name: string;
  maxUsers: number;
  activeUsers: number;
  queued: number;
  oldestWaitSeconds: number | null;
}

export interface ServerRow extends GateRow {
  services: (GateRow & { pricePerMinute: string; currency: string })[];
  connectedCustomers: number;
}

const occupancyCells = (kind: 'server' | 'service', gate: GateRow) => html`<td data-gate="${kind}:${gate.id}">
<meter min="0" max="${Math.max(1, gate.maxUsers)}" value="${gate.activeUsers}" data-field="meter" aria-label="${gate.name} occupancy"></meter>
<span data-field="activeUsers">${gate.activeUsers}</span> of <span data-field="maxUsers">${gate.maxUsers}</span> in use</td>
<td data-gate-queue="${kind}:${gate.id}"><span data-field="queued">${gate.queued}</span> queued<span data-field="wait">${gate.oldestWaitSeconds === null ? '' : `, oldest ${Math.round(gate.oldestWaitSeconds)} s`}</span></td>`;

/** A row's change the console refused: what was typed, and each field's error, shown in that row. */
export interface RefusedChange {
  id: string;
  values: Record<string, string>;
  errors: Record<string, string>;
}

export function serversPage(ctx: ConsoleContext, servers: ServerRow[], canEdit: boolean, refused: RefusedChange | null = null): SafeHtml {
  // Each row's fields have ids of their own (a label names its own row's input), and the refused row keeps what was typed.
  const input = (rowId: string, name: string, label: string, inputmode: string, stored: string) =>
    field({
      name,
      id: `f-${rowId}-${name}`,
      label,
      inputmode,
      value: refused?.id === rowId ? (refused.values[name] ?? stored) : stored,
      error: refused?.id === rowId ? refused.errors[name] : undefined,
    });
  return consolePage(
    ctx,
    'Servers and services',
    html`<p>Occupancy against caps, updated live.</p>
${servers.map(
  (server) => html`<section class="server">
<h2>Server ${server.name}</h2>
<table>
<thead><tr><th scope="col">Name</th><th scope="col">Occupancy</th><th scope="col">Queue</th><th scope="col">Price per minute</th>${canEdit ? html`<th scope="col">Change</th>` : ''}</tr></thead>
<tbody>
<tr><th scope="row">${server.name} (whole server, ${server.connectedCustomers} customers)</th>${occupancyCells('server', server)}<td>—</td>
${canEdit ? html`<td><form method="post" action="/ops/servers/${server.id}" class="filters">${csrfInput(ctx.csrf)}${input(server.id, 'maxUsers', `Cap of ${server.name}`, 'numeric', String(server.maxUsers))}<button type="submit">Save cap</button></form></td>` : ''}</tr>
${server.services.map(
  (s) => html`<tr><th scope="row">${s.name} <a href="/ops/services/${s.id}/tariff">Tariff${html`<span class="visually-hidden"> of ${s.name}</span>`}</a></th>${occupancyCells('service', s)}<td>${s.pricePerMinute} ${s.currency}</td>
${canEdit ? html`<td><form method="post" action="/ops/services/${s.id}" class="filters">${csrfInput(ctx.csrf)}${input(s.id, 'maxUsers', `Cap of ${s.name}`, 'numeric', String(s.maxUsers))}${input(s.id, 'pricePerMinute', `Price per minute of ${s.name}`, 'decimal', s.pricePerMinute)}<button type="submit">Save ${s.name}</button></form></td>` : ''}</tr>`,
)}
</tbody>
</table>
</section>`,
)}`,
    ['ops.js'],
  );
}

const when = (iso: string | null) => (iso ? html`<time datetime="${iso}">${iso.replace('T', ' ').slice(0, 19)}</time>` : '—');

export function sessionsPage(
  ctx: ConsoleContext,
  sessions: OpsSessionView[],
  filter: { state?: string | undefined; stuck?: string | undefined; serviceId?: string | undefined },
  services: { id: string; name: string }[],
  nextCursor: string | null,
  serviceName: (id: string) => string,
  canRescue = false,
): SafeHtml {
  const query = new URLSearchParams(Object.entries(filter).filter((e): e is [string, string] => Boolean(e[1])));
  return consolePage(
    ctx,
    filter.stuck === 'true' ? 'Stuck sessions' : 'Sessions',
    html`<form method="get" action="/ops/sessions" class="filters" aria-label="Filter sessions">
<div class="field"><label for="f-state">State</label><select id="f-state" name="state"><option value="">any</option>${SESSION_STATES.map((s) => html`<option value="${s}"${filter.state === s ? ' selected' : ''}>${s}</option>`)}</select></div>
<div class="field"><label for="f-service">Service</label><select id="f-service" name="serviceId"><option value="">any</option>${services.map((s) => html`<option value="${s.id}"${filter.serviceId === s.id ? ' selected' : ''}>${s.name}</option>`)}</select></div>
<div class="field"><label for="f-stuck"><input type="checkbox" id="f-stuck" name="stuck" value="true"${filter.stuck === 'true' ? ' checked' : ''}> Stuck only</label></div>
<button type="submit">Filter</button>
</form>
<table>
<thead><tr><th scope="col">Session</th><th scope="col">Service</th><th scope="col">State</th><th scope="col">Opened</th><th scope="col">Charge</th><th scope="col">Stuck</th></tr></thead>
<tbody>${sessions.map(
      (s) => html`<tr>
<th scope="row"><a href="/ops/sessions/${s.id}">${s.id.slice(0, 8)}</a></th><td>${serviceName(s.serviceId)}</td><td>${s.path}${s.held ? ' (held)' : ''}</td><td>${when(s.createdAt)}</td>
<td>${s.charge ? `${s.charge} ${s.currency}` : `${inCents(s.accrued)} ${s.currency} so far`}</td><td>${s.stuck ? html`<span class="stuck">${s.stuckReason ?? 'stuck'}</span>${canRescue ? rescueForms(ctx, s.id, true) : ''}` : 'no'}</td></tr>`,
    )}</tbody>
</table>
${sessions.length === 0 ? html`<p>No session matches.</p>` : ''}
${nextCursor ? html`<p><a href="/ops/sessions?${query.toString()}${query.size > 0 ? '&' : ''}cursor=${encodeURIComponent(nextCursor)}">Older sessions</a></p>` : ''}`,
  );
}

/** A final state of the session machine (by its definition): one there takes no rescue, so none is offered. */
const isFinal = (path: string): boolean => (sessionMachine.states as Record<string, { type?: string } | undefined>)[path]?.type === 'final';

const RESCUES: { action: string; label: string; why: string }[] = [
  { action: 'retry', label: 'Retry', why: 'retry the call the session waits on, or its writes; run a held session again' },
  { action: 'terminate', label: 'Terminate', why: 'end a running session, or give up on an authorization' },
  { action: 'void', label: 'Void', why: 'forgive a charge that cannot be captured: the hold is voided' },
];

/** The rescue actions as forms; in a list each button names its session for screen readers. */
function rescueForms(ctx: ConsoleContext, sessionId: string, compact: boolean): SafeHtml {
  return html`<div class="actions">${RESCUES.map(
    (r) => html`<form method="post" action="/ops/sessions/${sessionId}/${r.action}">${csrfInput(ctx.csrf)}<button type="submit" class="secondary"${compact ? '' : html` aria-describedby="why-${r.action}"`}>${r.label}${compact ? html`<span class="visually-hidden"> session ${sessionId.slice(0, 8)}</span>` : ''}</button>${compact ? '' : html` <span class="hint" id="why-${r.action}">${r.why}</span>`}</form>`,
  )}</div>`;
}

export function timeline(history: HistoryLine[]): SafeHtml {
  return html`<ol class="timeline" data-field="timeline">${history.map(
    (h) => html`<li>${when(h.at)}: <strong>${h.event}</strong> ${h.from ?? '(new)'} → ${h.to}</li>`,
  )}</ol>`;
}

export function consoleSessionPage(ctx: ConsoleContext, session: OpsSessionView, history: HistoryLine[], machine: SafeHtml, serviceName: string, canRescue: boolean): SafeHtml {
  return consolePage(
    ctx,
    `Session ${session.id.slice(0, 8)}`,
    html`<section data-live="/ops/sessions/${session.id}/events" class="ops-session">
<dl class="facts">
<dt>Session</dt><dd>${session.id}</dd>
<dt>Service</dt><dd>${serviceName}</dd>
<dt>Customer account</dt><dd>${session.accountId}</dd>
<dt>State</dt><dd data-field="path">${session.path}</dd>
<dt>Stuck</dt><dd data-field="stuck">${session.stuck ? `yes: ${session.stuckReason ?? ''}` : 'no'}</dd>
<dt>Held</dt><dd>${session.held ? 'yes' : 'no'}</dd>
<dt>Accrued</dt><dd data-field="accrued">${inCents(session.accrued)} ${session.currency}</dd>
<dt>Charge limit</dt><dd>${session.maxCharge} ${session.currency}</dd>
<dt>Last error</dt><dd>${session.lastError ?? '—'}</dd>
</dl>
${
  !canRescue
    ? ''
    : isFinal(session.path)
      ? html`<h2>Rescue</h2><p>Nothing to rescue: the session is ${session.path}, and a final state takes no action.</p>`
      : html`<h2>Rescue</h2><p class="hint">The session's machine decides whether it can take an action now; one it cannot is refused with ACTION_NOT_ALLOWED.</p>
${rescueForms(ctx, session.id, false)}`
}
<h2>Transitions</h2>
${timeline(history)}
<h2>The session machine</h2>
<p class="hint">Drawn from the machine's definition; the current state is highlighted and follows the session live.</p>
${machine}
</section>`,
    ['ops.js'],
  );
}

export function sessionLogPage(
  ctx: ConsoleContext,
  rows: SessionLogRow[],
  filter: Record<string, string | undefined>,
  services: { id: string; name: string }[],
): SafeHtml {
  const query = new URLSearchParams(Object.entries(filter).filter((e): e is [string, string] => Boolean(e[1])));
  return consolePage(
    ctx,
    'Marketing log',
    html`<form method="get" action="/ops/log" class="filters" aria-label="Filter the log">
<div class="field"><label for="f-service">Service</label><select id="f-service" name="serviceId"><option value="">any</option>${services.map((s) => html`<option value="${s.id}"${filter.serviceId === s.id ? ' selected' : ''}>${s.name}</option>`)}</select></div>
<div class="field"><label for="f-endReason">End reason</label><select id="f-endReason" name="endReason"><option value="">any</option>${END_REASONS.map((r) => html`<option value="${r}"${filter.endReason === r ? ' selected' : ''}>${r}</option>`)}</select></div>
${field({ name: 'from', label: 'Opened from (date)', type: 'date', value: filter.from })}
${field({ name: 'to', label: 'Opened before (date)', type: 'date', value: filter.to })}
<button type="submit">Filter</button>
</form>
<p><a href="/ops/log.csv?${query.toString()}" download>Export CSV</a> (the rows this filter selects)</p>
<table>
<thead><tr><th scope="col">Opened</th><th scope="col">Customer</th><th scope="col">E-mail</th><th scope="col">Service</th><th scope="col">Server</th><th scope="col">Minutes</th><th scope="col">Charge</th><th scope="col">End</th></tr></thead>
<tbody>${rows.map(
      (r) => html`<tr><td>${when(r.openedAt)}</td><td>${r.customerName}</td><td>${r.customerEmail}</td><td>${r.serviceName}</td><td>${r.serverName}</td><td>${r.minutes === null ? '—' : r.minutes.toFixed(2)}</td><td>${r.charge ?? '—'} ${r.currency}</td><td>${r.endReason ?? '—'}</td></tr>`,
    )}</tbody>
</table>
${rows.length === 0 ? html`<p>No session matches.</p>` : ''}`,
  );
}
