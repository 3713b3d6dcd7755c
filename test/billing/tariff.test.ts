import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  billableAt,
  billedSeconds,
  chargeFor,
  costOfTime,
  cutoffOf,
  itemize,
  MAX_SESSION_SPAN_MS,
  secondsToBill,
  timeChargeMicros,
  wallAt,
  type SessionTerms,
} from '../../src/billing/charge.js';
import { flatTariff, PER_SECOND, priceAt, type TariffSpec } from '../../src/billing/tariff.js';
import { runs, SEED } from '../helpers/property-runs.js';

/** 2026-11-30 09:00:00.345 UTC, a Monday; an instant that is not on a second, as real ones are not. */
const MONDAY = Date.UTC(2026, 10, 30, 9, 0, 0, 345);

const flat = (price: bigint, maxCharge: bigint, extra: Partial<SessionTerms> = {}): SessionTerms => ({
  tariff: flatTariff(price),
  maxChargeMicros: maxCharge,
  maxMs: null,
  startedAt: MONDAY,
  resumes: [],
  usesMicros: 0n,
  ...extra,
});

/**
 * The charge of the first `billed` seconds the slow way: second by second, priced where it
 * starts. Prices are looked up once a UTC minute (every zone's offset is whole quarter hours, so
 * a local hour never changes within one), which keeps the slow way fast enough to run often.
 */
function sixtiethsByStepping(terms: SessionTerms, billed: number): bigint {
  const byMinute = new Map<number, bigint>();
  let sum = 0n;
  for (let j = 0; j < billed; j++) {
    const wall = wallAt(terms, j * 1000);
    const minute = Math.floor(wall / 60_000);
    let price = byMinute.get(minute);
    if (price === undefined) {
      price = priceAt(terms.tariff, wall).pricePerMinuteMicros;
      byMinute.set(minute, price);
    }
    sum += price;
  }
  return sum;
}

const zones = fc.constantFrom('UTC', 'Europe/Paris', 'America/New_York', 'Asia/Kolkata', 'Australia/Sydney');
const price = fc.bigInt({ min: 0n, max: 2_000_000n });
const rule = fc.record({
  days: fc.uniqueArray(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 7 }),
  fromHour: fc.integer({ min: 0, max: 23 }),
  toHour: fc.integer({ min: 1, max: 24 }),
  pricePerMinuteMicros: price.map(String),
});
const billing = fc.constantFrom(
  { firstPeriodSeconds: 1, incrementSeconds: 1, minimumChargeMicros: '0' },
  { firstPeriodSeconds: 60, incrementSeconds: 60, minimumChargeMicros: '0' },
  { firstPeriodSeconds: 60, incrementSeconds: 1, minimumChargeMicros: '10000' },
  { firstPeriodSeconds: 30, incrementSeconds: 6, minimumChargeMicros: '250000' },
);
const tariff: fc.Arbitrary<TariffSpec> = fc.record({
  timeZone: zones,
  pricePerMinuteMicros: fc.bigInt({ min: 200_000n, max: 2_000_000n }).map(String),
  rules: fc.array(rule, { maxLength: 4 }),
  billing,
  perUse: fc.constant(null),
});
/** Limits small enough that the slow way can check them within a few hours of use. */
const terms: fc.Arbitrary<SessionTerms> = fc.record({
  tariff,
  maxChargeMicros: fc.bigInt({ min: 1n, max: 1_000n }).map((cents) => cents * 10_000n),
  maxMs: fc.option(fc.integer({ min: 1_000, max: 4 * 3_600_000 }), { nil: null }),
  // Any instant in a year that has daylight saving changes in it.
  startedAt: fc.integer({ min: Date.UTC(2026, 0, 1), max: Date.UTC(2026, 11, 31) }),
  resumes: fc.constant([]),
  usesMicros: fc.bigInt({ min: 0n, max: 500_000n }),
});

