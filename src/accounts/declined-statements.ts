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
 * after refused captures. At least once: a statement no longer declined, and an account closed or
 * suspended with no end already, are left as they are.
 */
export function suspendOnDeclinedStatements(deps: { states: AccountStates; clock: Clock }): BatchHandler {
  return async (events) => {
    for (const event of events) {
      if (!isDeclinedStatement(event)) continue;
      const { accountId, statementId, due, currency, declineReason } = event.payload as Record<string, string>;
      const attempt = Number(event.payload.attempt ?? 0);
      await deps.states.change(accountId!, async (_row, tx, state) => {
        // Read under the account's lock, which a new card's retry takes too: a statement paid since,
        // or being tried on a new card, suspends nothing (an event read late, or again).
        if (!(await stillDeclined(tx, statementId!, attempt))) return null;
        // Closed, or suspended with no end already (by this, or by an operator): nothing to add.
        const name = accountStateOf(state);
        if (name === 'closed' || (name === 'suspended' && state.context.resumesAt === null)) return null;
        // Active, or suspended for a time (which would end into more debt on this card): suspended
        // by tollgate, until an operator resumes it.
        return {
          type: 'SUSPEND',
          at: deps.clock.now(),
          by: { kind: 'system', id: null, name: 'tollgate' },
          reason: `the card company declined the charge of statement ${statementId} (${due} ${currency}, ${declineReason}); a new card is charged for it`,
          until: null,
        };
      });
    }
  };
}
