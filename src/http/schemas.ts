import { z } from 'zod';
import { parseAmount } from '../billing/money.js';

/** A decimal string amount ("12.50") parsed to integer micro-units. */
export function amount(maxDecimals: number) {
  return z
    .string()
    .transform((text, ctx) => {
      const micros = parseAmount(text, maxDecimals);
      if (micros === null) {
        ctx.addIssue({
          code: 'custom',
          message: `must be a decimal string with at most ${maxDecimals} decimals, like "12.50"`,
        });
        return z.NEVER;
      }
      return micros;
    });
}

export const positiveAmount = (maxDecimals: number) =>
  amount(maxDecimals).refine((micros) => micros > 0n, { message: 'must be greater than zero' });

export const idParams = z.object({ id: z.uuid() });
