import { z } from 'zod';
import { instantParam, positiveAmount, type Limits } from './schemas.js';

export const minutesLimit = (limits: Limits) =>
  z.number().min(1 / 60, 'must be at least one second (1/60 of a minute)').max(limits.maxSessionMinutes);

/** What opening a session takes: the JSON API's body, and the portal's form once read (one set of rules). */
export function openSessionSchema(limits: Limits) {
  return z
    .object({
      serviceId: z.uuid(),
      maxMinutes: minutesLimit(limits).optional(),
      maxCharge: positiveAmount(2, limits.maxAmountMicros).optional(),
      waitSeconds: z.number().min(0).max(limits.maxWaitSeconds).default(0),
      quoteId: z.uuid().optional(),
    })
    .refine((b) => b.quoteId === undefined || (b.maxMinutes === undefined && b.maxCharge === undefined), {
      message: 'a quote sets the time and the charge: give quoteId alone',
      path: ['quoteId'],
    });
}

/** What asking for a quote takes: the JSON API's body, and the portal's quote form once read. */
export function quoteSchema(limits: Limits) {
  return z
    .object({
      serviceId: z.uuid(),
      maxMinutes: minutesLimit(limits).optional(),
      maxCharge: positiveAmount(2, limits.maxAmountMicros).optional(),
      startAt: instantParam.optional(),
    })
    .refine((b) => b.maxMinutes !== undefined || b.maxCharge !== undefined, { message: 'give maxMinutes, maxCharge or both', path: ['maxMinutes'] });
}