describe('billed seconds', () => {
  it('bill the first period at once, then whole increments; and need as few seconds as that', () => {
    const spec = { firstPeriodSeconds: 60, incrementSeconds: 60, minimumChargeMicros: '0' };
    expect([0, 1, 60, 61, 120, 121].map((s) => billedSeconds(spec, s))).toEqual([0, 60, 60, 120, 120, 180]);
    fc.assert(
      fc.property(billing, fc.integer({ min: 0, max: 100_000 }), (b, billed) => {
        const seconds = secondsToBill(b, billed);
        expect(billedSeconds(b, seconds)).toBeGreaterThanOrEqual(billed);
        if (seconds > 0) expect(billedSeconds(b, seconds - 1)).toBeLessThan(billed);
      }),
    );
  });

  it('need a single second to bill the whole first period', () => {
    // 30 s then 6 s at a time, or a first minute then by the second: the first second bills the whole first period.
    expect(secondsToBill({ firstPeriodSeconds: 30, incrementSeconds: 6, minimumChargeMicros: '0' }, 30)).toBe(1);
    expect(secondsToBill({ firstPeriodSeconds: 60, incrementSeconds: 1, minimumChargeMicros: '0' }, 60)).toBe(1);
  });
});

describe('billed by the minute', () => {
  // 1.00 a minute, billed a whole minute at a time.
  const byMinute = (maxChargeMicros: bigint, extra: Partial<SessionTerms> = {}): SessionTerms => ({
    ...flat(1_000_000n, maxChargeMicros),
    tariff: { ...flatTariff(1_000_000n), billing: { firstPeriodSeconds: 60, incrementSeconds: 60, minimumChargeMicros: '0' } },
    ...extra,
  });

  it('lets a limit of whole minutes run each minute it pays for to its end', () => {
    // An outside probe's session with 1.00 was cut after 1 s and charged the minute.
    expect(cutoffOf(byMinute(1_000_000n))).toEqual({ afterMs: 60_000, reason: 'charge_limit' });
    expect(cutoffOf(byMinute(3_000_000n))).toEqual({ afterMs: 180_000, reason: 'charge_limit' });
    expect(chargeFor(byMinute(1_000_000n), 60_000, 0n)).toBe(1_000_000n);
    // Uses took 0.50 of 1.50: the minute left is the customer's whole.
    expect(cutoffOf(byMinute(1_500_000n, { usesMicros: 500_000n }))).toEqual({ afterMs: 60_000, reason: 'charge_limit' });
  });

  it('cuts as a minute begins that costs more than is left, charging the limit', () => {
    // 1.50 pays for one minute and half of the next: the second minute is cut as it begins.
    expect(cutoffOf(byMinute(1_500_000n))).toEqual({ afterMs: 61_000, reason: 'charge_limit' });
    expect(chargeFor(byMinute(1_500_000n), 61_000, 0n)).toBe(1_500_000n);
  });
});

describe('one price all day, per second', () => {
  it('accrues per whole second, pro rata of the per-minute price', () => {
    const t = flat(600_000n, 100_000_000n);
    expect(timeChargeMicros(t, 999)).toBe(0n);
    expect(timeChargeMicros(t, 1_000)).toBe(10_000n);
    expect(timeChargeMicros(flat(1_000_000n, 100_000_000n), 90_500)).toBe(1_500_000n);
  });

  it('ends no session later than the longest span, as a time limit', () => {
    expect(cutoffOf(flat(1n, 100_000_000_000n))).toEqual({ afterMs: MAX_SESSION_SPAN_MS, reason: 'time_limit' });
  });

  it('reports a time limit that falls at the same second as the charge limit as the time limit', () => {
    // 5.00 at 0.60 a minute lasts 500 s; the customer set 500 s too.
    expect(cutoffOf(flat(600_000n, 5_000_000n, { maxMs: 500_000 }))).toEqual({ afterMs: 500_000, reason: 'time_limit' });
  });

  it('cuts at once a session free by the minute whose uses took the whole limit', () => {
    expect(cutoffOf(flat(0n, 5_000_000n, { usesMicros: 5_000_000n }))).toEqual({ afterMs: 0, reason: 'charge_limit' });
  });
});

