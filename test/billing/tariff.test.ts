import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { accruedMicros, chargeFor, cutoffOf, MAX_SESSION_SPAN_MS } from '../../src/billing/tariff.js';

const terms = fc.record({
  pricePerMinuteMicros: fc.bigInt({ min: 1n, max: 1_000_000_000n }),
  maxChargeMicros: fc.bigInt({ min: 1n, max: 100_000_000n }).map((cents) => cents * 10_000n),
  maxMs: fc.option(fc.integer({ min: 1_000, max: 7 * 86_400_000 }), { nil: null }),
});

describe('tariff', () => {
  it('accrues per whole second, pro rata of the per-minute price', () => {
    expect(accruedMicros(600_000n, 999)).toBe(0n);
    expect(accruedMicros(600_000n, 1_000)).toBe(10_000n);
    expect(accruedMicros(1_000_000n, 90_500)).toBe(1_500_000n);
  });

  it('puts the cutoff at the first second whose accrued charge reaches the limit', () => {
    fc.assert(
      fc.property(terms, (t) => {
        const cutoff = cutoffOf({ ...t, maxMs: null });
        // Beyond the longest span any session runs, the span ends it instead.
        if (accruedMicros(t.pricePerMinuteMicros, MAX_SESSION_SPAN_MS) < t.maxChargeMicros) {
          expect(cutoff).toEqual({ afterMs: MAX_SESSION_SPAN_MS, reason: 'time_limit' });
          return;
        }
        expect(cutoff.reason).toBe('charge_limit');
        expect(accruedMicros(t.pricePerMinuteMicros, cutoff.afterMs)).toBeGreaterThanOrEqual(t.maxChargeMicros);
        expect(accruedMicros(t.pricePerMinuteMicros, cutoff.afterMs - 1_000)).toBeLessThan(t.maxChargeMicros);
      }),
    );
  });

  it('never charges more than the limit, and charges the limit when the charge limit is hit', () => {
    fc.assert(
      fc.property(terms, fc.integer({ min: 0, max: 30 * 86_400_000 }), (t, elapsedMs) => {
        const charge = chargeFor(t, elapsedMs);
        const cutoff = cutoffOf(t);
        expect(charge).toBeLessThanOrEqual(t.maxChargeMicros);
        expect(charge % 10_000n).toBe(0n);
        if (cutoff.reason === 'charge_limit' && elapsedMs >= cutoff.afterMs) expect(charge).toBe(t.maxChargeMicros);
      }),
    );
  });

  it('stops at whichever limit comes first', () => {
    fc.assert(
      fc.property(terms, (t) => {
        const cutoff = cutoffOf(t);
        const chargeOnly = cutoffOf({ ...t, maxMs: null });
        expect(cutoff.afterMs).toBe(t.maxMs === null ? chargeOnly.afterMs : Math.min(t.maxMs, chargeOnly.afterMs));
      }),
    );
  });

  it('charges more for longer use, never less', () => {
    fc.assert(
      fc.property(terms, fc.nat(1_000_000), fc.nat(1_000_000), (t, a, b) => {
        const [short, long] = a < b ? [a, b] : [b, a];
        expect(chargeFor(t, short)).toBeLessThanOrEqual(chargeFor(t, long));
      }),
    );
  });
});
