import { SESSION_MACHINE_VERSION } from './session.machine.js';
import type { SessionContext } from './session.types.js';

/** What a v1 session had no setting for: no grace, renew a day before expiry. */
const V1_DEFAULTS = { graceMs: 0, renewBeforeMs: 86_400_000 };

type StoredSnapshot = { value: unknown; context: object; children?: Record<string, unknown> } & Record<string, unknown>;

/**
 * Brings a stored snapshot of any earlier machine version to the current one (DESIGN rule 7).
 * Each step is pure and covered by the fixtures of its version in test/machines/fixtures.
 */
export function migrateSessionSnapshot(version: number, stored: StoredSnapshot): StoredSnapshot {
  let snapshot = stored;
  let at = version;
  if (at === 1) {
    snapshot = v1ToV2(snapshot);
    at = 2;
  }
  if (at !== SESSION_MACHINE_VERSION) throw new Error(`no migration for session snapshots of version ${version}`);
  return snapshot;
}

function v1ToV2(stored: StoredSnapshot): StoredSnapshot {
  const context = stored.context as Omit<SessionContext, 'hold'> & {
    hold: Omit<NonNullable<SessionContext['hold']>, 'authorizedAt'> | null;
  };
  const hold = context.hold ? { ...context.hold, authorizedAt: context.startedAt ?? context.createdAt } : null;
  const value =
    stored.value === 'authorizing'
      ? { authorizing: 'requesting' }
      : stored.value === 'active'
        ? { active: 'running' }
        : stored.value === 'over_limit'
          ? { over_limit: 'interrupting' }
          : stored.value;
  const closing = typeof value === 'object' && value !== null && 'closing' in value;
  // Invoked children are keyed by the state that invokes them; v1's authorizing is v2's authorizing.requesting.
  const children = Object.fromEntries(
    Object.entries(stored.children ?? {}).map(([key, child]) => {
      if (key !== '0.session.authorizing') return [key, child];
      const c = child as { snapshot: { input: Record<string, unknown> } };
      return ['0.session.authorizing.requesting', { ...c, snapshot: { ...c.snapshot, input: { ...c.snapshot.input, attempt: 0 } } }];
    }),
  );
  const renewBefore = V1_DEFAULTS.renewBeforeMs;
  return {
    ...stored,
    value,
    children,
    context: {
      ...context,
      ...V1_DEFAULTS,
      hold,
      pausedMs: 0,
      graceUntil: null,
      extension: null,
      extensions: 0,
      renewAt:
        hold && value && typeof value === 'object' && 'active' in value
          ? hold.expiresAt - Math.min(renewBefore, Math.floor((hold.expiresAt - hold.authorizedAt) / 2))
          : null,
      reauthorizations: 0,
      staleHoldIds: [],
      closingSince: closing ? context.endedAt : null,
    },
  };
}