describe('tariffs by weekday and hour', () => {
  const peak: TariffSpec = {
    timeZone: 'Europe/Paris',
    pricePerMinuteMicros: '600000',
    // Monday 10–17 local (09:00–16:00 UTC in November): 1.20 a minute.
    rules: [{ days: [1], fromHour: 10, toHour: 17, pricePerMinuteMicros: '1200000' }],
    billing: { firstPeriodSeconds: 1, incrementSeconds: 1, minimumChargeMicros: '0' },
    perUse: null,
  };

  it('charges a session that crosses a boundary each price for its own part, and itemizes both', () => {
    // From 09:59:00 Paris (08:59 UTC): one minute at 0.60, then one at 1.20.
    const t: SessionTerms = { ...flat(0n, 10_000_000n), tariff: peak, startedAt: Date.UTC(2026, 10, 30, 8, 59) };
    expect(chargeFor(t, 120_000, 0n)).toBe(1_800_000n);
    const lines = itemize(t, 120_000, { units: 0, micros: 0n });
    expect(lines).toEqual([
      { kind: 'time', from: t.startedAt, to: t.startedAt + 60_000, seconds: 60, pricePerMinuteMicros: 600_000n, chargeMicros: 600_000n },
      { kind: 'time', from: t.startedAt + 60_000, to: t.startedAt + 120_000, seconds: 60, pricePerMinuteMicros: 1_200_000n, chargeMicros: 1_200_000n },
    ]);
  });

  it('itemizes a session stopped at its limit by its uses with the time cut short, each use whole', () => {
    // 6.00 a minute billed from the first second (0.10), and 33 uses of 0.03 (0.99) under a 1.00 limit.
    const t: SessionTerms = { ...flat(0n, 1_000_000n), tariff: flatTariff(6_000_000n), startedAt: Date.UTC(2026, 10, 30), usesMicros: 990_000n };
    expect(chargeFor(t, 1_000, 990_000n)).toBe(1_000_000n);
    expect(itemize(t, 1_000, { units: 33, micros: 990_000n }).map((l) => [l.kind, l.chargeMicros])).toEqual([
      ['time', 10_000n],
      ['uses', 990_000n],
    ]);
  });

  it('itemizes hours at one price as one line, for each run of a price, even days into a session', () => {
    // From Monday 2026-11-30 00:00 UTC for 8 days; 1.20 on Mondays 10–17, 0.60 otherwise.
    const HOUR = 3_600_000;
    const monday: TariffSpec = { ...peak, timeZone: 'UTC' };
    const t: SessionTerms = { ...flat(0n, 100_000_000_000n), tariff: monday, startedAt: Date.UTC(2026, 10, 30) };
    const lines = itemize(t, 8 * 24 * HOUR, { units: 0, micros: 0n });
    expect(lines.map((l) => (l.kind === 'time' ? [(l.from - t.startedAt) / HOUR, (l.to - t.startedAt) / HOUR, l.pricePerMinuteMicros] : l.kind))).toEqual([
      [0, 10, 600_000n],
      [10, 17, 1_200_000n],
      [17, 178, 600_000n],
      [178, 185, 1_200_000n],
      [185, 192, 600_000n],
    ]);
  });

  it('itemizes a long stretch at one price in lines of a whole week at most', () => {
    // From Monday 2026-11-30 00:00 UTC for 8 days, every hour at 0.60 (the Monday rule charges what other hours do).
    const HOUR = 3_600_000;
    const same: TariffSpec = { ...peak, timeZone: 'UTC', rules: [{ ...peak.rules[0]!, pricePerMinuteMicros: '600000' }] };
    const t: SessionTerms = { ...flat(0n, 100_000_000_000n), tariff: same, startedAt: Date.UTC(2026, 10, 30) };
    const lines = itemize(t, 8 * 24 * HOUR, { units: 0, micros: 0n });
    expect(lines.map((l) => (l.kind === 'time' ? [(l.from - t.startedAt) / HOUR, (l.to - t.startedAt) / HOUR, l.chargeMicros] : l.kind))).toEqual([
      [0, 168, 6_048_000_000n],
      [168, 192, 864_000_000n],
    ]);
  });

  it('counts a rule past midnight on the day its hours started', () => {
    const night: TariffSpec = { ...peak, timeZone: 'UTC', rules: [{ days: [7], fromHour: 22, toHour: 6, pricePerMinuteMicros: '1' }] };
    // Sunday 23:00 and Monday 03:00 are in Sunday's night; Monday 23:00 is not.
    expect(priceAt(night, Date.UTC(2026, 10, 29, 23)).pricePerMinuteMicros).toBe(1n);
    expect(priceAt(night, Date.UTC(2026, 10, 30, 3)).pricePerMinuteMicros).toBe(1n);
    expect(priceAt(night, Date.UTC(2026, 10, 30, 23)).pricePerMinuteMicros).toBe(600_000n);
  });

  it('applies a rule from its first hour up to, not including, its last, on its days only', () => {
    const at = (day: number, hour: number, minute = 0) => priceAt(peak, Date.UTC(2026, 10, day, hour - 1, minute)).pricePerMinuteMicros;
    // Paris is UTC+1 in November: Monday the 30th, 09:59, 10:00, 16:59, 17:00 local; then Tuesday 10:00.
    expect([at(30, 9, 59), at(30, 10), at(30, 16, 59), at(30, 17)]).toEqual([600_000n, 1_200_000n, 1_200_000n, 600_000n]);
    expect(priceAt(peak, Date.UTC(2026, 11, 1, 9)).pricePerMinuteMicros).toBe(600_000n);
  });

  it('takes the last rule that matches, and says until when the price surely holds', () => {
    const layered: TariffSpec = {
      ...peak,
      timeZone: 'UTC',
      rules: [
        { days: [1, 2, 3, 4, 5], fromHour: 0, toHour: 24, pricePerMinuteMicros: '900000' },
        { days: [1], fromHour: 12, toHour: 13, pricePerMinuteMicros: '100000' },
      ],
    };
    expect(priceAt(layered, Date.UTC(2026, 10, 30, 12, 30))).toEqual({ pricePerMinuteMicros: 100_000n, until: Date.UTC(2026, 10, 30, 13) });
    expect(priceAt(layered, Date.UTC(2026, 10, 30, 13))).toEqual({ pricePerMinuteMicros: 900_000n, until: Date.UTC(2026, 10, 30, 14) });
    expect(priceAt(layered, Date.UTC(2026, 10, 29, 12)).pricePerMinuteMicros).toBe(600_000n);
    expect(priceAt(flatTariff(5n), Date.UTC(2026, 10, 30))).toEqual({ pricePerMinuteMicros: 5n, until: Infinity });
  });

  it('keeps a rule past midnight to its own nights', () => {
    const night: TariffSpec = { ...peak, timeZone: 'UTC', rules: [{ days: [7], fromHour: 22, toHour: 6, pricePerMinuteMicros: '1' }] };
    const at = (day: number, hour: number, minute = 0) => priceAt(night, Date.UTC(2026, 10, day, hour, minute)).pricePerMinuteMicros;
    // Sunday the 29th 21:59 and 22:00; Monday the 30th 05:59 and 06:00; Saturday the 28th 23:00; Sunday 03:00 (Saturday's night).
    expect([at(29, 21, 59), at(29, 22), at(30, 5, 59), at(30, 6), at(28, 23), at(29, 3)]).toEqual([600_000n, 1n, 1n, 600_000n, 600_000n, 600_000n]);
  });

  it('counts the hours after midnight of a Friday night rule as Friday’s, on Saturday morning', () => {
    const friday: TariffSpec = { ...peak, timeZone: 'UTC', rules: [{ days: [5], fromHour: 22, toHour: 6, pricePerMinuteMicros: '1' }] };
    const at = (day: number, hour: number) => priceAt(friday, Date.UTC(2026, 10, day, hour)).pricePerMinuteMicros;
    // Friday the 27th 23:00 and Saturday the 28th 03:00 are Friday's night; Sunday the 29th 03:00 and Thursday the 26th 03:00 are not.
    expect([at(27, 23), at(28, 3), at(29, 3), at(26, 3)]).toEqual([1n, 1n, 600_000n, 600_000n]);
  });

  it('runs a rule that ends at the hour it starts for a whole day from that hour', () => {
    const allDay: TariffSpec = { ...peak, timeZone: 'UTC', rules: [{ days: [1], fromHour: 9, toHour: 9, pricePerMinuteMicros: '1' }] };
    const at = (instant: number) => priceAt(allDay, instant).pricePerMinuteMicros;
    // Monday the 30th 08:59, 09:00 and 23:00; Tuesday 1 December 08:59 and 09:00.
    const instants = [Date.UTC(2026, 10, 30, 8, 59), Date.UTC(2026, 10, 30, 9), Date.UTC(2026, 10, 30, 23), Date.UTC(2026, 11, 1, 8, 59), Date.UTC(2026, 11, 1, 9)];
    expect(instants.map(at)).toEqual([600_000n, 1n, 1n, 1n, 600_000n]);
  });

  it('prices the hour a clock change takes away and the one it repeats as the hours they are', () => {
    // 2026-03-29, Paris: 02:00 local does not exist; 01:30 local is 00:30 UTC, 03:30 local is 01:30 UTC.
    const spring: TariffSpec = { ...peak, rules: [{ days: [7], fromHour: 3, toHour: 4, pricePerMinuteMicros: '1200000' }] };
    expect(priceAt(spring, Date.UTC(2026, 2, 29, 0, 30)).pricePerMinuteMicros).toBe(600_000n);
    expect(priceAt(spring, Date.UTC(2026, 2, 29, 1, 30)).pricePerMinuteMicros).toBe(1_200_000n);
  });
});

