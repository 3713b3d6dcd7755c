import type { Micros } from '../billing/money.js';
import { CardDeclinedError, CardNetworkUnavailableError, type Capture, type CardGateway, type DeclineReason } from './gateway.js';

/** How a one-off charge came out; `pending` is driven again later with the same keys. */
export type CardCharge =
  | { kind: 'charged'; capture: Capture }
  | { kind: 'declined'; reason: DeclineReason }
  | { kind: 'pending'; detail: string };

/**
 * A one-off charge (a top-up, a statement): a hold captured at once, each call with a key derived
 * from what is charged (DESIGN rule 3), so driving it again charges once. Only the
 * authorization's decline is the card's word: a capture declined after the hold was granted is
 * the network's, and leaves the charge pending with its hold open for the next drive (taken as
 * declined, it left a hold open on the card and the charge marked unpaid).
 * A failure that is neither a decline nor a lost answer (a reused key, a body that makes no
 * sense) is thrown: it will be the same next time.
 */
export async function chargeCard(
  gateway: CardGateway,
  charge: { token: string; amountMicros: Micros; currency: string; reference: string; keys: { authorize: string; capture: string } },
): Promise<CardCharge> {
  const { token, amountMicros, currency, reference, keys } = charge;
  try {
    let holdId: string;
    try {
      ({ holdId } = await gateway.authorize({ token, amountMicros, currency, reference, idempotencyKey: keys.authorize }));
    } catch (error) {
      if (error instanceof CardDeclinedError) return { kind: 'declined', reason: error.reason };
      throw error;
    }
    return { kind: 'charged', capture: await gateway.capture({ holdId, amountMicros, idempotencyKey: keys.capture }) };
  } catch (error) {
    if (error instanceof CardNetworkUnavailableError || error instanceof CardDeclinedError) return { kind: 'pending', detail: String(error) };
    throw error;
  }
}
