import { assign, fromPromise, setup } from 'xstate';
import { chargeFor, cutoffOf, type SessionTerms } from '../../src/billing/tariff.js';
import type {
  AuthorizeInput,
  AuthorizeOutcome,
  CallOutcome,
  CaptureInput,
  CaptureOutcome,
  CardOperation,
  EndReason,
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

export function termsOf(context: Pick<SessionContext, 'pricePerMinuteMicros' | 'maxChargeMicros' | 'maxMs'>): SessionTerms {
  return {
    pricePerMinuteMicros: BigInt(context.pricePerMinuteMicros),
    maxChargeMicros: BigInt(context.maxChargeMicros),
    maxMs: context.maxMs,
  };
}

/** Billable time between the start and `at`: time paused over the limit is not billed. */
export function billableMs(context: SessionContext, at: number): number {
  return context.startedAt === null ? 0 : Math.max(0, at - context.startedAt - context.pausedMs);
}

/** Exponential backoff for retries, capped: base × 2^(attempt−1). */
export function retryDelayMs(context: Pick<SessionContext, 'retry'>, attempts: number): number {
  return Math.min(context.retry.maxMs, context.retry.baseMs * 2 ** Math.min(attempts - 1, 30));
}

/** Renew a hold ahead of its expiry: renewBeforeMs early, but never in its first half of life. */
export function renewAtOf(context: Pick<SessionContext, 'renewBeforeMs'>, hold: HoldInfo): number {
  const lifetime = hold.expiresAt - hold.authorizedAt;
  return hold.expiresAt - Math.min(context.renewBeforeMs, Math.floor(lifetime / 2));
}

/**
 * Why a new charge limit would change nothing, or null when it raises the limit: it must be
 * above the current one, and the time limit must not end the session before the new limit could.
 */
export function extensionRefusal(
  context: Pick<SessionContext, 'pricePerMinuteMicros' | 'maxChargeMicros' | 'maxMs'>,
  maxChargeMicros: string,
): 'not_higher' | 'time_limit_binds' | null {
  if (BigInt(maxChargeMicros) <= BigInt(context.maxChargeMicros)) return 'not_higher';
  const terms = termsOf(context);
  if (cutoffOf({ ...terms, maxChargeMicros: BigInt(maxChargeMicros) }).afterMs <= cutoffOf(terms).afterMs) return 'time_limit_binds';
  return null;
}

/** The charge for a session that ends at `at` (never past its cutoff). */
function endedAt(context: SessionContext, at: number, reason: EndReason): Partial<SessionContext> {
  const ended = Math.min(at, context.cutoffAt ?? at);
  return {
    endedAt: ended,
    endReason: reason,
    chargeMicros: chargeFor(termsOf(context), billableMs(context, ended)).toString(),
    renewAt: null,
  };
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
    nothingToCharge: ({ context }) => context.chargeMicros === null || BigInt(context.chargeMicros) === 0n,
    hasGrace: ({ context }) => context.graceMs > 0,
    raisesLimit: ({ context, event }) => event.type === 'EXTEND' && extensionRefusal(context, event.maxChargeMicros) === null,
  },
  actions: {
    activate: assign(({ context }, outcome: AuthorizeOutcome) => {
      if (outcome.kind !== 'held') return {};
      const cutoff = cutoffOf(termsOf(context));
      return {
        hold: outcome.hold,
        startedAt: outcome.at,
        cutoffAt: outcome.at + cutoff.afterMs,
        cutoffReason: cutoff.reason,
        renewAt: renewAtOf(context, outcome.hold),
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
    startGrace: assign(({ context }) => ({ graceUntil: context.endedAt! + context.graceMs })),
    startClosing: assign(({ context }) => ({ closingSince: context.endedAt, closeAttempts: 0, retryAt: null })),
    noteRetry: assign(({ context }, failure: Failure) => {
      const closeAttempts = context.closeAttempts + 1;
      return { closeAttempts, lastError: failure.detail, retryAt: failure.at + retryDelayMs(context, closeAttempts), blocked: null };
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
    forgiveCharge: assign({ chargeMicros: '0', lastError: 'charge voided by an operator' }),
    requestExtension: assign(({ context, event }) =>
      event.type === 'EXTEND'
        ? {
            extension: {
              fromMicros: context.maxChargeMicros,
              toMicros: event.maxChargeMicros,
              requestedAt: event.at,
              outcome: 'reserving' as const,
              reason: null,
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
      const pausedMs = context.pausedMs + (context.endedAt === null ? 0 : Math.max(0, outcome.at - context.endedAt));
      const cutoff = cutoffOf(termsOf({ ...context, maxChargeMicros }));
      // An increment raises the same hold: it was granted when it was, and lapses when it did.
      const raised = { ...outcome.hold, authorizedAt: context.hold!.authorizedAt };
      return {
        hold: raised,
        maxChargeMicros,
        pausedMs,
        cutoffAt: context.startedAt! + pausedMs + cutoff.afterMs,
        cutoffReason: cutoff.reason,
        graceUntil: null,
        endedAt: null,
        endReason: null,
        chargeMicros: null,
        renewAt: renewAtOf(context, raised),
        extension: { ...context.extension!, outcome: 'approved' as const },
        extensions: context.extensions + 1,
      };
    }),
    extensionDeclined: assign(({ context }, params: { reason: string }) => ({
      extension: { ...context.extension!, outcome: 'declined' as const, reason: params.reason },
      extensions: context.extensions + 1,
    })),
    renewed: assign(({ context }, outcome: RenewOutcome) => {
      if (outcome.kind !== 'held') return {};
      return {
        hold: outcome.hold,
        renewAt: renewAtOf(context, outcome.hold),
        reauthorizations: context.reauthorizations + 1,
        staleHoldIds: outcome.staleHoldId ? [...context.staleHoldIds, outcome.staleHoldId] : context.staleHoldIds,
        lastError: null,
      };
    }),
    /** No answer to a renewal: try again soon, while the current hold is still valid. */
    renewLater: assign(({ context }, failure: Failure) => {
      const attempts = context.closeAttempts + 1;
      return {
        lastError: failure.detail,
        closeAttempts: attempts,
        renewAt: Math.min(failure.at + retryDelayMs(context, attempts), context.hold!.expiresAt - 1),
      };
    }),
    renewalRefused: assign((_, params: { reason: string }) => ({ declineReason: params.reason })),
  },
});

/** The description a failed outcome carries, whatever its kind. */
export function failureOf(outcome: Outcome & { detail?: string; reason?: string }): Failure {
  return { at: outcome.at, detail: outcome.detail ?? outcome.reason ?? outcome.kind };
}

/** A thrown error in a provided actor is a bug in it; it is retried like an unanswered call. */
export function thrownFailure(context: SessionContext, error: unknown): Failure {
  return { at: context.retryAt ?? context.endedAt ?? context.createdAt, detail: `internal error: ${String(error)}` };
}
