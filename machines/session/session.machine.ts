import { assign, fromPromise, setup } from 'xstate';
import { chargeFor, cutoffOf, type SessionTerms } from '../../src/billing/tariff.js';
import type {
  AuthorizeInput,
  AuthorizeOutcome,
  CaptureInput,
  CaptureOutcome,
  InterruptInput,
  SessionContext,
  SessionEvent,
  SessionInput,
  VoidInput,
  VoidOutcome,
} from './session.types.js';

/** Stored with every snapshot; bump it (and add a fixture) when a snapshot's shape changes. */
export const SESSION_MACHINE_VERSION = 1;

function notProvided(name: string) {
  return async (): Promise<never> => {
    throw new Error(`${name} must be provided by the supervisor`);
  };
}

export function termsOf(context: SessionContext): SessionTerms {
  return {
    pricePerMinuteMicros: BigInt(context.pricePerMinuteMicros),
    maxChargeMicros: BigInt(context.maxChargeMicros),
    maxMs: context.maxMs,
  };
}

/** Exponential backoff for closing retries, capped: base × 2^(attempt−1). */
export function retryDelayMs(context: SessionContext, attempts: number): number {
  return Math.min(context.retry.maxMs, context.retry.baseMs * 2 ** Math.min(attempts - 1, 30));
}

/**
 * The provided actors report failures as data; a throw is a bug in them. It is still retried,
 * timed from the last instant the session knows, so the session is never dropped.
 */
function thrownFailure({ context, event }: { context: SessionContext; event: { error: unknown } }) {
  return { at: context.retryAt ?? context.endedAt ?? context.createdAt, detail: `internal error: ${String(event.error)}` };
}

/**
 * One customer session. Pure: the card company, the upstream service and time all come in
 * as provided actors and event timestamps. Deadlines (cutoffAt, retryAt) are data in the
 * context; the supervisor schedules them and sends CUTOFF / RETRY_CLOSE, the same way
 * before and after a restore (xstate does not restore `after` timers).
 */