// Each run looks up local time hour by hour (Intl), and the slow way second by second: generous time.
describe('for random tariffs, increments and uses', { timeout: 60_000 }, () => {
  it('put the cutoff at the first whole second whose charge, with the uses, reaches the limit, or at the end of an increment that costs exactly the limit', () => {
    fc.assert(
      fc.property(terms, (t) => {
        const cutoff = cutoffOf(t);
        // Free hours may put a cutoff days away: the slow way checks those within a few hours.
        fc.pre(cutoff.afterMs <= 5 * 3_600_000);
        if (cutoff.reason === 'time_limit') {
          // The time limit came first: the charge had not reached the limit a second before it.
          const before = Math.max(0, Math.floor(cutoff.afterMs / 1000) - 1) * 1000;
          expect(timeChargeMicros(t, before) + t.usesMicros).toBeLessThan(t.maxChargeMicros);
          return;
        }
        const seconds = cutoff.afterMs / 1000;
        expect(Number.isInteger(seconds)).toBe(true);
        const charge = (s: number) => sixtiethsByStepping(t, billedSeconds(t.tariff.billing, s)) / 60n + t.usesMicros;
        expect(charge(seconds)).toBeGreaterThanOrEqual(t.maxChargeMicros);
        const b = t.tariff.billing;
        // The first second that bills what the cutoff's second bills.
        const incrementBegan = secondsToBill(b, billedSeconds(b, seconds));
        if (incrementBegan < seconds) {
          // Cut at the end of an increment that costs exactly the limit: the customer has its whole.
          expect(billedSeconds(b, seconds)).toBe(seconds);
          expect(charge(seconds)).toBe(t.maxChargeMicros);
          if (incrementBegan > 0) expect(charge(incrementBegan - 1)).toBeLessThan(t.maxChargeMicros);
        } else {
          if (seconds > 0) expect(charge(seconds - 1)).toBeLessThan(t.maxChargeMicros);
          // Cut as an increment began: it costs more than the limit.
          if (billedSeconds(b, seconds) > seconds) expect(charge(seconds)).toBeGreaterThan(t.maxChargeMicros);
        }
      }),
      { numRuns: runs(150), seed: SEED },
    );
  });

  it('charge what the slow way counts, never more than the limit, and itemize lines that add up to the charge', () => {
    fc.assert(
      fc.property(terms, fc.integer({ min: 0, max: 2 * 3_600_000 }), fc.nat({ max: 20 }), (t, elapsedMs, units) => {
        const cutoff = cutoffOf(t);
        const elapsed = Math.min(elapsedMs, cutoff.afterMs);
        const billed = billedSeconds(t.tariff.billing, Math.floor(elapsed / 1000));
        expect(timeChargeMicros(t, elapsed)).toBe(sixtiethsByStepping(t, billed) / 60n);
        const charge = chargeFor(t, elapsedMs, t.usesMicros);
        expect(charge).toBeLessThanOrEqual(t.maxChargeMicros);
        expect(charge % 10_000n).toBe(0n);
        const lines = itemize(t, elapsedMs, { units: t.usesMicros > 0n ? units + 1 : 0, micros: t.usesMicros });
        expect(lines.reduce((sum, line) => sum + line.chargeMicros, 0n)).toBe(charge);
        for (const line of lines) expect(line.chargeMicros).toBeGreaterThanOrEqual(0n);
      }),
      { numRuns: runs(100), seed: SEED },
    );
  });

  it('never charge less for longer use', () => {
    fc.assert(
      fc.property(terms, fc.integer({ min: 0, max: 3_600_000 }), fc.integer({ min: 0, max: 3_600_000 }), (t, a, b) => {
        const [short, long] = a < b ? [a, b] : [b, a];
        expect(chargeFor(t, short, t.usesMicros)).toBeLessThanOrEqual(chargeFor(t, long, t.usesMicros));
      }),
      { numRuns: runs(150), seed: SEED },
    );
  });

  it('bill a paused session only for the time it ran, at the prices of when it ran', () => {
    fc.assert(
      fc.property(terms, fc.integer({ min: 1, max: 1800 }), fc.integer({ min: 1, max: 7_200_000 }), (t, pausedAtSecond, pauseMs) => {
        const resumed: SessionTerms = { ...t, resumes: [{ billableAtMs: pausedAtSecond * 1000, wallAtMs: t.startedAt + pausedAtSecond * 1000 + pauseMs }] };
        const billed = billedSeconds(t.tariff.billing, 3600);
        expect(timeChargeMicros(resumed, 3_600_000)).toBe(sixtiethsByStepping(resumed, billed) / 60n);
      }),
      { numRuns: runs(60), seed: SEED },
    );
  });
});

