import type { SnapshotFrom } from 'xstate';
import type { sessionMachine } from './session.machine.js';

export type SessionSnapshot = SnapshotFrom<typeof sessionMachine>;
export type SessionStateName = 'authorizing' | 'active' | 'over_limit' | 'closing' | 'settled' | 'declined';

export function stateNameOf(snapshot: SessionSnapshot): SessionStateName {
  const value = snapshot.value;
  return (typeof value === 'string' ? value : Object.keys(value)[0]) as SessionStateName;
}

/**
 * The one instant at which this session next needs an event from outside, and which event.
 * Derived from the snapshot alone, so a restored session's deadline is re-armed exactly as a
 * live one's was (DESIGN rule 5).
 */
export function deadlineOf(snapshot: SessionSnapshot): { at: number; event: 'CUTOFF' | 'RETRY_CLOSE' } | null {
  const { context } = snapshot;
  if (snapshot.matches('active') && context.cutoffAt !== null) return { at: context.cutoffAt, event: 'CUTOFF' };
  if (snapshot.matches({ closing: 'waiting' }) && context.retryAt !== null) {
    return { at: context.retryAt, event: 'RETRY_CLOSE' };
  }
  return null;
}
