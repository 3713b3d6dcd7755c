import { z } from 'zod';
import { cardInput, positiveAmount, secret, text, type Limits } from './schemas.js';

/** What signing up takes: the JSON API's body, and the portal's form once its fields are read (one set of rules). */
export function signUpSchema(limits: Limits) {
  const estimate = z.number().nonnegative().max(limits.maxEstimate);
  return z.object({
    name: text(200),
    email: z.email().max(254),
    password: secret(8, 200),
    card: cardInput,
    estimatedStorageGb: estimate,
    estimatedProcessingHours: estimate,
    outstandingLimit: positiveAmount(2, limits.maxAmountMicros),
  });
}
