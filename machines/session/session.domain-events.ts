import type { SessionFacts } from './session.bookings.js';
import type { ChargeSlipInfo, EndReason, LimitReason, MicrosText, SessionContext } from './session.types.js';

/** The facts of a transition's two sides that events are derived from. */
export interface TaggedFacts extends SessionFacts {
  billable: boolean;
  stuck: boolean;
}

interface Common {
  sessionId: string;
  accountId: string;
  serviceId: string;
  serverId: string;
  /** When it happened (the machine's own instant, not when it was written). */
  at: number;
}

/**
 * What happened to a session, as the rest of the house hears of it (DESIGN rule 14): published
 * after the transition that implies it is committed, in order per session.
 */
export type SessionDomainEvent = Common &
  (
    | { type: 'session.opened'; maxChargeMicros: MicrosText; maxMs: number | null }
    | { type: 'session.activated'; startedAt: number; cutoffAt: number; cutoffReason: LimitReason; maxChargeMicros: MicrosText; authorizationNumber: string }
    | { type: 'session.extended'; cutoffAt: number; cutoffReason: LimitReason; maxChargeMicros: MicrosText; resumed: boolean }
    | { type: 'session.warning'; cutoffAt: number; cutoffReason: LimitReason }
    | { type: 'session.interrupted'; reason: LimitReason; endedAt: number; chargeMicros: MicrosText }
    | { type: 'session.logged_off'; reason: Exclude<EndReason, LimitReason | 'declined'>; endedAt: number; chargeMicros: MicrosText }
    | { type: 'session.settled'; endReason: EndReason | null; chargeMicros: MicrosText; chargeSlip: ChargeSlipInfo | null }
    | { type: 'session.declined'; reason: string }
    | { type: 'session.stuck'; reason: string }
  );

export type SessionDomainEventType = SessionDomainEvent['type'];

const common = (c: SessionContext, at: number): Common => ({
  sessionId: c.sessionId,
  accountId: c.accountId,
  serviceId: c.serviceId,
  serverId: c.serverId,
  at,
});

/** The event that announces a new session; written with its first row. */
export function openedEvent(c: SessionContext): SessionDomainEvent {
  return { ...common(c, c.createdAt), type: 'session.opened', maxChargeMicros: c.maxChargeMicros, maxMs: c.maxMs };
}

/** Every event a transition from `previous` to `next` implies, as a pure function of the two. */
export function domainEventsOf(previous: TaggedFacts, next: TaggedFacts, at: number): SessionDomainEvent[] {
  const p = previous.context;
  const c = next.context;
  const events: SessionDomainEvent[] = [];
  if (next.billable && p.startedAt === null && c.startedAt !== null && c.cutoffAt !== null && c.cutoffReason && c.hold) {
    events.push({
      ...common(c, c.startedAt),
      type: 'session.activated',
      startedAt: c.startedAt,
      cutoffAt: c.cutoffAt,
      cutoffReason: c.cutoffReason,
      maxChargeMicros: c.maxChargeMicros,
      authorizationNumber: c.hold.authorizationNumber,
    });
  }
  if (c.extensions > p.extensions && c.extension?.outcome === 'approved' && c.cutoffAt !== null && c.cutoffReason) {
    events.push({
      ...common(c, at),
      type: 'session.extended',
      cutoffAt: c.cutoffAt,
      cutoffReason: c.cutoffReason,
      maxChargeMicros: c.maxChargeMicros,
      resumed: !previous.billable,
    });
  }
  if (c.warnedAt !== null && p.warnedAt === null && c.cutoffAt !== null && c.cutoffReason) {
    events.push({ ...common(c, c.warnedAt), type: 'session.warning', cutoffAt: c.cutoffAt, cutoffReason: c.cutoffReason });
  }
  if (previous.billable && !next.billable && c.endedAt !== null && c.endReason !== null && c.chargeMicros !== null) {
    const ended = { ...common(c, c.endedAt), endedAt: c.endedAt, chargeMicros: c.chargeMicros };
    if (c.endReason === 'charge_limit' || c.endReason === 'time_limit') events.push({ ...ended, type: 'session.interrupted', reason: c.endReason });
    else if (c.endReason !== 'declined') events.push({ ...ended, type: 'session.logged_off', reason: c.endReason });
  }
  if (next.stuck && !previous.stuck && c.blocked) {
    events.push({ ...common(c, c.blocked.at), type: 'session.stuck', reason: `${c.blocked.operation} refused: ${c.blocked.detail}` });
  }
  if (next.final && !previous.final) {
    if (c.endReason === 'declined') events.push({ ...common(c, at), type: 'session.declined', reason: c.declineReason ?? 'declined' });
    else events.push({ ...common(c, at), type: 'session.settled', endReason: c.endReason, chargeMicros: c.chargeSlip?.amountMicros ?? '0', chargeSlip: c.chargeSlip });
  }
  return events;
}
