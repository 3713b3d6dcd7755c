import {
  billableMs,
  bookingsOf,
  domainEventsOf,
  SESSION_MACHINE_VERSION,
  stateNameOf,
  statePathOf,
  type SessionSnapshot,
  type TaggedFacts,
} from '../../machines/session/index.js';
import type { TransitionRecord } from './transition-sql.js';

/** What the journal needs to know of a snapshot to book the next transition from it. */
export function factsOf(snapshot: SessionSnapshot): TaggedFacts {
  return { context: snapshot.context, final: snapshot.status === 'done', billable: snapshot.hasTag('billable'), stuck: snapshot.hasTag('stuck') };
}

/** A session's own reason for needing an operator, written to its row. */
export function blockedReasonOf(snapshot: SessionSnapshot): string | null {
  const blocked = snapshot.hasTag('stuck') ? snapshot.context.blocked : null;
  return blocked ? `${blocked.operation} refused: ${blocked.detail}` : null;
}

/**
 * One transition as the journal writes it: the new row (with the stored snapshot, its invoked
 * calls included, so a restore re-drives them), and what it books and announces, derived from
 * the session before and after.
 */
export function transitionRecordOf(t: {
  snapshot: SessionSnapshot;
  persisted: unknown;
  previous: TaggedFacts;
  from: string;
  seq: number;
  event: string;
  at: number;
}): TransitionRecord {
  const next = factsOf(t.snapshot);
  return {
    seq: t.seq,
    from: t.from,
    to: statePathOf(t.snapshot.value),
    state: stateNameOf(t.snapshot),
    event: t.event,
    at: t.at,
    context: t.snapshot.context,
    snapshot: t.persisted,
    machineVersion: SESSION_MACHINE_VERSION,
    stuckReason: blockedReasonOf(t.snapshot),
    billableMs: t.snapshot.context.endedAt === null ? null : billableMs(t.snapshot.context, t.snapshot.context.endedAt),
    bookings: bookingsOf(t.previous, next),
    events: domainEventsOf(t.previous, next, t.at),
  };
}