export const sessionMachine = setup({
  types: {
    context: {} as SessionContext,
    input: {} as SessionInput,
    events: {} as SessionEvent,
  },
  actors: {
    authorizeHold: fromPromise<AuthorizeOutcome, AuthorizeInput>(notProvided('authorizeHold')),
    interruptService: fromPromise<void, InterruptInput>(notProvided('interruptService')),
    captureCharge: fromPromise<CaptureOutcome, CaptureInput>(notProvided('captureCharge')),
    voidHold: fromPromise<VoidOutcome, VoidInput>(notProvided('voidHold')),
  },
  guards: {
    pastCutoff: ({ context, event }) => context.cutoffAt !== null && event.at >= context.cutoffAt,
    nothingToCharge: ({ context }) => context.chargeMicros === null || BigInt(context.chargeMicros) === 0n,
  },
  actions: {
    endAt: assign(({ context }, params: { at: number; reason: 'logoff' | 'ops_terminated' }) => {
      const endedAt = Math.min(params.at, context.cutoffAt ?? params.at);
      return {
        endedAt,
        endReason: params.reason,
        chargeMicros: chargeFor(termsOf(context), endedAt - (context.startedAt ?? endedAt)).toString(),
      };
    }),
    noteCloseFailure: assign(({ context }, params: { at: number; detail: string }) => {
      const closeAttempts = context.closeAttempts + 1;
      return { closeAttempts, lastError: params.detail, retryAt: params.at + retryDelayMs(context, closeAttempts) };
    }),
    endAtCutoff: assign(({ context }) => {
      const startedAt = context.startedAt!;
      const endedAt = context.cutoffAt!;
      return {
        endedAt,
        endReason: context.cutoffReason!,
        chargeMicros: chargeFor(termsOf(context), endedAt - startedAt).toString(),
      };
    }),
  },
}).createMachine({
  id: 'session',
  context: ({ input }) => ({
    ...input,
    hold: null,
    startedAt: null,
    cutoffAt: null,
    cutoffReason: null,
    endedAt: null,
    endReason: null,
    chargeMicros: null,
    chargeSlip: null,
    declineReason: null,
    closeAttempts: 0,
    lastError: null,
    retryAt: null,
  }),
  initial: 'authorizing',
  states: {
    authorizing: {
      invoke: {
        src: 'authorizeHold',
        input: ({ context }) => ({
          sessionId: context.sessionId,
          accountId: context.accountId,
          amountMicros: context.maxChargeMicros,
          currency: context.currency,
        }),
        onDone: [
          {
            guard: ({ event }) => event.output.ok,
            target: 'active',
            actions: assign(({ context, event }) => {
              const outcome = event.output as Extract<AuthorizeOutcome, { ok: true }>;
              const cutoff = cutoffOf(termsOf(context));
              return {
                hold: outcome.hold,
                startedAt: outcome.at,
                cutoffAt: outcome.at + cutoff.afterMs,
                cutoffReason: cutoff.reason,
              };
            }),
          },
          {
            target: 'declined',
            actions: assign(({ event }) => {
              const outcome = event.output as Extract<AuthorizeOutcome, { ok: false }>;
              return {
                endedAt: outcome.at,
                endReason: 'declined' as const,
                declineReason: outcome.declined ? outcome.reason : 'card_network_unavailable',
                lastError: outcome.declined ? null : outcome.detail,
              };
            }),
          },
        ],
        onError: {
          target: 'declined',
          actions: assign(({ context, event }) => ({
            endedAt: context.createdAt,
            endReason: 'declined' as const,
            declineReason: 'internal_error',
            lastError: String(event.error),
          })),
        },
      },
    },
    active: {
      on: {
        // A logoff that arrives after the cutoff instant (before its timer fired) is a limit hit.
        LOGOFF: [
          { guard: 'pastCutoff', target: 'over_limit' },
          { target: 'closing', actions: { type: 'endAt', params: ({ event }) => ({ at: event.at, reason: 'logoff' }) } },
        ],
        CUTOFF: { guard: 'pastCutoff', target: 'over_limit' },
        TERMINATE: [
          { guard: 'pastCutoff', target: 'over_limit' },
          {
            target: 'closing',
            actions: { type: 'endAt', params: ({ event }) => ({ at: event.at, reason: 'ops_terminated' }) },
          },
        ],
      },
    },
    over_limit: {
      entry: 'endAtCutoff',
      invoke: {
        src: 'interruptService',
        input: ({ context }) => ({ sessionId: context.sessionId, serviceId: context.serviceId }),
        onDone: 'closing',
        // Billing must not wait on a service that cannot be reached; the charge is already fixed.
        onError: { target: 'closing', actions: assign({ lastError: ({ event }) => String(event.error) }) },
      },
    },
    closing: {
      initial: 'choosing',
      states: {
        choosing: {
          always: [{ guard: 'nothingToCharge', target: 'voiding' }, { target: 'capturing' }],
        },
        capturing: {
          invoke: {
            src: 'captureCharge',
            input: ({ context }) => ({
              sessionId: context.sessionId,
              holdId: context.hold!.holdId,
              amountMicros: context.chargeMicros!,
            }),
            onDone: [
              {
                guard: ({ event }) => event.output.ok,
                target: '#session.settled',
                actions: assign(({ event }) => ({
                  chargeSlip: (event.output as Extract<CaptureOutcome, { ok: true }>).slip,
                  lastError: null,
                  retryAt: null,
                })),
              },
              {
                target: 'waiting',
                actions: {
                  type: 'noteCloseFailure',
                  params: ({ event }) => event.output as Extract<CaptureOutcome, { ok: false }>,
                },
              },
            ],
            onError: { target: 'waiting', actions: { type: 'noteCloseFailure', params: thrownFailure } },
          },
        },
        voiding: {
          invoke: {
            src: 'voidHold',
            input: ({ context }) => ({ sessionId: context.sessionId, holdId: context.hold!.holdId }),
            onDone: [
              {
                guard: ({ event }) => event.output.ok,
                target: '#session.settled',
                actions: assign({ lastError: null, retryAt: null }),
              },
              {
                target: 'waiting',
                actions: {
                  type: 'noteCloseFailure',
                  params: ({ event }) => event.output as Extract<VoidOutcome, { ok: false }>,
                },
              },
            ],
            onError: { target: 'waiting', actions: { type: 'noteCloseFailure', params: thrownFailure } },
          },
        },
        waiting: {
          on: { RETRY_CLOSE: 'choosing' },
        },
      },
    },
    settled: { type: 'final' },
    declined: { type: 'final' },
  },
});
