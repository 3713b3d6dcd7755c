import { stringify } from 'csv-stringify/sync';
import PDFDocument from 'pdfkit';
import { formatAmount } from '../billing/money.js';
import type { StoredStatement } from './statement-sql.js';

export interface StatementView {
  id: string;
  period: 'month' | 'week';
  periodStart: string;
  periodEnd: string;
  currency: string;
  /** `due`: what postpaid sessions owe, charged to the card with this statement (`charge`). */
  /** The balance's moves add up: topUps − paidFromBalance − refunds is what the balance grew by over the period. */
  totals: { charges: string; paidByCard: string; paidFromBalance: string; topUps: string; refunds: string; due: string };
  charge: { state: 'none' | 'pending' | 'charged' | 'declined'; chargeId: string | null; declineReason: string | null };
  sessions: {
    sessionId: string;
    serviceId: string;
    service: string;
    startedAt: string | null;
    endedAt: string | null;
    minutes: number;
    uses: number;
    charge: string;
    paidFrom: 'card' | 'balance' | 'postpaid';
    chargeSlipId: string;
    capturedAt: string;
  }[];
  topUps: { topUpId: string; amount: string; chargeId: string | null; at: string }[];
  /** A closed account's balance sent back to the card, dated at the close. */
  refunds: { refundId: string; topUpId: string; captureId: string; amount: string; state: 'pending' | 'refunded' | 'refused'; at: string }[];
  producedAt: string;
}

/** A statement as the API shows it: amounts as decimal strings (DESIGN rule 4). */
export function statementView(s: StoredStatement): StatementView {
  return {
    id: s.id,
    period: s.period,
    periodStart: s.periodStart.toISOString(),
    periodEnd: s.periodEnd.toISOString(),
    currency: s.currency,
    totals: {
      charges: formatAmount(s.chargesMicros),
      paidByCard: formatAmount(s.paidByCardMicros),
      paidFromBalance: formatAmount(s.paidFromBalanceMicros),
      topUps: formatAmount(s.topUpsMicros),
      refunds: formatAmount(s.refundsMicros),
      due: formatAmount(s.dueMicros),
    },
    charge: { state: s.chargeState, chargeId: s.chargeId, declineReason: s.chargeDeclineReason },
    sessions: s.lines.flatMap((line) => {
      if (line.kind !== 'session') return [];
      const { kind: _kind, chargeMicros, ...rest } = line;
      return [{ ...rest, charge: formatAmount(BigInt(chargeMicros)) }];
    }),
    topUps: s.lines.flatMap((line) => (line.kind === 'top_up' ? [{ topUpId: line.topUpId, amount: formatAmount(BigInt(line.amountMicros)), chargeId: line.chargeId, at: line.at }] : [])),
    refunds: s.lines.flatMap((line) =>
      line.kind === 'refund'
        ? [{ refundId: line.refundId, topUpId: line.topUpId, captureId: line.captureId, amount: formatAmount(BigInt(line.amountMicros)), state: line.state, at: line.at }]
        : [],
    ),
    producedAt: s.producedAt.toISOString(),
  };
}

const CSV_COLUMNS = ['kind', 'id', 'service', 'startedAt', 'endedAt', 'minutes', 'uses', 'amount', 'paidFrom', 'at', 'state'];

/** How the charge of what is due stands, as the PDF says it: never "charged" before the card company said so. */
function dueChargeText(charge: StatementView['charge']): string {
  switch (charge.state) {
    case 'none':
      return 'nothing to charge';
    case 'pending':
      return 'being charged to the card';
    case 'charged':
      return `charged to the card (${charge.chargeId ?? ''})`;
    case 'declined':
      return `declined by the card company (${charge.declineReason ?? 'declined'}): still owed, and charged to the next card the account is given`;
  }
}

