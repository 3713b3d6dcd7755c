import { expect } from 'vitest';
import { formatAmount, parseAmount } from '../../src/billing/money.js';

/**
 * What a logged-off session may be charged, from what its client saw. The client knows when it
 * sent the open and when the answer came, and when it sent the logoff and when that was
 * answered; the session started between the first two (it starts when the authorization is
 * answered) and ended between the last two. So it ran at least from the open's answer to the
 * logoff's sending, and at most from the open's sending to the logoff's answer.
 *
 * The tariff, as README states it, worked out here on its own: after s whole seconds the accrued
 * charge is floor(pricePerMinute × s / 60) micro-units; the charge is that truncated to whole
 * cents, and never more than maxCharge.
 */
export interface Bracket {
  /** Client clock (ms) when the open was sent, and when its answer (201, active) arrived. */
  openSentAt: number;
  openAnsweredAt: number;
  /** Client clock when the (first) logoff was sent, and when the (last) answer arrived. */
  logoffSentAt: number;
  logoffAnsweredAt: number;
}

export function chargeFor(terms: { pricePerMinute: string; maxCharge?: string | null }, elapsedMs: number): bigint {
  const price = micros(terms.pricePerMinute);
  const seconds = BigInt(Math.floor(Math.max(0, elapsedMs) / 1000));
  const accrued = (price * seconds) / 60n;
  const cents = accrued - (accrued % 10_000n);
  const cap = terms.maxCharge ? micros(terms.maxCharge) : null;
  return cap !== null && cents > cap ? cap : cents;
}

/** The lowest and highest charge the bracket allows. */
export function chargeRange(terms: { pricePerMinute: string; maxCharge?: string | null }, bracket: Bracket) {
  return {
    low: chargeFor(terms, bracket.logoffSentAt - bracket.openAnsweredAt),
    high: chargeFor(terms, bracket.logoffAnsweredAt - bracket.openSentAt),
  };
}

/** Fails unless `charge` lies within what the bracket allows, saying both. */
export function expectChargeWithin(
  charge: string | null | undefined,
  terms: { pricePerMinute: string; maxCharge?: string | null },
  bracket: Bracket,
  label = 'charge',
): void {
  const { low, high } = chargeRange(terms, bracket);
  const range = `${formatAmount(low)} to ${formatAmount(high)} (${JSON.stringify(bracket)})`;
  expect(charge, `${label}: expected within ${range}`).toEqual(expect.any(String));
  const amount = micros(charge!);
  expect(amount >= low && amount <= high, `${label} ${charge}: expected within ${range}`).toBe(true);
}

function micros(amount: string): bigint {
  const value = parseAmount(amount);
  if (value === null) throw new Error(`not an amount: ${amount}`);
  return value;
}
