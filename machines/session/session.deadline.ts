import type { SnapshotFrom } from 'xstate';
import type { sessionMachine } from './session.machine.js';
import { lastRenewalAtOf } from './session.setup.js';

export type SessionSnapshot = SnapshotFrom<typeof sessionMachine>;
export type SessionStateName = 'authorizing' | 'active' | 'over_limit' | 'closing' | 'settled' | 'declined';
export type DeadlineEvent = 'CUTOFF' | 'RENEW_HOLD' | 'WARN' | 'GRACE_OVER' | 'USES_OVER' | 'RETRY';

/** How long a service may still commit the uses it reserved once its session ended at the limit. */
export const USES_WINDOW_MS = 60_000;

/** The top-level state, as rows and views name it. */
export function stateNameOf(snapshot: Pick<SessionSnapshot, 'value'>): SessionStateName {
  const value = snapshot.value;
  return (typeof value === 'string' ? value : Object.keys(value)[0]) as SessionStateName;
}

/**
 * The whole state path, "closing.capturing.waiting": what history lines and operators read. The
 * machine has no parallel states: a state value names one child at each level.
 */
export function statePathOf(value: SessionSnapshot['value'] | string): string {
  if (typeof value === 'string') return value;
  const [key, child] = Object.entries(value)[0]!;
  return `${key}.${statePathOf(child as SessionSnapshot['value'])}`;
}

/**
 * The one instant at which this session next needs an event from outside, and which event.
 * Derived from the snapshot alone, so a restored session's deadline is re-armed exactly as a
 * live one's was (DESIGN rule 5).
 */
export function deadlineOf(snapshot: SessionSnapshot): { at: number; event: DeadlineEvent } | null {
  const { context } = snapshot;
  if (snapshot.hasTag('billable')) {
    const due = [
      context.cutoffAt === null ? null : { at: context.cutoffAt, event: 'CUTOFF' as const },
      context.warnAt !== null && context.warnedAt === null ? { at: context.warnAt, event: 'WARN' as const } : null,
      // Never after the last try (a snapshot from before it was kept may say the hold's last millisecond).
      snapshot.matches({ active: 'running' }) && context.renewAt !== null && context.hold !== null
        ? { at: Math.min(context.renewAt, lastRenewalAtOf(context, context.hold)), event: 'RENEW_HOLD' as const }
        : null,
    ].filter((d) => d !== null);
    // The earliest first; at the same instant the cutoff wins (a warning at the cutoff says nothing).
    return due.reduce<(typeof due)[number] | null>((first, d) => (first === null || d.at < first.at ? d : first), null);
  }
  if (snapshot.matches({ over_limit: 'grace' }) && context.graceUntil !== null) return { at: context.graceUntil, event: 'GRACE_OVER' };
  if (snapshot.matches({ over_limit: 'awaiting_uses' })) return { at: context.endedAt! + USES_WINDOW_MS, event: 'USES_OVER' };
  if (snapshot.hasTag('resting') && !snapshot.hasTag('stuck') && context.retryAt !== null && snapshot.can({ type: 'RETRY', at: context.retryAt })) {
    return { at: context.retryAt, event: 'RETRY' };
  }
  return null;
}

