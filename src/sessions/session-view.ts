import { billableMs, termsOf, type SessionContext, type SessionStateName } from '../../machines/session/index.js';
import { formatAmount, minMicros } from '../billing/money.js';
import { accruedMicros } from '../billing/tariff.js';
import { customerDeclineReasonOrNull } from '../payments/decline-reasons.js';

/** A session as the API shows it: amounts as decimal strings, instants as ISO text. */
export interface SessionView {
  id: string;
  state: SessionStateName;
  serviceId: string;
  serverId: string;
  currency: string;
  pricePerMinute: string;
  authorizationNumber: string | null;
  maxMinutes: number | null;
  maxCharge: string;
  createdAt: string;
  startedAt: string | null;
  cutoffAt: string | null;
  cutoffReason: 'charge_limit' | 'time_limit' | null;
  endedAt: string | null;
  endReason: string | null;
  accrued: string;
  charge: string | null;
  chargeSlip: { id: string; authorizationNumber: string; amount: string } | null;
  declineReason: string | null;
}

// The largest instant a Date can hold: bounded inputs never get near it (DESIGN rule 16), and a
// row that somehow did still renders instead of breaking a list.
const MAX_DATE_MS = 8_640_000_000_000_000;
const iso = (ms: number | null) => (ms === null ? null : new Date(Math.max(-MAX_DATE_MS, Math.min(MAX_DATE_MS, ms))).toISOString());

/** Accrued so far: exact micro-units, capped at the cutoff and at maxCharge; paused time is not billed. */
export function accruedAt(context: SessionContext, now: number): bigint {
  if (context.chargeMicros !== null) return BigInt(context.chargeMicros);
  if (context.startedAt === null) return 0n;
  const until = Math.min(now, context.cutoffAt ?? now);
  const terms = termsOf(context);
  return minMicros(accruedMicros(terms.pricePerMinuteMicros, billableMs(context, until)), terms.maxChargeMicros);
}

export function viewOf(state: SessionStateName, context: SessionContext, now: number): SessionView {
  const slip = context.chargeSlip;
  return {
    id: context.sessionId,
    state,
    serviceId: context.serviceId,
    serverId: context.serverId,
    currency: context.currency,
    pricePerMinute: formatAmount(BigInt(context.pricePerMinuteMicros)),
    authorizationNumber: context.hold?.authorizationNumber ?? null,
    maxMinutes: context.maxMs === null ? null : context.maxMs / 60_000,
    maxCharge: formatAmount(BigInt(context.maxChargeMicros)),
    createdAt: iso(context.createdAt)!,
    startedAt: iso(context.startedAt),
    cutoffAt: iso(context.cutoffAt),
    cutoffReason: context.cutoffReason,
    endedAt: iso(context.endedAt),
    endReason: context.endReason,
    accrued: formatAmount(accruedAt(context, now)),
    charge: context.chargeMicros === null ? null : formatAmount(BigInt(context.chargeMicros)),
    chargeSlip: slip ? { id: slip.id, authorizationNumber: slip.authorizationNumber, amount: formatAmount(BigInt(slip.amountMicros)) } : null,
    // Customers are not told that a card is known lost or stolen; operators are (queries.opsView).
    declineReason: customerDeclineReasonOrNull(context.declineReason),
  };
}
