import { type Micros, truncateToCents } from './money.js';

/**
 * A session's tariff and limits. Charges accrue per whole second, pro rata of the
 * per-minute price: after s seconds the accrued charge is floor(price × s / 60) micros.
 */
export interface SessionTerms {
  pricePerMinuteMicros: Micros;
  maxChargeMicros: Micros;
  /** Time limit in milliseconds, or null for none (the charge limit still applies). */
  maxMs: number | null;
}

export type LimitReason = 'charge_limit' | 'time_limit';

export interface Cutoff {
  /** Milliseconds after the start at which the session must stop. */
  afterMs: number;
  reason: LimitReason;
}

export function accruedMicros(pricePerMinuteMicros: Micros, elapsedMs: number): Micros {
  const seconds = BigInt(Math.floor(Math.max(0, elapsedMs) / 1000));
  return (pricePerMinuteMicros * seconds) / 60n;
}

/**
 * The longest any session runs: at the smallest price a charge limit could lie beyond any
 * instant PostgreSQL stores (DESIGN rule 16: every computed instant stays in range).
 */
export const MAX_SESSION_SPAN_MS = 100 * 365 * 86_400_000;

/**
 * The exact instant (relative to the start) at which the session hits a limit: the first
 * whole second whose accrued charge reaches maxCharge, or the time limit, whichever is first.
 */
export function cutoffOf(terms: SessionTerms): Cutoff {
  const secondsToCharge = ceilDiv(terms.maxChargeMicros * 60n, terms.pricePerMinuteMicros);
  const chargeLimitMs = secondsToCharge * 1000n > BigInt(MAX_SESSION_SPAN_MS) ? null : Number(secondsToCharge) * 1000;
  const timeLimitMs = Math.min(terms.maxMs ?? MAX_SESSION_SPAN_MS, MAX_SESSION_SPAN_MS);
  // A time limit that coincides with the charge limit is reported as the time limit the customer set.
  if (chargeLimitMs === null || timeLimitMs <= chargeLimitMs) return { afterMs: timeLimitMs, reason: 'time_limit' };
  return { afterMs: chargeLimitMs, reason: 'charge_limit' };
}

/**
 * What the card is charged for `elapsedMs` of use: the accrued charge, never past the cutoff
 * nor above maxCharge, rounded down to whole cents (the customer never pays a fraction of a
 * cent; at a charge limit the limit is whole cents, so the charge equals it).
 */
export function chargeFor(terms: SessionTerms, elapsedMs: number): Micros {
  const cutoff = cutoffOf(terms);
  const accrued = accruedMicros(terms.pricePerMinuteMicros, Math.min(elapsedMs, cutoff.afterMs));
  return truncateToCents(accrued < terms.maxChargeMicros ? accrued : terms.maxChargeMicros);
}

function ceilDiv(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b;
}
