import { isDeepStrictEqual } from 'node:util';
import { localHourAt } from './zoned-time.js';

/**
 * A service's prices, as a session carries them (JSON: money as decimal strings of micro-units).
 * Rules come from the ISP billing seed (`price: Monday, 10-17 $1`): each a set of weekdays, an
 * hour range and a price per minute in the service's time zone; the last matching rule wins;
 * the default price covers the rest.
 */
export interface TariffRule {
  /** ISO weekdays: 1 = Monday … 7 = Sunday. */
  days: number[];
  /** From this local hour (0–23) up to, not including, `toHour` (1–24); past midnight when toHour ≤ fromHour. */
  fromHour: number;
  toHour: number;
  pricePerMinuteMicros: string;
}

/**
 * How time is counted: the first `firstPeriodSeconds` are charged as soon as the session has
 * run one whole second, then every started `incrementSeconds` (60/60: whole minutes; 1/1: per
 * second, the default). A session that ran at all is charged at least `minimumChargeMicros`.
 */
export interface BillingSpec {
  firstPeriodSeconds: number;
  incrementSeconds: number;
  minimumChargeMicros: string;
}

/** A price for each use of the service: a request through the edge, or a unit reported by the service. */
export interface PerUsePrice {
  unit: 'request' | 'unit';
  priceMicros: string;
}

export interface TariffSpec {
  timeZone: string;
  /** The price per minute where no rule matches. */
  pricePerMinuteMicros: string;
  rules: TariffRule[];
  billing: BillingSpec;
  perUse: PerUsePrice | null;
}

export const PER_SECOND: BillingSpec = { firstPeriodSeconds: 1, incrementSeconds: 1, minimumChargeMicros: '0' };

/** One price per minute, all day, every day, per second: what every service had before tariffs. */
export function flatTariff(pricePerMinuteMicros: bigint | string): TariffSpec {
  return { timeZone: 'UTC', pricePerMinuteMicros: pricePerMinuteMicros.toString(), rules: [], billing: PER_SECOND, perUse: null };
}

export function isFlat(tariff: TariffSpec): boolean {
  return tariff.rules.length === 0;
}

/** Whether `after` charges no more than `before` for any use: the same tariff, or one flat price lowered (other changes are not compared). */
export function noDearer(after: TariffSpec, before: TariffSpec): boolean {
  // Key order aside: a tariff read back from jsonb has its keys in PostgreSQL's order.
  if (!isDeepStrictEqual({ ...after, pricePerMinuteMicros: null }, { ...before, pricePerMinuteMicros: null })) return false;
  return isFlat(after) ? BigInt(after.pricePerMinuteMicros) <= BigInt(before.pricePerMinuteMicros) : after.pricePerMinuteMicros === before.pricePerMinuteMicros;
}

function ruleMatches(rule: TariffRule, weekday: number, hour: number): boolean {
  if (rule.fromHour < rule.toHour) return rule.days.includes(weekday) && hour >= rule.fromHour && hour < rule.toHour;
  // Past midnight: the hours after it belong to the day the range started on.
  if (hour >= rule.fromHour) return rule.days.includes(weekday);
  return hour < rule.toHour && rule.days.includes(weekday === 1 ? 7 : weekday - 1);
}

/** The price per minute in force at `at`, and until when it surely stays (the next local hour, or for ever). */
export function priceAt(tariff: TariffSpec, at: number): { pricePerMinuteMicros: bigint; until: number } {
  if (isFlat(tariff)) return { pricePerMinuteMicros: BigInt(tariff.pricePerMinuteMicros), until: Infinity };
  const local = localHourAt(tariff.timeZone, at);
  let price = tariff.pricePerMinuteMicros;
  for (const rule of tariff.rules) if (ruleMatches(rule, local.weekday, local.hour)) price = rule.pricePerMinuteMicros;
  return { pricePerMinuteMicros: BigInt(price), until: local.nextHourAt };
}
