import { randomUUID } from 'node:crypto';
import { chargeOfTime, cutoffOf, holdForTime, itemize, minimumChargeOf, type ChargeLine } from '../billing/charge.js';
import { formatAmount, minMicros, type Micros } from '../billing/money.js';
import type { TariffSpec } from '../billing/tariff.js';
import type { ServiceRecord } from '../catalogue/catalogue.js';
import type { Catalogue } from '../catalogue/catalogue-service.js';
import type { Clock } from '../clock.js';
import type { Queryable } from '../db/sql.js';
import { errors } from '../errors.js';

/**
 * A price agreed before use (the CMU billing server's price agreement): for a service, a time or
 * a charge, from a start; the breakdown and the total at the service's tariff as it is now. A
 * session opened with it runs on that tariff, whatever the list price becomes, and its charge is
 * checked against the total.
 */
export interface Quote {
  id: string;
  accountId: string;
  serviceId: string;
  tariff: TariffSpec;
  startAt: number;
  /** The agreed time, or null when a charge was agreed (the time it buys is then the limit). */
  maxMs: number | null;
  totalMicros: Micros;
  lines: ChargeLine[];
  createdAt: number;
  expiresAt: number;
  sessionId: string | null;
}

export interface QuoteRequest {
  accountId: string;
  service: ServiceRecord;
  maxMs: number | null;
  maxChargeMicros: Micros | null;
  startAt: number;
  now: number;
  validityMs: number;
}

/**
 * Prices a quote: a time costs what a session of that time is charged (to the cent, at least the
 * minimum), a charge buys the time it buys. The lines are what a session opened at the start is
 * charged, on the hold it would have (agreedHold), so they add up to the total.
 */
export function priceQuote(request: QuoteRequest): Quote {
  const tariff = request.service.tariff;
  const base = { tariff, startedAt: request.startAt, resumes: [] };
  let totalMicros: Micros;
  let billableMs: number;
  if (request.maxMs !== null) {
    totalMicros = chargeOfTime(base, request.maxMs);
    if (request.maxChargeMicros !== null && request.maxChargeMicros < totalMicros) totalMicros = request.maxChargeMicros;
    billableMs = request.maxMs;
  } else if (request.maxChargeMicros !== null) {
    const cutoff = cutoffOf({ ...base, maxChargeMicros: request.maxChargeMicros, maxMs: null, usesMicros: 0n });
    billableMs = cutoff.afterMs;
    // A charge the longest span does not reach (hours priced 0, or almost): the total is what that
    // span costs, never more than asked (a minimum charge above it is refused below).
    totalMicros = cutoff.reason === 'charge_limit' ? request.maxChargeMicros : minMicros(chargeOfTime(base, billableMs), request.maxChargeMicros);
  } else {
    throw errors.validation('A quote is for minutes, a maximum charge, or both.');
  }
  if (totalMicros <= 0n) throw errors.validation('This use costs nothing: there is nothing to agree.');
  // Only a maximum charge can bring the total under the minimum (a time's charge includes it).
  const minimum = minimumChargeOf(tariff);
  if (totalMicros < minimum) throw errors.limitBelowMinimum(formatAmount(minimum));
  const hold = agreedHold({ tariff, maxMs: request.maxMs, totalMicros }, request.startAt);
  const terms = { ...base, maxChargeMicros: hold, maxMs: request.maxMs, usesMicros: 0n };
  return {
    id: randomUUID(),
    accountId: request.accountId,
    serviceId: request.service.id,
    tariff,
    startAt: request.startAt,
    maxMs: request.maxMs,
    totalMicros,
    lines: itemize(terms, billableMs, { units: 0, micros: 0n }),
    createdAt: request.now,
    // Its price is for a session from its start: it holds for the validity from then.
    expiresAt: request.startAt + request.validityMs,
    sessionId: null,
  };
}

/**
 * What a session opened on the quote holds: the agreed total, or, for an agreed time it pays in
 * full, what lets that time bind (holdForTime: one cent more where the charge, rounded to cents,
 * would reach the total before the time is up). The charge is still at most the time's cost, the total; with
 * per-use prices a use may not take that cent (limitWith in machines/session/session.terms.ts):
 * an outside probe's three minutes on such a service were cut at 121 s for the whole total.
 */
export function agreedHold(quote: Pick<Quote, 'tariff' | 'maxMs' | 'totalMicros'>, at: number): Micros {
  const { tariff, maxMs, totalMicros } = quote;
  if (maxMs === null) return totalMicros;
  if (chargeOfTime({ tariff, startedAt: at, resumes: [] }, maxMs) > totalMicros) return totalMicros;
  return holdForTime({ tariff, at, maxMs, holdMicros: totalMicros });
}

/**
 * A customer asks for a quote: the service as the catalogue has it now, priced and stored (the
 * JSON API's POST /v1/quotes and the portal's quote page both come here).
 */
