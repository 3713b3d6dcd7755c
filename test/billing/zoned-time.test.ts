import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isTimeZone, localHourAt, localHourByIntl, sameLocalTime } from '../../src/billing/zoned-time.js';
import { runs, SEED } from '../helpers/property-runs.js';

/** Zones with daylight saving both ways round, half-hour and 45-minute offsets, a half-hour DST shift. */
const zones = ['UTC', 'Europe/Paris', 'America/New_York', 'Australia/Sydney', 'Asia/Kolkata', 'Asia/Kathmandu', 'Australia/Lord_Howe', 'Pacific/Chatham', 'America/Sao_Paulo'];

function expectSameAsIntl(timeZone: string, at: number): void {
  const cached = localHourAt(timeZone, at);
  const direct = localHourByIntl(timeZone, at);
  expect({ zone: timeZone, at: new Date(at).toISOString(), weekday: cached.weekday, hour: cached.hour }).toEqual({
    zone: timeZone,
    at: new Date(at).toISOString(),
    weekday: direct.weekday,
    hour: direct.hour,
  });
  const msIntoHour = (direct.minute * 60 + direct.second) * 1000 + (at % 1000);
  expect(cached.nextHourAt - at).toBe(3_600_000 - msIntoHour);
}

describe('local time in a zone, from offsets cached per UTC day', () => {
  it('shows what Intl shows at any instant from 1970 to 2150', () => {
    fc.assert(
      fc.property(fc.constantFrom(...zones), fc.integer({ min: 0, max: Date.UTC(2150, 0, 1) }), (zone, at) => expectSameAsIntl(zone, at)),
      { numRuns: runs(3000), seed: SEED },
    );
  });

  it('shows what Intl shows on each side of a change of the clocks, to the second', () => {
    const changes = [
      ['Europe/Paris', Date.UTC(2026, 2, 29, 1)],
      ['Europe/Paris', Date.UTC(2026, 9, 25, 1)],
      ['America/New_York', Date.UTC(2026, 2, 8, 7)],
      ['America/New_York', Date.UTC(2026, 10, 1, 6)],
      ['Australia/Sydney', Date.UTC(2026, 3, 4, 16)],
      ['Australia/Lord_Howe', Date.UTC(2026, 3, 4, 15)],
      ['Australia/Lord_Howe', Date.UTC(2026, 9, 3, 15, 30)],
    ] as const;
    for (const [zone, at] of changes) {
      for (const delta of [-3_600_000, -1000, -1, 0, 1, 999, 1000, 3_600_000]) expectSameAsIntl(zone, at + delta);
    }
  });
});

describe('zones and clocks', () => {
  it('knows the zones of the platform’s database, and nothing else', () => {
    expect(['UTC', 'Europe/Paris', 'Asia/Kathmandu'].map(isTimeZone)).toEqual([true, true, true]);
    expect(['Mars/Olympus_Mons', 'Europe/Pariss', ''].map(isTimeZone)).toEqual([false, false, false]);
  });

  it('tells whether two instants show the same time of day: a week apart, not across a change of the clocks', () => {
    const week = 7 * 86_400_000;
    const monday = Date.UTC(2026, 10, 30, 9, 15);
    expect(sameLocalTime('Europe/Paris', monday, monday + week)).toBe(true);
    expect(sameLocalTime('Europe/Paris', monday, monday + week + 60_000)).toBe(false);
    // Paris moves its clocks on 2026-03-29: 09:15 UTC shows 10:15, then 11:15.
    expect(sameLocalTime('Europe/Paris', Date.UTC(2026, 2, 23, 9, 15), Date.UTC(2026, 2, 30, 9, 15))).toBe(false);
    // Lord Howe moves its clocks by half an hour on 2026-10-04: 10:10 local, then 10:40 (the same hour).
    expect(sameLocalTime('Australia/Lord_Howe', Date.UTC(2026, 8, 29, 23, 40), Date.UTC(2026, 9, 6, 23, 40))).toBe(false);
  });
});
