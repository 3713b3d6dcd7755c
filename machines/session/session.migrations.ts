import { flatTariff } from '../../src/billing/tariff.js';
import { SESSION_MACHINE_VERSION } from './session.machine.js';
import type { SessionContext } from './session.types.js';

/** What a v1 session had no setting for: no grace, renew a day before expiry. */
const V1_DEFAULTS = { graceMs: 0, renewBeforeMs: 86_400_000 };

type StoredSnapshot = { value: unknown; context: object; children?: Record<string, unknown> } & Record<string, unknown>;
type StoredChild = { snapshot: { status: string; input: Record<string, unknown> }; src: string } & Record<string, unknown>;

/** A snapshot written by a machine version this build does not know (a newer one, or garbage). */
export class UnknownSnapshotVersionError extends Error {
  constructor(readonly version: number) {
    super(`no migration for session snapshots of version ${version} (this build writes version ${SESSION_MACHINE_VERSION})`);
    this.name = 'UnknownSnapshotVersionError';
  }
}

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
  if (at === 2) {
    snapshot = v2ToV3(snapshot);
    at = 3;
  }
  if (at === 3) {
    snapshot = v3ToV4(snapshot);
    at = 4;
  }
  if (at !== SESSION_MACHINE_VERSION) throw new UnknownSnapshotVersionError(version);
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
      const c = child as StoredChild;
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

/** v2 keyed invoked children by their state's path; v3 names each invocation. */
const V2_CHILDREN: Record<string, string> = {
  '0.session.authorizing.requesting': 'authorize',
  '0.session.authorizing.releasing': 'release',
  '0.session.active.extending': 'increment',
  '0.session.over_limit.extending': 'increment',
  '0.session.active.renewing': 'renew',
  '0.session.closing.capturing': 'capture',
  '0.session.closing.voiding': 'void',
};

/**
 * v3 gave calls that must end well one shape (calling, waiting, blocked), reserves extensions
 * inside the machine, and left interrupting the service to the edge. A v2 session interrupted
 * over its limit goes on to grace or closing; one waiting to retry waits in the call it retries.
 */
function v2ToV3(stored: StoredSnapshot): StoredSnapshot {
  const context = { ...(stored.context as Omit<SessionContext, 'blocked'>), blocked: null };
  const [top, sub] = typeof stored.value === 'string' ? [stored.value, null] : (Object.entries(stored.value as object)[0] as [string, string]);
  const charging = context.chargeMicros !== null && BigInt(context.chargeMicros) > 0n;
  const children: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(stored.children ?? {})) {
    const id = V2_CHILDREN[key];
    if (id) children[id] = child;
  }
  const at = (value: unknown, extra: Partial<SessionContext> = {}): StoredSnapshot => ({
    ...stored,
    value,
    children,
    context: { ...context, ...extra },
  });
  switch (`${top}.${sub}`) {
    case 'authorizing.releasing':
      return at({ authorizing: { releasing: 'calling' } });
    case 'authorizing.waiting':
      return at({ authorizing: { releasing: 'waiting' } });
    case 'active.extending':
      return at({ active: { extending: 'incrementing' } });
    case 'over_limit.extending':
      return at({ over_limit: { extending: 'incrementing' } });
    case 'over_limit.interrupting':
      if (context.graceMs > 0) return at({ over_limit: 'grace' }, { graceUntil: context.endedAt! + context.graceMs });
      // Straight to a retry that is already due: the restored session calls at once.
      return at({ closing: { [charging ? 'capturing' : 'voiding']: 'waiting' } }, {
        closingSince: context.endedAt,
        closeAttempts: 0,
        retryAt: context.endedAt,
      });
    case 'closing.capturing':
      return at({ closing: { capturing: 'calling' } });
    case 'closing.voiding':
      return at({ closing: { voiding: 'calling' } });
    case 'closing.waiting':
      return at({ closing: { [charging ? 'capturing' : 'voiding']: 'waiting' } });
    default:
      return at(stored.value);
  }
}

/**
 * v4 priced sessions with a tariff (one flat price before), kept where billable time went on
 * after each pause (only the total was kept before), and metered uses. A v3 pause is placed at
 * the start: with one price all day, only its length changes a charge.
 */
function v3ToV4(stored: StoredSnapshot): StoredSnapshot {
  const { pricePerMinuteMicros, pausedMs, ...context } = stored.context as Record<string, unknown> & {
    pricePerMinuteMicros: string;
    pausedMs: number;
    startedAt: number | null;
  };
  const resumes = pausedMs > 0 && context.startedAt !== null ? [{ billableAtMs: 0, wallAtMs: context.startedAt + pausedMs }] : [];
  return {
    ...stored,
    context: {
      ...context,
      tariff: flatTariff(pricePerMinuteMicros),
      resumes,
      uses: { usedUnits: 0, usedMicros: '0', reservedMicros: '0', open: {}, next: 1 },
      warnAt: null,
      warnedAt: null,
      warnings: { shareBasisPoints: null, secondsBefore: null },
      quote: null,
    },
  };
}
