import type { Clock } from '../clock.js';
import type { BatchHandler } from '../events/event-consumer.js';
import type { StoredEvent } from '../events/event-store.js';
import type { AccountStates } from './account-states.js';

/**
 * A durable consumer's handler (src/events/event-consumer.ts): when the card company refuses a
 * session's capture for good (the session is stuck capturing, `session.stuck`), the account is
 * suspended by tollgate, so it runs up nothing more while an operator looks; its other sessions
 * end and settle. At least once: an account already closed to opens is left as it is.
 */
/** A session stuck because the card company refused its capture: the only event this consumer acts on. */
export function isRefusedCapture(event: StoredEvent): boolean {
  // The session machine's stuck reason names the refused call first ("capture refused: …").
  return event.type === 'session.stuck' && String(event.payload.reason).startsWith('capture refused');
}

export function suspendOnRefusedCaptures(deps: { states: AccountStates; clock: Clock }): BatchHandler {
  return async (events) => {
    for (const event of events) {
      if (!isRefusedCapture(event)) continue;
      const accountId = String(event.payload.accountId);
      const snapshot = await deps.states.snapshotOf(accountId);
      if (!snapshot?.hasTag('opens')) continue;
      await deps.states.change(accountId, () => ({
        type: 'SUSPEND',
        at: deps.clock.now(),
        by: { kind: 'system', id: null, name: 'tollgate' },
        reason: `the card company refused the capture of session ${String(event.payload.sessionId)} for good`,
        until: null,
      }));
    }
  };
}
