import { accountStateOf } from '../../machines/account/index.js';
import type { Clock } from '../clock.js';
import type { BatchHandler } from '../events/event-consumer.js';
import type { StoredEvent } from '../events/event-store.js';
import { stillDeclined } from '../statements/statement-sql.js';
import type { AccountStates } from './account-states.js';

export const isDeclinedStatement = (event: StoredEvent): boolean => event.type === 'statement.charge_declined';

/**
 * A durable consumer's handler (src/events/event-consumer.ts): when the card company declines the
 * charge of what a postpaid account owes, the account is suspended by tollgate, so it runs up no
 * more debt on a card that does not pay; its sessions end and settle. A new card from the
 * customer charges the statement again (retryDeclinedCharges); resuming is an operator's call, as
 * after refused captures. At least once: an account already closed to opens is left as it is.
 */
export function suspendOnDeclinedStatements(deps: { states: AccountStates; clock: Clock }): BatchHandler {
  return async (events, tx) => {
    for (const event of events) {
      if (!isDeclinedStatement(event)) continue;
      const { accountId, statementId, due, currency, declineReason } = event.payload as Record<string, string>;
      // Read late (a restart, a backlog), a new card may have paid it since: nothing to suspend for.
      if (!(await stillDeclined(tx, statementId!, Number(event.payload.attempt ?? 0)))) continue;
      const snapshot = await deps.states.snapshotOf(accountId!);
      // Suspended already (by an operator, for a time or not): suspended again by tollgate, until an
      // operator resumes it, so a timed suspension does not end into more debt on this card.
      if (!snapshot || accountStateOf(snapshot) === 'closed') continue;
      await deps.states.change(accountId!, () => ({
        type: 'SUSPEND',
        at: deps.clock.now(),
        by: { kind: 'system', id: null, name: 'tollgate' },
        reason: `the card company declined the charge of statement ${statementId} (${due} ${currency}, ${declineReason}); a new card is charged for it`,
        until: null,
      }));
    }
  };
}
