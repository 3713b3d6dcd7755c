import { cutoffOf } from '../billing/charge.js';
import { formatAmount } from '../billing/money.js';
import { lineView, tariffView } from '../sessions/session-view.js';
import { agreedHold, type Quote } from './quotes.js';

/**
 * How long a session opened on the quote runs, with no use: its time, or what its total buys. The
 * lines count billed seconds, and billed by increments the last one is charged when it starts, so
 * a total can buy less time than its lines bill (an outside probe's 2.00 at 0.70 a minute, by the
 * minute: 180 s billed, 121 s run).
 */
function runsForSeconds(quote: Quote): number {
  const hold = agreedHold(quote, quote.startAt);
  return cutoffOf({ tariff: quote.tariff, startedAt: quote.startAt, resumes: [], maxChargeMicros: hold, maxMs: quote.maxMs, usesMicros: 0n }).afterMs / 1000;
}

/** A quote as the API shows it. */
export function quoteView(quote: Quote) {
  return {
    id: quote.id,
    serviceId: quote.serviceId,
    startAt: new Date(quote.startAt).toISOString(),
    minutes: quote.maxMs === null ? null : quote.maxMs / 60_000,
    runsForSeconds: runsForSeconds(quote),
    total: formatAmount(quote.totalMicros),
    lines: quote.lines.map(lineView),
    tariff: tariffView(quote.tariff),
    expiresAt: new Date(quote.expiresAt).toISOString(),
    sessionId: quote.sessionId,
  };
}
