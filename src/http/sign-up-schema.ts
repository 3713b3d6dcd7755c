import { z } from 'zod';
import { positiveAmount, secret, text, type Limits } from './schemas.js';

/** What signing up takes: the JSON API's body, and the portal's form once its fields are read (one set of rules). */
export function signUpSchema(limits: Limits) {
  const estimate = z.number().nonnegative().max(limits.maxEstimate);
  return z.object({
    name: text(200),
    email: z.email().max(254),
    password: secret(8, 200),
    card: z.object({
      number: z.string().regex(/^[\d ]{12,23}$/, 'must be the card number digits').transform((n) => n.replaceAll(' ', '')),
      expMonth: z.number().int().min(1).max(12),
      expYear: z.number().int().min(2000).max(2100),
      cvc: z.string().regex(/^\d{3,4}$/, 'must be 3 or 4 digits'),
    }),
    estimatedStorageGb: estimate,
    estimatedProcessingHours: estimate,
    outstandingLimit: positiveAmount(2, limits.maxAmountMicros),
  });
}
