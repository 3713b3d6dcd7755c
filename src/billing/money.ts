/**
 * Money is integer micro-units of the currency (1 = 0.000001), as bigint (DESIGN rule 4).
 * The API speaks decimal strings; these are the only conversions between the two.
 */
export type Micros = bigint;

export const MICROS_PER_UNIT = 1_000_000n;
export const MICROS_PER_CENT = 10_000n;

const DECIMAL = /^(0|[1-9]\d{0,11})(?:\.(\d{1,6}))?$/;

/** "12.5" → 12_500_000n. Returns null for anything that is not a plain non-negative decimal. */
export function parseAmount(text: string, maxDecimals = 6): Micros | null {
  const match = DECIMAL.exec(text);
  if (!match) return null;
  const fraction = match[2] ?? '';
  if (fraction.length > maxDecimals) return null;
  return BigInt(match[1]!) * MICROS_PER_UNIT + BigInt(fraction.padEnd(6, '0'));
}

/** 12_500_000n → "12.50": at least two decimals, more only where the value has them. */
export function formatAmount(micros: Micros): string {
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const units = abs / MICROS_PER_UNIT;
  let fraction = (abs % MICROS_PER_UNIT).toString().padStart(6, '0').replace(/0+$/, '');
  if (fraction.length < 2) fraction = fraction.padEnd(2, '0');
  return `${negative ? '-' : ''}${units}.${fraction}`;
}

/** An amount as pages show it: in whole cents, as it would be charged ("0.033333" → "0.03"). */
export function inCents(amount: string): string {
  const micros = parseAmount(amount);
  return micros === null ? amount : formatAmount(truncateToCents(micros));
}

/** Rounds down to whole cents: the customer never pays for a fraction of a cent. */
export function truncateToCents(micros: Micros): Micros {
  return micros - (micros % MICROS_PER_CENT);
}

/** Rounds up to whole cents: used where an amount must cover a cost (a hold). */
export function ceilToCents(micros: Micros): Micros {
  const rest = micros % MICROS_PER_CENT;
  return rest === 0n ? micros : micros + (MICROS_PER_CENT - rest);
}

export function minMicros(a: Micros, b: Micros): Micros {
  return a < b ? a : b;
}
