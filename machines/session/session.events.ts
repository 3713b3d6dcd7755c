import { z } from 'zod';

const at = z.number().int().nonnegative();

/** Every event from outside is parsed with this before it reaches a session actor. */
export const sessionEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('LOGOFF'), at }),
  z.object({ type: z.literal('CUTOFF'), at }),
  z.object({ type: z.literal('TERMINATE'), at }),
  z.object({ type: z.literal('ABANDON'), at }),
  z.object({ type: z.literal('SERVICE_LOST'), at, since: at }),
  z.object({ type: z.literal('RETRY'), at }),
  z.object({ type: z.literal('RENEW_HOLD'), at }),
  z.object({ type: z.literal('GRACE_OVER'), at }),
  z.object({ type: z.literal('USES_OVER'), at }),
  z.object({ type: z.literal('VOID'), at }),
  z.object({ type: z.literal('WARN'), at }),
  z.object({ type: z.literal('EXTEND'), at, maxChargeMicros: z.string().regex(/^\d{1,18}$/) }),
  z.object({ type: z.literal('RESERVE_USE'), at, units: z.number().int().positive().max(1_000_000), edge: z.literal(true).optional() }),
  z.object({ type: z.literal('COMMIT_USE'), at, reservationId: z.string().regex(/^r\d{1,9}$/), units: z.number().int().nonnegative().max(1_000_000) }),
  z.object({ type: z.literal('USE'), at, units: z.number().int().positive().max(1_000_000) }),
  z.object({ type: z.literal('RELEASE_USE'), at, reservationId: z.string().regex(/^r\d{1,9}$/) }),
]);
