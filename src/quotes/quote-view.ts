import { formatAmount } from '../billing/money.js';
import { lineView, tariffView } from '../sessions/session-view.js';
import type { Quote } from './quotes.js';

/** A quote as the API shows it. */
export function quoteView(quote: Quote) {
  return {
    id: quote.id,
    serviceId: quote.serviceId,
    startAt: new Date(quote.startAt).toISOString(),
    minutes: quote.maxMs === null ? null : quote.maxMs / 60_000,
    total: formatAmount(quote.totalMicros),
    lines: quote.lines.map(lineView),
    tariff: tariffView(quote.tariff),
    expiresAt: new Date(quote.expiresAt).toISOString(),
    sessionId: quote.sessionId,
  };
}
