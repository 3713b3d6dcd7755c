import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ceilToCents, formatAmount, minMicros, parseAmount, truncateToCents } from '../../src/billing/money.js';

describe('amounts', () => {
  it('parses decimal strings into micro-units exactly', () => {
    expect(parseAmount('12.50')).toBe(12_500_000n);
    expect(parseAmount('0.000001')).toBe(1n);
    expect(parseAmount('7')).toBe(7_000_000n);
  });

  it('takes up to twelve whole digits', () => {
    expect(parseAmount('999999999999.999999')).toBe(999_999_999_999_999_999n);
    expect(parseAmount('1000000000000')).toBeNull();
  });

  it.each(['', '-1', '1.', '.5', '1e3', '01.00', '1.0000001', ' 1', '1 ', 'x1', '1.5x', '1,00', 'NaN'])('refuses %j', (text) => {
    expect(parseAmount(text)).toBeNull();
  });

  it('refuses more decimals than allowed', () => {
    expect(parseAmount('10.001', 2)).toBeNull();
    expect(parseAmount('10.01', 2)).toBe(10_010_000n);
  });

  it('formats with at least two decimals and loses nothing', () => {
    expect(formatAmount(12_500_000n)).toBe('12.50');
    expect(formatAmount(16_666n)).toBe('0.016666');
    expect(formatAmount(0n)).toBe('0.00');
    expect(formatAmount(1_000_000n)).toBe('1.00');
    expect(formatAmount(-1_500_000n)).toBe('-1.50');
    expect(formatAmount(-16_666n)).toBe('-0.016666');
  });

  it('round-trips every amount through its text', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 17n }), (micros) => {
        expect(parseAmount(formatAmount(micros))).toBe(micros);
      }),
    );
  });

  it('leaves whole cents as they are', () => {
    expect([truncateToCents(120_000n), ceilToCents(120_000n), ceilToCents(120_001n), truncateToCents(129_999n)]).toEqual([120_000n, 120_000n, 130_000n, 120_000n]);
  });

  it('takes the smaller of two amounts', () => {
    expect(minMicros(1n, 2n)).toBe(1n);
    expect(minMicros(2n, 1n)).toBe(1n);
  });

  it('rounds to cents down for charges and up for holds, never by more than a cent', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 15n }), (micros) => {
        const down = truncateToCents(micros);
        const up = ceilToCents(micros);
        expect(down % 10_000n).toBe(0n);
        expect(up % 10_000n).toBe(0n);
        expect(down <= micros && micros <= up).toBe(true);
        expect(up - down <= 10_000n).toBe(true);
        // A whole number of cents is already rounded, either way.
        if (micros % 10_000n === 0n) expect([down, up]).toEqual([micros, micros]);
      }),
    );
  });
});
