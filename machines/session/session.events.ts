import { z } from 'zod';

const at = z.number().int().nonnegative();

/** Every event from outside is parsed with this before it reaches a session actor. */
export const sessionEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('LOGOFF'), at }),
  z.object({ type: z.literal('CUTOFF'), at }),
  z.object({ type: z.literal('TERMINATE'), at }),
  z.object({ type: z.literal('ABANDON'), at }),
  z.object({ type: z.literal('RETRY'), at }),
  z.object({ type: z.literal('RENEW_HOLD'), at }),
  z.object({ type: z.literal('GRACE_OVER'), at }),
  z.object({ type: z.literal('VOID'), at }),
  z.object({ type: z.literal('EXTEND'), at, maxChargeMicros: z.string().regex(/^\d{1,18}$/) }),
]);