describe('minimum charges, uses and the cost of time', () => {
  // 0.60 a minute, the first 30 s at once then 6 s at a time, at least 0.25 for a session that ran.
  const spec = { firstPeriodSeconds: 30, incrementSeconds: 6, minimumChargeMicros: '250000' };
  const terms = (extra: Partial<SessionTerms> = {}): SessionTerms => ({ ...flat(0n, 5_000_000n), tariff: { ...flatTariff(600_000n), billing: spec }, ...extra });

  it('charges a session that ran at all at least its minimum, and one that did not nothing', () => {
    expect(chargeFor(terms(), 999, 0n)).toBe(0n);
    expect(itemize(terms(), 999, { units: 0, micros: 0n })).toEqual([]);
    // One second bills the first 30: 0.30, over the minimum.
    expect(chargeFor(terms(), 1_000, 0n)).toBe(300_000n);
    // 37 s bill 42: 0.42.
    expect(chargeFor(terms(), 37_000, 0n)).toBe(420_000n);
    // Uses alone make a session that ran: 0.05 of uses, topped up to the minimum.
    expect(chargeFor(terms(), 0, 50_000n)).toBe(250_000n);
    expect(itemize(terms(), 0, { units: 1, micros: 50_000n })).toEqual([
      { kind: 'uses', units: 1, chargeMicros: 50_000n },
      { kind: 'minimum', chargeMicros: 200_000n },
    ]);
  });

  it('tops up to its minimum a session whose time costs less, down to a single second', () => {
    // Per second at 0.60 a minute: 10 s cost 0.10 and 1 s 0.01; each is charged the 0.25 minimum.
    const perSecond = terms({ tariff: { ...flatTariff(600_000n), billing: { ...PER_SECOND, minimumChargeMicros: '250000' } } });
    expect(chargeFor(perSecond, 10_000, 0n)).toBe(250_000n);
    expect(chargeFor(perSecond, 1_000, 0n)).toBe(250_000n);
  });

  it('never charges a minimum above the limit', () => {
    expect(chargeFor(terms({ maxChargeMicros: 200_000n }), 0, 50_000n)).toBe(200_000n);
  });

  it('itemizes time, then uses, the time cut short by what the uses left of the limit', () => {
    const t = terms({ maxChargeMicros: 1_000_000n, usesMicros: 900_000n });
    // 10 s bill 30 s (0.30) and 0.90 of uses would pass the 1.00 limit: each use was let through
    // whole (the session view's uses say 0.90), so the time is what stops short: 0.10.
    expect(itemize(t, 10_000, { units: 18, micros: 900_000n })).toEqual([
      { kind: 'time', from: MONDAY, to: MONDAY + 30_000, seconds: 30, pricePerMinuteMicros: 600_000n, chargeMicros: 100_000n },
      { kind: 'uses', units: 18, chargeMicros: 900_000n },
    ]);
    expect(chargeFor(t, 10_000, 900_000n)).toBe(1_000_000n);
  });

  it('costs time up to the next cent, and at least the minimum, to size a hold', () => {
    const base = { tariff: { ...flatTariff(1_000n), billing: PER_SECOND }, startedAt: MONDAY, resumes: [] };
    // 90 s at 0.001 a minute: 0.0015, held as 0.01.
    expect(costOfTime(base, 90_000)).toBe(10_000n);
    // 600 s: exactly 0.01.
    expect(costOfTime(base, 600_000)).toBe(10_000n);
    expect(costOfTime(base, 0)).toBe(0n);
    expect(costOfTime({ ...base, tariff: { ...base.tariff, billing: { ...PER_SECOND, minimumChargeMicros: '250000' } } }, 600_000)).toBe(250_000n);
  });
});

