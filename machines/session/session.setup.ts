import { assign, enqueueActions, fromPromise, setup } from 'xstate';
import { billableAt } from '../../src/billing/charge.js';
import { cutoffInstant, endedAt, extensionRefusal, lostAt, termsOf, useFits, warnAtOf } from './session.terms.js';
import type {
  AuthorizeInput,
  AuthorizeOutcome,
  CallOutcome,
  CaptureInput,
  CaptureOutcome,
  CardOperation,
  EndReason,
  Extension,
  HoldInfo,
  IncrementInput,
  IncrementOutcome,
  ReleaseInput,
  RenewInput,
  RenewOutcome,
  ReserveInput,
  ReserveOutcome,
  SessionContext,
  SessionEvent,
  SessionInput,
  VoidInput,
} from './session.types.js';

/**
 * Facts about a state that hosts may ask (DESIGN rule 12): nothing outside machines/ compares
 * state names.
 * - seat: holds a seat at its service's and its server's gate
 * - opening: the open is still waiting for the card company's first answer
 * - billable: the customer is connected and charges accrue
 * - extendable: an EXTEND may be taken now
 * - extending: an extension is being reserved or authorized
 * - resting: no call to the card company is in flight
 * - stuck: a call was refused for good; the session waits for an operator
 */
export type SessionTag = 'seat' | 'opening' | 'billable' | 'extendable' | 'extending' | 'resting' | 'stuck';

export { billableMs, extensionRefusal, termsOf } from './session.terms.js';

/** Exponential backoff for retries, capped: base × 2^(attempt−1). */
export function retryDelayMs(context: Pick<SessionContext, 'retry'>, attempts: number): number {
  return Math.min(context.retry.maxMs, context.retry.baseMs * 2 ** Math.min(attempts - 1, 30));
}

/** How long before its expiry a hold is renewed: renewBeforeMs, but never in its first half of life. */
function renewalWindowMs(context: Pick<SessionContext, 'renewBeforeMs'>, hold: HoldInfo): number {
  return Math.min(context.renewBeforeMs, Math.floor((hold.expiresAt - hold.authorizedAt) / 2));
}

/** Renew a hold ahead of its expiry: renewBeforeMs early, but never in its first half of life. */
export function renewAtOf(context: Pick<SessionContext, 'renewBeforeMs'>, hold: HoldInfo): number {
  return hold.expiresAt - renewalWindowMs(context, hold);
}

/**
 * The last try of a renewal the card company has not answered: halfway through the renewal window.
 * The other half is kept for capturing the charge on the hold while it is still open (an outside
 * probe found a session running on past its hold's expiry, renewing in a tight loop, its charge
 * then refused by the card company).
 */
export function lastRenewalAtOf(context: Pick<SessionContext, 'renewBeforeMs'>, hold: HoldInfo): number {
  return hold.expiresAt - Math.floor(renewalWindowMs(context, hold) / 2);
}

/** Whether the renewal due now is not the last try: one due at the last try (or later) is. */
export function renewsAgain(context: Pick<SessionContext, 'renewBeforeMs' | 'renewAt' | 'hold'>): boolean {
  return context.renewAt !== null && context.hold !== null && context.renewAt < lastRenewalAtOf(context, context.hold);
}

/**
 * An approved extension. A hold raised to exactly the limit asked says an earlier unanswered
 * increment left nothing more; one the card company found already higher keeps that amount
 * (unconfirmedMicros) in the session's share of the outstanding limit.
 */
function approvedExtension(extension: Extension, hold: HoldInfo): Extension {
  const { unconfirmedMicros, ...rest } = extension;
  const higher = unconfirmedMicros !== undefined && BigInt(hold.amountMicros) > BigInt(extension.toMicros);
  return { ...rest, outcome: 'approved', ...(higher && { unconfirmedMicros: hold.amountMicros }) };
}

function notProvided(name: string) {
  return async (): Promise<never> => {
    throw new Error(`${name} must be provided by the supervisor`);
  };
}

type Outcome = { kind: string; at: number };
type Failure = { at: number; detail: string };

/**
 * The machine's vocabulary: every actor, guard and action by name. The card company, the
 * account's reservation and time all come in as provided actors and event timestamps.
 */
