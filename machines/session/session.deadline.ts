import type { SnapshotFrom } from 'xstate';
import type { sessionMachine } from './session.machine.js';
import type { SessionContext } from './session.types.js';

export type SessionSnapshot = SnapshotFrom<typeof sessionMachine>;
export type SessionStateName = 'authorizing' | 'active' | 'over_limit' | 'closing' | 'settled' | 'declined';

/** A live snapshot or a stored one (plain JSON): both have these two fields. */
type StateAndContext = { value: SessionSnapshot['value'] | Record<string, unknown> | string; context: SessionContext };

export function stateNameOf(snapshot: StateAndContext): SessionStateName {
  const value = snapshot.value;
  return (typeof value === 'string' ? value : Object.keys(value)[0]) as SessionStateName;
}

/**
 * The one instant at which this session next needs an event from outside, and which event.
 * Derived from the snapshot alone, so a restored session's deadline is re-armed exactly as a
 * live one's was (DESIGN rule 5).
 */
export function deadlineOf(snapshot: StateAndContext): { at: number; event: 'CUTOFF' | 'RETRY_CLOSE' } | null {
  const { context, value } = snapshot;
  if (value === 'active' && context.cutoffAt !== null) return { at: context.cutoffAt, event: 'CUTOFF' };
  const closing = typeof value === 'object' ? (value as Record<string, unknown>).closing : undefined;
  if (closing === 'waiting' && context.retryAt !== null) return { at: context.retryAt, event: 'RETRY_CLOSE' };
  return null;
}
