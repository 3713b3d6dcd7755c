import { billableMs, termsOf, type SessionContext, type SessionStateName } from '../../machines/session/index.js';
import { itemize, timeChargeMicros, type ChargeLine } from '../billing/charge.js';
import { formatAmount, minMicros } from '../billing/money.js';
import { priceAt, type TariffSpec } from '../billing/tariff.js';
import { customerDeclineReasonOrNull } from '../payments/decline-reasons.js';

/** A session as the API shows it: amounts as decimal strings, instants as ISO text. */
export interface SessionView {
  id: string;
  state: SessionStateName;
  serviceId: string;
  serverId: string;
  currency: string;
  /** The price per minute in force now (or when the session ended). */
  pricePerMinute: string;
  tariff: TariffView;
  authorizationNumber: string | null;
  maxMinutes: number | null;
  maxCharge: string;
  createdAt: string;
  startedAt: string | null;
  cutoffAt: string | null;
  cutoffReason: 'charge_limit' | 'time_limit' | null;
  /** When the customer is (or was) warned that the cutoff nears. */
  warnAt: string | null;
  endedAt: string | null;
  endReason: string | null;
  accrued: string;
  uses: { units: number; charge: string };
  /** The charge so far (or the final one), itemized: the lines add up to `accrued`, then to `charge`. */
  lines: LineView[];
  charge: string | null;
  chargeSlip: { id: string; authorizationNumber: string; amount: string } | null;
  declineReason: string | null;
  /** The price agreed before use, if any, and whether the charge kept to it (null until charged). */
  quote: { id: string; total: string; withinQuote: boolean | null } | null;
}

export interface TariffView {
  timeZone: string;
  pricePerMinute: string;
  rules: { days: number[]; fromHour: number; toHour: number; pricePerMinute: string }[];
  billing: { firstPeriodSeconds: number; incrementSeconds: number; minimumCharge: string };
  perUse: { unit: 'request' | 'unit'; price: string } | null;
}

export type LineView =
  | { kind: 'time'; from: string; to: string; seconds: number; pricePerMinute: string; charge: string }
  | { kind: 'uses'; units: number; charge: string }
  | { kind: 'minimum'; charge: string };

// The largest instant a Date can hold: bounded inputs never get near it (DESIGN rule 16), and a
// row that somehow did still renders instead of breaking a list.
const MAX_DATE_MS = 8_640_000_000_000_000;
const iso = (ms: number | null) => (ms === null ? null : new Date(Math.max(-MAX_DATE_MS, Math.min(MAX_DATE_MS, ms))).toISOString());

export function tariffView(tariff: TariffSpec): TariffView {
  return {
    timeZone: tariff.timeZone,
    pricePerMinute: formatAmount(BigInt(tariff.pricePerMinuteMicros)),
    rules: tariff.rules.map((r) => ({ days: r.days, fromHour: r.fromHour, toHour: r.toHour, pricePerMinute: formatAmount(BigInt(r.pricePerMinuteMicros)) })),
    billing: {
      firstPeriodSeconds: tariff.billing.firstPeriodSeconds,
      incrementSeconds: tariff.billing.incrementSeconds,
      minimumCharge: formatAmount(BigInt(tariff.billing.minimumChargeMicros)),
    },
    perUse: tariff.perUse ? { unit: tariff.perUse.unit, price: formatAmount(BigInt(tariff.perUse.priceMicros)) } : null,
  };
}

/** The instant the session's charge is counted to: now while it runs, its end once ended. */
const countedTo = (context: SessionContext, now: number) => Math.min(context.endedAt ?? now, context.cutoffAt ?? now, now);

/** Accrued so far: exact micro-units of time and committed uses, capped at maxCharge; paused time is not billed. */
export function accruedAt(context: SessionContext, now: number): bigint {
  if (context.chargeMicros !== null) return BigInt(context.chargeMicros);
  if (context.startedAt === null) return 0n;
  const terms = termsOf(context);
  const time = timeChargeMicros(terms, billableMs(context, countedTo(context, now)));
  return minMicros(time + BigInt(context.uses.usedMicros), terms.maxChargeMicros);
}

function linesOf(context: SessionContext, now: number): LineView[] {
  if (context.startedAt === null) return [];
  const used = BigInt(context.uses.usedMicros);
  const lines: ChargeLine[] = itemize(termsOf(context, { usesMicros: used }), billableMs(context, countedTo(context, now)), {
    units: context.uses.usedUnits,
    micros: used,
  });
  return lines.map(lineView);
}

/** One line of an itemized charge as the API shows it. */
export function lineView(line: ChargeLine): LineView {
  if (line.kind === 'time') {
    return {
      kind: 'time',
      from: iso(line.from)!,
      to: iso(line.to)!,
      seconds: line.seconds,
      pricePerMinute: formatAmount(line.pricePerMinuteMicros),
      charge: formatAmount(line.chargeMicros),
    };
  }
  if (line.kind === 'uses') return { kind: 'uses', units: line.units, charge: formatAmount(line.chargeMicros) };
  return { kind: 'minimum', charge: formatAmount(line.chargeMicros) };
}

export function viewOf(state: SessionStateName, context: SessionContext, now: number): SessionView {
  const slip = context.chargeSlip;
  return {
    id: context.sessionId,
    state,
    serviceId: context.serviceId,
    serverId: context.serverId,
    currency: context.currency,
    // The price the time is billed at now (a session on a quote opened late is priced as from the quote's start).
    pricePerMinute: formatAmount(priceAt(context.tariff, countedTo(context, now) + (termsOf(context).priceShiftMs ?? 0)).pricePerMinuteMicros),
    tariff: tariffView(context.tariff),
    authorizationNumber: context.hold?.authorizationNumber ?? null,
    maxMinutes: context.maxMs === null ? null : context.maxMs / 60_000,
    maxCharge: formatAmount(BigInt(context.maxChargeMicros)),
    createdAt: iso(context.createdAt)!,
    startedAt: iso(context.startedAt),
    cutoffAt: iso(context.cutoffAt),
    cutoffReason: context.cutoffReason,
    warnAt: iso(context.warnedAt ?? context.warnAt),
    endedAt: iso(context.endedAt),
    endReason: context.endReason,
    accrued: formatAmount(accruedAt(context, now)),
    uses: { units: context.uses.usedUnits, charge: formatAmount(BigInt(context.uses.usedMicros)) },
    lines: linesOf(context, now),
    charge: context.chargeMicros === null ? null : formatAmount(BigInt(context.chargeMicros)),
    chargeSlip: slip ? { id: slip.id, authorizationNumber: slip.authorizationNumber, amount: formatAmount(BigInt(slip.amountMicros)) } : null,
    // Customers are not told that a card is known lost or stolen; operators are (queries.opsView).
    declineReason: customerDeclineReasonOrNull(context.declineReason),
    quote: context.quote
      ? {
          id: context.quote.quoteId,
          total: formatAmount(BigInt(context.quote.totalMicros)),
          withinQuote: context.chargeMicros === null ? null : BigInt(context.chargeMicros) <= BigInt(context.quote.totalMicros),
        }
      : null,
  };
}
