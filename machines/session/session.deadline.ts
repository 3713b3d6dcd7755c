import type { SnapshotFrom } from 'xstate';
import type { sessionMachine } from './session.machine.js';
import type { SessionContext } from './session.types.js';

export type SessionSnapshot = SnapshotFrom<typeof sessionMachine>;
export type SessionStateName = 'authorizing' | 'active' | 'over_limit' | 'closing' | 'settled' | 'declined';
export type DeadlineEvent = 'CUTOFF' | 'RENEW_HOLD' | 'GRACE_OVER' | 'RETRY';

/** A live snapshot or a stored one (plain JSON): both have these two fields. */
export type StateAndContext = { value: unknown; context: SessionContext };

export function stateNameOf(snapshot: StateAndContext): SessionStateName {
  const value = snapshot.value;
  return (typeof value === 'string' ? value : Object.keys(value as object)[0]) as SessionStateName;
}

/** The child state under the top-level one ('requesting', 'running', 'waiting', ...), if any. */
export function subStateOf(snapshot: StateAndContext): string | null {
  const value = snapshot.value;
  if (typeof value !== 'object' || value === null) return null;
  const child = Object.values(value)[0];
  return typeof child === 'string' ? child : null;
}

/** Seats are held from admission until the session can no longer run. */
export function holdsSeat(snapshot: StateAndContext): boolean {
  const state = stateNameOf(snapshot);
  return state === 'active' || (state === 'authorizing' && subStateOf(snapshot) === 'requesting');
}

/**
 * The one instant at which this session next needs an event from outside, and which event.
 * Derived from the snapshot alone, so a restored session's deadline is re-armed exactly as a
 * live one's was (DESIGN rule 5).
 */
export function deadlineOf(snapshot: StateAndContext): { at: number; event: DeadlineEvent } | null {
  const { context } = snapshot;
  const state = stateNameOf(snapshot);
  const sub = subStateOf(snapshot);
  if (state === 'active') {
    const cutoff = context.cutoffAt === null ? null : { at: context.cutoffAt, event: 'CUTOFF' as const };
    const renew = sub === 'running' && context.renewAt !== null ? { at: context.renewAt, event: 'RENEW_HOLD' as const } : null;
    if (cutoff && renew) return renew.at < cutoff.at ? renew : cutoff;
    return cutoff ?? renew;
  }
  if (state === 'over_limit' && sub === 'grace' && context.graceUntil !== null) {
    return { at: context.graceUntil, event: 'GRACE_OVER' };
  }
  if (sub === 'waiting' && context.retryAt !== null) return { at: context.retryAt, event: 'RETRY' };
  return null;
}
