import type { Clock } from '../clock.js';
import type { Queryable } from '../db/sql.js';
import type { BatchHandler } from '../events/event-consumer.js';
import type { StoredEvent } from '../events/event-store.js';
import type { AccountStates } from './account-states.js';

/**
 * Records that the card company refused a session's capture for good, and answers how many of
 * the account's sessions were refused since it was last resumed (an operator's resume forgives
 * those before it). The row is keyed by session, so an event read twice counts once.
 */
async function countRefusal(db: Queryable, refusal: { accountId: string; sessionId: string; at: number }): Promise<number> {
  await db`
    insert into account_refused_captures (account_id, session_id, at) values (${refusal.accountId}, ${refusal.sessionId}, ${new Date(refusal.at)})
    on conflict do nothing`;
  const [row] = await db<{ refused: number }[]>`
    select count(*)::int as refused from account_refused_captures r
    where r.account_id = ${refusal.accountId}
      and r.at > coalesce((select max(e.at) from account_events e where e.account_id = r.account_id and e.event = 'RESUME'), '-infinity')`;
  return row?.refused ?? 0;
}

/** A session stuck because the card company refused its capture: the only event this consumer acts on. */
export function isRefusedCapture(event: StoredEvent): boolean {
  // The session machine's stuck reason names the refused call first ("capture refused: …").
  return event.type === 'session.stuck' && String(event.payload.reason).startsWith('capture refused');
}

/**
 * A durable consumer's handler (src/events/event-consumer.ts): when the card company refuses a
 * session's capture for good (the session is stuck capturing, `session.stuck`), the refusal is
 * counted, and once `suspendAfter` of the account's sessions were refused (since it was last
 * resumed) the account is suspended by tollgate, so it runs up nothing more while an operator
 * looks; its other sessions end and settle. One refusal can be the card company's own mistake;
 * repeated ones are the account's. At least once: an account already closed to opens is left as it is.
 */
export function suspendOnRefusedCaptures(deps: { states: AccountStates; clock: Clock; sql: Queryable; suspendAfter: number }): BatchHandler {
  return async (events) => {
    for (const event of events) {
      if (!isRefusedCapture(event)) continue;
      const accountId = String(event.payload.accountId);
      const sessionId = String(event.payload.sessionId);
      const refused = await countRefusal(deps.sql, { accountId, sessionId, at: event.at.getTime() });
      if (refused < deps.suspendAfter) continue;
      const snapshot = await deps.states.snapshotOf(accountId);
      if (!snapshot?.hasTag('opens')) continue;
      await deps.states.change(accountId, () => ({
        type: 'SUSPEND',
        at: deps.clock.now(),
        by: { kind: 'system', id: null, name: 'tollgate' },
        reason:
          refused === 1
            ? `the card company refused the capture of session ${sessionId} for good`
            : `the card company refused the captures of ${refused} sessions for good, the last of session ${sessionId}`,
        until: null,
      }));
    }
  };
}