export async function quoteFor(
  deps: { sql: Queryable; catalogue: Pick<Catalogue, 'service'>; clock: Clock; quoteValidityMs: number; limits: { maxAmountMicros: bigint } },
  request: { accountId: string; serviceId: string; maxMinutes?: number | undefined; maxCharge?: Micros | undefined; startAt?: string | undefined },
): Promise<Quote> {
  const service = deps.catalogue.service(request.serviceId);
  if (!service) throw errors.serviceNotFound();
  const now = deps.clock.now();
  const quote = priceQuote({
    accountId: request.accountId,
    service,
    maxMs: request.maxMinutes === undefined ? null : Math.round(request.maxMinutes * 60_000),
    maxChargeMicros: request.maxCharge ?? null,
    startAt: startOf(request.startAt, now),
    now,
    validityMs: deps.quoteValidityMs,
  });
  // A session's limit is at most MAX_AMOUNT, however asked: a quote's hold becomes its limit
  // (a postpaid account's, checked against nothing else: an outside probe opened one of 100,800,000.00).
  const hold = agreedHold(quote, quote.startAt);
  if (hold > deps.limits.maxAmountMicros) throw errors.quoteOverMaxAmount(formatAmount(quote.totalMicros), formatAmount(hold), formatAmount(deps.limits.maxAmountMicros));
  await saveQuote(deps.sql, quote);
  return quote;
}

/** A start a minute late is now (a form's minute, a client's clock); one further back would price hours already gone. */
const LATE_START_MS = 60_000;

/** A quote holds a tariff from its start: a week ahead at most, or today's prices would be kept for any later day. */
const MAX_LEAD_MS = 7 * 86_400_000;

function startOf(startAt: string | undefined, now: number): number {
  if (startAt === undefined) return now;
  const at = Date.parse(startAt);
  if (at < now - LATE_START_MS) {
    throw errors.validation('The start (startAt) is in the past: leave it out to start now.', [{ path: 'body.startAt', message: 'is in the past' }]);
  }
  if (at > now + MAX_LEAD_MS) {
    throw errors.validation('The start (startAt) is more than 7 days ahead: ask for a quote nearer the time.', [{ path: 'body.startAt', message: 'is more than 7 days ahead' }]);
  }
  return Math.max(at, now);
}

const linesJson = (lines: ChargeLine[]) => lines.map((l) => JSON.parse(JSON.stringify(l, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))) as unknown);

export async function saveQuote(db: Queryable, quote: Quote): Promise<void> {
  await db`
    insert into quotes (id, account_id, service_id, tariff, start_at, max_ms, total_micros, lines, created_at, expires_at)
    values (${quote.id}, ${quote.accountId}, ${quote.serviceId}, ${db.json(quote.tariff as never)}, ${new Date(quote.startAt)},
      ${quote.maxMs}, ${quote.totalMicros}, ${db.json(linesJson(quote.lines) as never)}, ${new Date(quote.createdAt)}, ${new Date(quote.expiresAt)})`;
}

type Row = Omit<Quote, 'startAt' | 'createdAt' | 'expiresAt' | 'lines' | 'maxMs'> & {
  startAt: Date;
  createdAt: Date;
  expiresAt: Date;
  maxMs: bigint | null;
  lines: Record<string, unknown>[];
};

export async function findQuote(db: Queryable, id: string, accountId: string): Promise<Quote | null> {
  const [row] = await db<Row[]>`
    select id, account_id as "accountId", service_id as "serviceId", tariff, start_at as "startAt", max_ms as "maxMs",
      total_micros as "totalMicros", lines, created_at as "createdAt", expires_at as "expiresAt", session_id as "sessionId"
    from quotes where id = ${id} and account_id = ${accountId}`;
  if (!row) return null;
  return {
    ...row,
    maxMs: row.maxMs === null ? null : Number(row.maxMs),
    startAt: row.startAt.getTime(),
    createdAt: row.createdAt.getTime(),
    expiresAt: row.expiresAt.getTime(),
    lines: row.lines.map(lineFromJson),
  };
}

function lineFromJson(line: Record<string, unknown>): ChargeLine {
  const micros = (key: string) => BigInt(line[key] as string);
  if (line.kind === 'time') {
    return {
      kind: 'time',
      from: line.from as number,
      to: line.to as number,
      seconds: line.seconds as number,
      pricePerMinuteMicros: micros('pricePerMinuteMicros'),
      chargeMicros: micros('chargeMicros'),
    };
  }
  if (line.kind === 'uses') return { kind: 'uses', units: line.units as number, chargeMicros: micros('chargeMicros') };
  return { kind: 'minimum', chargeMicros: micros('chargeMicros') };
}

/** A quote a session may open with now: the customer's, for this service, unexpired and unused. */
export function usableQuote(quote: Quote | null, serviceId: string, now: number): Quote {
  if (!quote) throw errors.quoteNotFound();
  if (quote.serviceId !== serviceId) throw errors.validation('The quote is for another service.');
  if (quote.sessionId !== null) throw errors.quoteUsed();
  if (quote.expiresAt <= now) throw errors.quoteExpired();
  if (now < quote.startAt) throw errors.quoteNotStarted(new Date(quote.startAt).toISOString());
  return quote;
}
