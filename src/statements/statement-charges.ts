import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';
import type { StoredEvent } from '../events/event-store.js';
import type { Logger } from '../logger.js';
import { chargeCard } from '../payments/charge-card.js';
import type { CardGateway } from '../payments/gateway.js';
import { pendingCharges, settleCharge } from './statement-sql.js';

/**
 * Keys of a statement's card calls, derived from its id and attempt (DESIGN rule 3): driven again,
 * charged once. A new card's attempt (after a decline) gets keys of its own; the first keeps the
 * keys statements had before attempts were counted.
 */
function keys(id: string, attempt: number) {
  const stem = attempt === 0 ? `statement:${id}` : `statement:${id}:${attempt}`;
  return { authorize: `${stem}:authorize`, capture: `${stem}:capture` };
}

type ChargeDeps = {
  sql: Sql;
  gateway: CardGateway;
  log: Logger;
  clock: Clock;
  published: (events: readonly StoredEvent[]) => void;
};

/**
 * Charges the card for what postpaid sessions owe. The statement is the intent, written (with
 * `charge_state = 'pending'`) before any card call; a charge that got no answer stays pending and
 * is driven again, with the same keys, at the next run. Answers how many were settled.
 */
export async function chargeStatements(deps: ChargeDeps): Promise<number> {
  let settled = 0;
  // A decline on a card replaced meanwhile is tried again on the new one, in another pass.
  for (let pass = 0, retry = true; retry && pass < 3; pass++) {
    retry = false;
    for (const statement of await pendingCharges(deps.sql, 100)) {
      const outcome = await chargeOne(deps, statement);
      if (outcome === 'settled') settled++;
      if (outcome === 'retry') retry = true;
    }
  }
  return settled;
}

async function chargeOne(deps: ChargeDeps, statement: Awaited<ReturnType<typeof pendingCharges>>[number]): Promise<'settled' | 'retry' | 'later'> {
  // Not a session id: reconciliation leaves it alone, and the capture follows at once.
  const charge = await chargeCard(deps.gateway, {
    token: statement.cardToken,
    amountMicros: statement.dueMicros,
    currency: statement.currency,
    reference: `statement:${statement.id}`,
    keys: keys(statement.id, statement.attempt),
  }).catch((error: unknown) => {
    // Refused (not declined): it is tried again at the next run, and does not stop the others.
    deps.log.warn({ statementId: statement.id, err: String(error) }, 'statement not charged: the card company refused the call; it is driven again at the next run');
    return null;
  });
  if (charge === null) return 'later';
  if (charge.kind === 'pending') {
    deps.log.warn({ statementId: statement.id, err: charge.detail }, 'statement not charged yet; it is driven again at the next run');
    return 'later';
  }
  const outcome =
    charge.kind === 'charged'
      ? { state: 'charged' as const, chargeId: charge.capture.captureId, declineReason: null }
      : { state: 'declined' as const, chargeId: null, declineReason: charge.reason };
  const result = await transaction(deps.sql, (tx) => settleCharge(tx, statement, outcome, deps.clock.now()));
  deps.published(result.events);
  return result.retry ? 'retry' : 'settled';
}