describe('long sessions, counted a week at a time', () => {
  const HOUR = 3_600_000;
  const WEEK = 7 * 24 * HOUR;
  /** Office hours at 0.60 a minute (0.01 a second), free otherwise: a week costs 5 × 8 h = 1,440.00. */
  const office = (timeZone: string): TariffSpec => ({
    timeZone,
    pricePerMinuteMicros: '0',
    rules: [{ days: [1, 2, 3, 4, 5], fromHour: 9, toHour: 17, pricePerMinuteMicros: '600000' }],
    billing: { firstPeriodSeconds: 1, incrementSeconds: 1, minimumChargeMicros: '0' },
    perUse: null,
  });
  /** The slow way, half an hour at a time (these zones move their clocks by whole hours; pauses end on the half hour). */
  function chargeByHours(t: SessionTerms, billableMs: number): bigint {
    let sixtieths = 0n;
    for (let at = 0; at < billableMs; at += HOUR / 2) {
      const seconds = Math.min(HOUR / 2, billableMs - at) / 1000;
      sixtieths += priceAt(t.tariff, wallAt(t, at)).pricePerMinuteMicros * BigInt(seconds);
    }
    return sixtieths / 60n;
  }

  it('finds a cutoff weeks away to the second', () => {
    // From Monday 2026-11-30 00:00 UTC; 3 weeks and one more hour of office time.
    const t: SessionTerms = { ...flat(0n, 4_356_000_000n), tariff: office('UTC'), startedAt: Date.UTC(2026, 10, 30) };
    expect(cutoffOf(t)).toEqual({ afterMs: 3 * WEEK + 10 * HOUR, reason: 'charge_limit' });
    expect(timeChargeMicros(t, 3 * WEEK)).toBe(4_320_000_000n);
    expect(chargeFor(t, 5 * WEEK, 0n)).toBe(4_356_000_000n);
  });

  it('cuts a limit spent exactly as office hours end on Friday at 17:00, not when they begin again on Monday', () => {
    // From Monday 2026-11-30 00:00 UTC, limits of exactly one and two weeks of office time.
    const t: SessionTerms = { ...flat(0n, 0n), tariff: office('UTC'), startedAt: Date.UTC(2026, 10, 30) };
    expect(cutoffOf({ ...t, maxChargeMicros: 1_440_000_000n })).toEqual({ afterMs: 4 * 24 * HOUR + 17 * HOUR, reason: 'charge_limit' });
    expect(cutoffOf({ ...t, maxChargeMicros: 2_880_000_000n })).toEqual({ afterMs: WEEK + 4 * 24 * HOUR + 17 * HOUR, reason: 'charge_limit' });
  });

  it('counts the weeks that change the clocks hour by hour', () => {
    // From Monday 2026-10-05 00:00 in Paris, over the change of 2026-10-25 and on for weeks.
    const t: SessionTerms = { ...flat(0n, 100_000_000_000n), tariff: office('Europe/Paris'), startedAt: Date.UTC(2026, 9, 4, 22) };
    for (const billableMs of [WEEK, 3 * WEEK + 11 * HOUR, 6 * WEEK + 13 * HOUR]) expect(timeChargeMicros(t, billableMs)).toBe(chargeByHours(t, billableMs));
    const limit = chargeByHours(t, 5 * WEEK + 34 * HOUR) + 10_000n;
    const cutoff = cutoffOf({ ...t, maxChargeMicros: limit });
    expect(cutoff.reason).toBe('charge_limit');
    expect(timeChargeMicros(t, cutoff.afterMs)).toBeGreaterThanOrEqual(limit);
    expect(timeChargeMicros(t, cutoff.afterMs - 1000)).toBeLessThan(limit);
  });

  it('does not take the cost of the week the clocks change for the weeks after it', () => {
    // From Monday 2026-10-05 00:00 in Paris; one priced hour a week, Sunday 23:00–24:00 local, 36.00.
    // The week of the change (25 October) ends an hour early, at Sunday 23:00 local, and holds no
    // priced hour; every week after it (Sunday 23:00 to Sunday 23:00) holds one.
    const lateSunday: TariffSpec = { ...office('Europe/Paris'), rules: [{ days: [7], fromHour: 23, toHour: 24, pricePerMinuteMicros: '600000' }] };
    const t: SessionTerms = { ...flat(0n, 100_000_000_000n), tariff: lateSunday, startedAt: Date.UTC(2026, 9, 4, 22) };
    expect(timeChargeMicros(t, 6 * WEEK)).toBe(180_000_000n);
    expect(timeChargeMicros(t, 6 * WEEK)).toBe(chargeByHours(t, 6 * WEEK));
  });

  it('counts a paused session’s weeks from where it resumed', () => {
    const t: SessionTerms = {
      ...flat(0n, 100_000_000_000n),
      tariff: office('UTC'),
      startedAt: Date.UTC(2026, 10, 30),
      // Paused from Monday 10:00 to Tuesday 09:30.
      resumes: [{ billableAtMs: 10 * HOUR, wallAtMs: Date.UTC(2026, 11, 1, 9, 30) }],
    };
    for (const billableMs of [2 * WEEK, 4 * WEEK + 5 * HOUR]) expect(timeChargeMicros(t, billableMs)).toBe(chargeByHours(t, billableMs));
  });

  it('ends at the longest span a session whose every hour is free', () => {
    const free: TariffSpec = { ...office('UTC'), rules: [{ days: [1], fromHour: 9, toHour: 10, pricePerMinuteMicros: '0' }] };
    expect(cutoffOf({ ...flat(0n, 1_000_000n), tariff: free })).toEqual({ afterMs: MAX_SESSION_SPAN_MS, reason: 'time_limit' });
  });
});