export const sessionSetup = setup({
  types: {
    context: {} as SessionContext,
    input: {} as SessionInput,
    events: {} as SessionEvent,
    tags: {} as SessionTag,
  },
  actors: {
    authorizeHold: fromPromise<AuthorizeOutcome, AuthorizeInput>(notProvided('authorizeHold')),
    releaseAuthorization: fromPromise<CallOutcome, ReleaseInput>(notProvided('releaseAuthorization')),
    renewHold: fromPromise<RenewOutcome, RenewInput>(notProvided('renewHold')),
    reserveExtension: fromPromise<ReserveOutcome, ReserveInput>(notProvided('reserveExtension')),
    incrementHold: fromPromise<IncrementOutcome, IncrementInput>(notProvided('incrementHold')),
    captureCharge: fromPromise<CaptureOutcome, CaptureInput>(notProvided('captureCharge')),
    voidHold: fromPromise<CallOutcome, VoidInput>(notProvided('voidHold')),
  },
  guards: {
    /** The outcome of a call is of this kind (the outcome comes in as params). */
    outcomeIs: (_, params: { outcome: Outcome; kind: string }) => params.outcome.kind === params.kind,
    pastCutoff: ({ context, event }) => context.cutoffAt !== null && event.at >= context.cutoffAt,
    /** Over the limit, lost before the instant the session stopped: the loss ends it there instead. */
    lostBeforeEnd: ({ context, event }) => event.type === 'SERVICE_LOST' && context.endedAt !== null && lostAt(context, event) < context.endedAt,
    /** The limit was reached before the service was lost: the limit ends it, not the loss. */
    lostPastCutoff: ({ context, event }) => event.type === 'SERVICE_LOST' && context.cutoffAt !== null && lostAt(context, event) >= context.cutoffAt,
    nothingToCharge: ({ context }) => context.chargeMicros === null || BigInt(context.chargeMicros) === 0n,
    hasGrace: ({ context }) => context.graceMs > 0,
    raisesLimit: ({ context, event }) => event.type === 'EXTEND' && extensionRefusal(context, event.maxChargeMicros) === null,
    useFits: ({ context, event }) => (event.type === 'RESERVE_USE' || event.type === 'USE') && useFits(context, event.at, event.units),
    reservationOpen: ({ context, event }) =>
      (event.type === 'COMMIT_USE' || event.type === 'RELEASE_USE') && event.reservationId in context.uses.open,
    usesReserved: ({ context }) => Object.keys(context.uses.open).length > 0,
    noUsesReserved: ({ context }) => Object.keys(context.uses.open).length === 0,
    commitWithinReservation: ({ context, event }) =>
      event.type === 'COMMIT_USE' && event.units <= (context.uses.open[event.reservationId]?.units ?? -1),
    /** A renewal that may be tried again (unanswered, or a bug) and was not the last try: one that was ends the session. */
    renewalAgain: ({ context }, params: { retryable: boolean }) => params.retryable && renewsAgain(context),
    toldPastCutoff: ({ context }, params: { at: number }) => context.cutoffAt !== null && params.at >= context.cutoffAt,
    warningDue: ({ context, event }) => context.warnAt !== null && context.warnedAt === null && event.at >= context.warnAt,
  },
  actions: {
    activate: assign(({ context }, outcome: AuthorizeOutcome) => {
      if (outcome.kind !== 'held') return {};
      const started = { ...context, startedAt: outcome.at };
      const cutoff = cutoffInstant(started);
      return {
        hold: outcome.hold,
        startedAt: outcome.at,
        cutoffAt: cutoff.at,
        cutoffReason: cutoff.reason,
        renewAt: renewAtOf(context, outcome.hold),
        warnAt: warnAtOf(started, cutoff.at, outcome.at),
      };
    }),
    decline: assign((_, params: { at: number; reason: string; detail?: string }) => ({
      endedAt: params.at,
      endReason: 'declined' as const,
      declineReason: params.reason,
      ...(params.detail === undefined ? {} : { lastError: params.detail }),
    })),
    endAt: assign(({ context }, params: { at: number; reason: EndReason }) => endedAt(context, params.at, params.reason)),
    endAtCutoff: assign(({ context }) => endedAt(context, context.cutoffAt!, context.cutoffReason!)),
    // Grace counts from the end, or from the last use settled while the session waited for its
    // uses (awaitingUsesSettled): the wait does not eat it.
    startGrace: assign(({ context }) => ({ graceUntil: Math.max(context.graceUntil ?? 0, context.endedAt! + context.graceMs) })),
    awaitingUsesSettled: assign(({ context, event }) => ('at' in event ? { graceUntil: event.at + context.graceMs } : {})),
    startClosing: assign(({ context }) => ({ closingSince: context.endedAt, closeAttempts: 0, retryAt: null })),
    noteRetry: assign(({ context }, failure: Failure) => {
      const closeAttempts = context.closeAttempts + 1;
      // blocked is already null: every way from `blocked` back to `calling` clears it (clearFailure).
      return { closeAttempts, lastError: failure.detail, retryAt: failure.at + retryDelayMs(context, closeAttempts) };
    }),
    noteBlocked: assign(({ context }, params: Failure & { operation: CardOperation }) => ({
      closeAttempts: context.closeAttempts + 1,
      lastError: params.detail,
      retryAt: null,
      blocked: { operation: params.operation, detail: params.detail, at: params.at },
    })),
    clearFailure: assign({ lastError: null, retryAt: null, blocked: null }),
    recordSlip: assign((_, outcome: CaptureOutcome) => (outcome.kind === 'captured' ? { chargeSlip: outcome.slip, staleHoldIds: [] } : {})),
    holdsVoided: assign({ staleHoldIds: [] }),
    /** An operator forgives the charge: the hold is voided first; the charge is 0 once it is (chargeForgiven). */
    forgiveCharge: assign({ lastError: 'charge voided by an operator' }),
    chargeForgiven: assign(({ context }) => (context.chargeMicros !== null && BigInt(context.chargeMicros) > 0n ? { chargeMicros: '0' } : {})),
    requestExtension: assign(({ context, event }) =>
      event.type === 'EXTEND'
        ? {
            extension: {
              fromMicros: context.maxChargeMicros,
              toMicros: event.maxChargeMicros,
              requestedAt: event.at,
              outcome: 'reserving' as const,
              reason: null,
              ...(context.extension?.unconfirmedMicros !== undefined && { unconfirmedMicros: context.extension.unconfirmedMicros }),
            },
          }
        : {},
    ),
    extensionReserved: assign(({ context }) => ({ extension: { ...context.extension!, outcome: 'pending' as const } })),
    /**
     * The card company raised the hold: the limit and the cutoff move. A session resumed from
     * over its limit is not billed for the time it was interrupted.
     */
    extensionApproved: assign(({ context }, outcome: IncrementOutcome) => {
      if (outcome.kind !== 'raised') return {};
      const maxChargeMicros = context.extension!.toMicros;
      // Resumed from over the limit: billable time goes on now from where it stopped.
      const resumes =
        context.endedAt === null
          ? context.resumes
          : [...context.resumes, { billableAtMs: billableAt(termsOf(context), context.endedAt), wallAtMs: Math.max(outcome.at, context.endedAt) }];
      const extended = { ...context, maxChargeMicros, resumes };
      const cutoff = cutoffInstant(extended);
      // An increment raises the same hold: it was granted when it was, and lapses when it did.
      const raised = { ...outcome.hold, authorizedAt: context.hold!.authorizedAt };
      return {
        hold: raised,
        maxChargeMicros,
        resumes,
        cutoffAt: cutoff.at,
        cutoffReason: cutoff.reason,
        warnAt: warnAtOf(extended, cutoff.at, outcome.at),
        warnedAt: null,
        graceUntil: null,
        endedAt: null,
        endReason: null,
        chargeMicros: null,
        renewAt: renewAtOf(context, raised),
        extension: approvedExtension(context.extension!, raised),
        extensions: context.extensions + 1,
      };
    }),
    extensionDeclined: assign(({ context }, params: { reason: string }) => ({
      extension: { ...context.extension!, outcome: 'declined' as const, reason: params.reason },
      extensions: context.extensions + 1,
    })),
    /** No answer to an increment: the limit stays, but the hold may have been raised (Extension.unconfirmedMicros). */
    extensionUnanswered: assign(({ context }) => {
      const { toMicros, unconfirmedMicros } = context.extension!;
      const unconfirmed = unconfirmedMicros !== undefined && BigInt(unconfirmedMicros) > BigInt(toMicros) ? unconfirmedMicros : toMicros;
      return {
        extension: { ...context.extension!, outcome: 'declined' as const, reason: 'card_network_unavailable', unconfirmedMicros: unconfirmed },
        extensions: context.extensions + 1,
      };
    }),
    warned: assign(({ event }) => ({ warnedAt: event.at })),
    /** Uses priced per use are reserved first: what they may cost is held back from time at once. */
    reserveUse: assign(({ context, event }) => {
      if (event.type !== 'RESERVE_USE' || !context.tariff.perUse) return {};
      const micros = BigInt(context.tariff.perUse.priceMicros) * BigInt(event.units);
      const uses = {
        ...context.uses,
        reservedMicros: (BigInt(context.uses.reservedMicros) + micros).toString(),
        open: { ...context.uses.open, [`r${context.uses.next}`]: { units: event.units, micros: micros.toString(), ...(event.edge && { edge: true as const }) } },
        next: context.uses.next + 1,
      };
      return { uses, ...nearerCutoff({ ...context, uses }, event.at) };
    }),
    /** Committed: what was used is charged; the rest of the reservation goes back to time. */
    commitUse: assign(({ context, event }) => {
      if (event.type !== 'COMMIT_USE' || !context.tariff.perUse) return {};
      const uses = committed(context, event.reservationId, event.units);
      return { uses, ...nearerCutoff({ ...context, uses }, event.at) };
    }),
    /** Used without a reservation: charged at once (the guard checked that it fits). */
    useNow: assign(({ context, event }) => {
      if (event.type !== 'USE' || !context.tariff.perUse) return {};
      const used = BigInt(context.tariff.perUse.priceMicros) * BigInt(event.units);
      const uses = { ...context.uses, usedUnits: context.uses.usedUnits + event.units, usedMicros: (BigInt(context.uses.usedMicros) + used).toString() };
      return { uses, ...nearerCutoff({ ...context, uses }, event.at) };
    }),
    releaseUse: assign(({ context, event }) => {
      if (event.type !== 'RELEASE_USE') return {};
      const uses = released(context, [event.reservationId]);
      return { uses, ...nearerCutoff({ ...context, uses }, event.at) };
    }),
    /** Committed after the session ended at its limit: charged with its time, which stays where it stopped. */
    commitUseAfterEnd: assign(({ context, event }) => {
      if (event.type !== 'COMMIT_USE' || !context.tariff.perUse) return {};
      const uses = committed(context, event.reservationId, event.units);
      return { uses, ...endedAt({ ...context, uses }, context.endedAt!, context.endReason!) };
    }),
    releaseUseAfterEnd: assign(({ context, event }) => (event.type === 'RELEASE_USE' ? { uses: released(context, [event.reservationId]) } : {})),
    /** Reservations still open when the session closes go back, not charged. */
    releaseOpenUses: assign(({ context }) => ({ uses: released(context, Object.keys(context.uses.open)) })),
    /** Uses that took the session to its limit end it now, at exactly its limit. */
    cutIfLimitReached: enqueueActions(({ context, event, enqueue }) => {
      if ('at' in event && context.cutoffAt !== null && event.at >= context.cutoffAt) enqueue.raise({ type: 'CUTOFF', at: event.at });
    }),
    renewed: assign(({ context }, outcome: RenewOutcome) => {
      if (outcome.kind !== 'held') return {};
      return {
        hold: outcome.hold,
        renewAt: renewAtOf(context, outcome.hold),
        reauthorizations: context.reauthorizations + 1,
        staleHoldIds: outcome.staleHoldId ? [...context.staleHoldIds, outcome.staleHoldId] : context.staleHoldIds,
        lastError: null,
        // The next renewal's tries back off from the start again.
        closeAttempts: 0,
      };
    }),
    /** No answer to a renewal: try again soon, at the last try at the latest. */
    renewLater: assign(({ context }, failure: Failure) => {
      const attempts = context.closeAttempts + 1;
      return {
        lastError: failure.detail,
        closeAttempts: attempts,
        renewAt: Math.min(failure.at + retryDelayMs(context, attempts), lastRenewalAtOf(context, context.hold!)),
      };
    }),
    renewalRefused: assign((_, params: { reason: string }) => ({ declineReason: params.reason })),
  },
});

