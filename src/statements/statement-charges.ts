import type { Sql } from '../db/sql.js';
import type { Logger } from '../logger.js';
import { CardDeclinedError, CardNetworkUnavailableError, type CardGateway } from '../payments/gateway.js';
import { pendingCharges, settleCharge } from './statement-sql.js';

/** Keys of a statement's card calls, derived from its id (DESIGN rule 3): driven again, charged once. */
const keys = { authorize: (id: string) => `statement:${id}:authorize`, capture: (id: string) => `statement:${id}:capture` };

/**
 * Charges the card for what postpaid sessions owe. The statement is the intent, written (with
 * `charge_state = 'pending'`) before any card call; a charge that got no answer stays pending and
 * is driven again, with the same keys, at the next run. Answers how many were settled.
 */
export async function chargeStatements(deps: { sql: Sql; gateway: CardGateway; log: Logger }): Promise<number> {
  let settled = 0;
  for (const statement of await pendingCharges(deps.sql, 100)) {
    try {
      const hold = await deps.gateway.authorize({
        token: statement.cardToken,
        amountMicros: statement.dueMicros,
        currency: statement.currency,
        // Not a session id: reconciliation leaves it alone, and the capture follows at once.
        reference: `statement:${statement.id}`,
        idempotencyKey: keys.authorize(statement.id),
      });
      const capture = await deps.gateway.capture({ holdId: hold.holdId, amountMicros: statement.dueMicros, idempotencyKey: keys.capture(statement.id) });
      await settleCharge(deps.sql, statement.id, { state: 'charged', chargeId: capture.captureId, declineReason: null });
      settled++;
    } catch (error) {
      if (error instanceof CardDeclinedError) {
        await settleCharge(deps.sql, statement.id, { state: 'declined', chargeId: null, declineReason: error.reason });
        settled++;
        continue;
      }
      deps.log.warn({ statementId: statement.id, err: String(error) }, 'statement not charged yet; it is driven again at the next run');
      if (!(error instanceof CardNetworkUnavailableError)) throw error;
    }
  }
  return settled;
}