/** One row per line, then the totals; formulas escaped (OWASP's CSV injection advice), as the session log does. */
export function statementCsv(view: StatementView): string {
  const rows = [
    ...view.sessions.map((s) => ({ kind: 'session', id: s.sessionId, service: s.service, startedAt: s.startedAt, endedAt: s.endedAt, minutes: s.minutes, uses: s.uses, amount: s.charge, paidFrom: s.paidFrom, at: s.capturedAt })),
    ...view.topUps.map((t) => ({ kind: 'top_up', id: t.topUpId, amount: t.amount, paidFrom: 'card', at: t.at })),
    ...view.refunds.map((r) => ({ kind: `refund_${r.state}`, id: r.refundId, amount: r.amount, paidFrom: 'card', at: r.at })),
    { kind: 'total_charges', amount: view.totals.charges },
    { kind: 'total_paid_by_card', amount: view.totals.paidByCard },
    { kind: 'total_paid_from_balance', amount: view.totals.paidFromBalance },
    { kind: 'total_top_ups', amount: view.totals.topUps },
    { kind: 'total_refunds', amount: view.totals.refunds },
    { kind: 'total_due', amount: view.totals.due },
    // How the charge of what is due stands: `declined: <reason>` is still owed.
    { kind: 'due_charge', id: view.charge.chargeId, amount: view.totals.due, state: view.charge.state === 'declined' ? `declined: ${view.charge.declineReason ?? ''}` : view.charge.state },
  ];
  return stringify(rows, { header: true, columns: CSV_COLUMNS, cast: { number: (n) => String(n) }, escape_formulas: true });
}

/**
 * The statement as a PDF (pdfkit: maintained, pure JavaScript, the standard PDF fonts built in,
 * so nothing is fetched or installed beside it). Plain text lines: what a customer files away.
 */
export function statementPdf(view: StatementView, customer: { name: string; email: string }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const doc = new PDFDocument({ size: 'A4', margin: 50, info: { Title: `tollgate statement ${view.periodStart.slice(0, 10)}`, Author: 'tollgate' } });
    const chunks: Buffer[] = [];
    doc.on('data', (chunk: Buffer) => chunks.push(chunk));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
    doc.font('Helvetica-Bold').fontSize(16).text('Statement');
    doc.font('Helvetica').fontSize(10).moveDown(0.5);
    doc.text(`${customer.name} <${customer.email}>`);
    doc.text(`Period: ${view.periodStart} to ${view.periodEnd} (${view.period}), ${view.currency}`);
    doc.text(`Statement ${view.id}, produced ${view.producedAt}`);
    doc.moveDown();
    doc.font('Helvetica-Bold').text('Sessions');
    doc.font('Helvetica');
    if (view.sessions.length === 0) doc.text('None.');
    for (const s of view.sessions) {
      doc.text(`${s.startedAt ?? '-'}  ${s.service}  ${s.minutes} min  ${s.uses} uses  ${s.charge} ${view.currency}  (${s.paidFrom})`);
    }
    doc.moveDown();
    doc.font('Helvetica-Bold').text('Top-ups');
    doc.font('Helvetica');
    if (view.topUps.length === 0) doc.text('None.');
    for (const t of view.topUps) doc.text(`${t.at}  ${t.amount} ${view.currency}`);
    if (view.refunds.length > 0) {
      doc.moveDown();
      doc.font('Helvetica-Bold').text('Refunds to the card (the balance at closing)');
      doc.font('Helvetica');
      for (const r of view.refunds) doc.text(`${r.at}  ${r.amount} ${view.currency}  (${r.state})`);
    }
    doc.moveDown();
    doc.font('Helvetica-Bold').text('Totals');
    doc.font('Helvetica');
    doc.text(`Charges: ${view.totals.charges}`);
    doc.text(`Paid by card: ${view.totals.paidByCard}`);
    doc.text(`Paid from the prepaid balance: ${view.totals.paidFromBalance}`);
    doc.text(`Top-ups charged to the card: ${view.totals.topUps}`);
    doc.text(`Refunded to the card: ${view.totals.refunds}`);
    doc.text(`Due (postpaid): ${view.totals.due}, ${dueChargeText(view.charge)}`);
    doc.end();
  });
}

export type StatementFormat = 'json' | 'csv' | 'pdf';

/** A statement as a file to download, in the format asked: the customer API, the portal and the console all answer with this. */
export async function statementFile(view: StatementView, format: StatementFormat, customer: { name: string; email: string }): Promise<{ type: string; filename: string; body: string | Buffer }> {
  const name = `statement-${view.periodStart.slice(0, 10)}`;
  if (format === 'csv') return { type: 'text/csv; charset=utf-8', filename: `${name}.csv`, body: statementCsv(view) };
  if (format === 'pdf') return { type: 'application/pdf', filename: `${name}.pdf`, body: await statementPdf(view, customer) };
  return { type: 'application/json; charset=utf-8', filename: `${name}.json`, body: JSON.stringify(view) };
}
