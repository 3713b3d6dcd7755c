import { z } from 'zod';

const at = z.number().int().nonnegative();

/** Every event from outside is parsed with this before it reaches a session actor. */
export const sessionEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('LOGOFF'), at }),
  z.object({ type: z.literal('CUTOFF'), at }),
  z.object({ type: z.literal('TERMINATE'), at }),
  z.object({ type: z.literal('RETRY_CLOSE'), at }),
]);