describe('billable and wall time', () => {
  // Started at S; billable time stopped at 60 s and went on 20 s later.
  const S = MONDAY;
  const paused = { startedAt: S, resumes: [{ billableAtMs: 60_000, wallAtMs: S + 80_000 }] };

  it('puts each billable instant on the wall clock after the pauses before it', () => {
    expect([0, 59_999, 60_000, 70_000].map((b) => wallAt(paused, b) - S)).toEqual([0, 59_999, 80_000, 90_000]);
  });

  it('counts no billable time before the start or during a pause', () => {
    expect([-5, 30_000, 70_000, 80_000, 90_000].map((w) => billableAt(paused, S + w))).toEqual([0, 30_000, 60_000, 60_000, 70_000]);
  });

  it('itemizes a paused session with a line on each side of the pause, none drawn across it', () => {
    const t: SessionTerms = { ...flat(600_000n, 5_000_000n), ...paused };
    expect(itemize(t, 120_000, { units: 0, micros: 0n })).toEqual([
      { kind: 'time', from: S, to: S + 60_000, seconds: 60, pricePerMinuteMicros: 600_000n, chargeMicros: 600_000n },
      { kind: 'time', from: S + 80_000, to: S + 140_000, seconds: 60, pricePerMinuteMicros: 600_000n, chargeMicros: 600_000n },
    ]);
  });
});
