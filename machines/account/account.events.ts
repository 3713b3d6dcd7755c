import { z } from 'zod';

const at = z.number().int().nonnegative();
const by = z.object({ kind: z.enum(['customer', 'operator', 'system']), id: z.string().max(100).nullable(), name: z.string().min(1).max(200) });
const reason = z.string().min(1).max(500);

/** Every event from outside is parsed with this before it reaches an account actor. */
export const accountEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('CARD_VERIFIED'), at, by, reason }),
  z.object({ type: z.literal('SUSPEND'), at, by, reason, until: at.nullable() }),
  z.object({ type: z.literal('RESUME'), at, by, reason }),
  z.object({ type: z.literal('CLOSE'), at, by, reason, unsettledSessions: z.number().int().nonnegative() }),
]);