/** `units` of a reservation used (at most what it reserved): charged; the rest of it goes back. */
function committed(context: SessionContext, reservationId: string, units: number): SessionContext['uses'] {
  const uses = released(context, [reservationId]);
  const used = BigInt(context.tariff.perUse!.priceMicros) * BigInt(units);
  return { ...uses, usedUnits: uses.usedUnits + units, usedMicros: (BigInt(uses.usedMicros) + used).toString() };
}

/** Reservations given back whole. */
function released(context: SessionContext, reservationIds: readonly string[]): SessionContext['uses'] {
  const open = { ...context.uses.open };
  let reservedMicros = BigInt(context.uses.reservedMicros);
  for (const id of reservationIds) {
    reservedMicros -= BigInt(open[id]!.micros);
    delete open[id];
  }
  return { ...context.uses, reservedMicros: reservedMicros.toString(), open };
}

/** The cutoff and the warning once uses changed what time may spend; never before `at`. */
function nearerCutoff(context: SessionContext, at: number): Partial<SessionContext> {
  const cutoff = cutoffInstant(context);
  const cutoffAt = Math.max(cutoff.at, at);
  return { cutoffAt, cutoffReason: cutoff.reason, warnAt: context.warnedAt === null ? warnAtOf(context, cutoffAt, at) : context.warnAt };
}

/** The description a failed outcome carries, whatever its kind. */
export function failureOf(outcome: Outcome & { detail?: string; reason?: string }): Failure {
  return { at: outcome.at, detail: outcome.detail ?? outcome.reason ?? outcome.kind };
}

/**
 * A thrown error in a provided actor is a bug in it; it is retried like an unanswered call. The
 * machine reads no clock: the failure is dated at the latest instant it knows the call was made
 * after (the retry that was due, the end, the renewal that was due), so the next try is not
 * already past (a renewal dated at the session's creation was retried at once, again and again).
 */
export function thrownFailure(context: SessionContext, error: unknown): Failure {
  return { at: context.retryAt ?? context.endedAt ?? context.renewAt ?? context.createdAt, detail: `internal error: ${String(error)}` };
}
