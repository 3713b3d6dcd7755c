import { assign, fromPromise, setup } from 'xstate';
import { chargeFor, cutoffOf, type SessionTerms } from '../../src/billing/tariff.js';
import type {
  AuthorizeInput,
  AuthorizeOutcome,
  CallOutcome,
  CaptureInput,
  CaptureOutcome,
  HoldInfo,
  IncrementInput,
  IncrementOutcome,
  InterruptInput,
  ReleaseInput,
  RenewInput,
  RenewOutcome,
  SessionContext,
  SessionEvent,
  SessionInput,
  VoidInput,
  VoidOutcome,
} from './session.types.js';

/** Stored with every snapshot; bump it (with a migration and a fixture) when a snapshot's shape changes. */
export const SESSION_MACHINE_VERSION = 2;

function notProvided(name: string) {
  return async (): Promise<never> => {
    throw new Error(`${name} must be provided by the supervisor`);
  };
}

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
export function retryDelayMs(context: SessionContext, attempts: number): number {
  return Math.min(context.retry.maxMs, context.retry.baseMs * 2 ** Math.min(attempts - 1, 30));
}

/** Renew a hold ahead of its expiry: renewBeforeMs early, but never in its first half of life. */
export function renewAtOf(context: Pick<SessionContext, 'renewBeforeMs'>, hold: HoldInfo): number {
  const lifetime = hold.expiresAt - hold.authorizedAt;
  return hold.expiresAt - Math.min(context.renewBeforeMs, Math.floor(lifetime / 2));
}

const incrementInput = ({ context }: { context: SessionContext }): IncrementInput => ({
  sessionId: context.sessionId,
  holdId: context.hold!.holdId,
  amountMicros: context.extension!.toMicros,
  attempt: context.extensions + 1,
});

const authorizeInput = (context: SessionContext, attempt: number): AuthorizeInput => ({
  sessionId: context.sessionId,
  accountId: context.accountId,
  amountMicros: context.maxChargeMicros,
  currency: context.currency,
  attempt,
});

/**
 * The provided actors report failures as data; a throw is a bug in them. It is still retried,
 * timed from the last instant the session knows, so the session is never dropped.
 */
function thrownFailure({ context, event }: { context: SessionContext; event: { error: unknown } }) {
  return { at: context.retryAt ?? context.endedAt ?? context.createdAt, detail: `internal error: ${String(event.error)}` };
}

/**
 * One customer session. Pure: the card company, the upstream service and time all come in
 * as provided actors and event timestamps. Deadlines (cutoffAt, renewAt, graceUntil, retryAt)
 * are data in the context; the supervisor schedules them and sends the event deadlineOf names,
 * the same way before and after a restore (xstate does not restore `after` timers).
 */
export const sessionMachine = setup({
  types: {
    context: {} as SessionContext,
    input: {} as SessionInput,
    events: {} as SessionEvent,
  },
  actors: {
    authorizeHold: fromPromise<AuthorizeOutcome, AuthorizeInput>(notProvided('authorizeHold')),
    releaseAuthorization: fromPromise<CallOutcome, ReleaseInput>(notProvided('releaseAuthorization')),
    renewHold: fromPromise<RenewOutcome, RenewInput>(notProvided('renewHold')),
    incrementHold: fromPromise<IncrementOutcome, IncrementInput>(notProvided('incrementHold')),
    interruptService: fromPromise<void, InterruptInput>(notProvided('interruptService')),
    captureCharge: fromPromise<CaptureOutcome, CaptureInput>(notProvided('captureCharge')),
    voidHold: fromPromise<VoidOutcome, VoidInput>(notProvided('voidHold')),
  },
  guards: {
    pastCutoff: ({ context, event }) => context.cutoffAt !== null && 'at' in event && event.at >= context.cutoffAt,
    nothingToCharge: ({ context }) => context.chargeMicros === null || BigInt(context.chargeMicros) === 0n,
    hasGrace: ({ context }) => context.graceMs > 0,
    raisesLimit: ({ context, event }) =>
      event.type === 'EXTEND' && BigInt(event.maxChargeMicros) > BigInt(context.maxChargeMicros),
  },
  actions: {
    endAt: assign(({ context }, params: { at: number; reason: 'logoff' | 'ops_terminated' | 'reauthorization_declined' }) => {
      const endedAt = Math.min(params.at, context.cutoffAt ?? params.at);
      return {
        endedAt,
        endReason: params.reason,
        chargeMicros: chargeFor(termsOf(context), billableMs(context, endedAt)).toString(),
        renewAt: null,
      };
    }),
    endAtCutoff: assign(({ context }) => {
      const endedAt = context.cutoffAt!;
      return {
        endedAt,
        endReason: context.cutoffReason!,
        chargeMicros: chargeFor(termsOf(context), billableMs(context, endedAt)).toString(),
        renewAt: null,
      };
    }),
    startClosing: assign(({ context }) => ({ closingSince: context.endedAt, closeAttempts: 0, retryAt: null })),
    noteRetry: assign(({ context }, params: { at: number; detail: string }) => {
      const closeAttempts = context.closeAttempts + 1;
      return { closeAttempts, lastError: params.detail, retryAt: params.at + retryDelayMs(context, closeAttempts) };
    }),
    requestExtension: assign(({ context, event }) => ({
      extension: {
        fromMicros: context.maxChargeMicros,
        toMicros: (event as Extract<SessionEvent, { type: 'EXTEND' }>).maxChargeMicros,
        requestedAt: (event as Extract<SessionEvent, { type: 'EXTEND' }>).at,
        outcome: 'pending' as const,
        reason: null,
      },
    })),
    /**
     * The card company raised the hold: the limit and the cutoff move. A session resumed from
     * over its limit is not billed for the time it was interrupted.
     */
    extensionApproved: assign(({ context, event }) => {
      const { hold, at } = (event as unknown as { output: Extract<IncrementOutcome, { ok: true }> }).output;
      const maxChargeMicros = context.extension!.toMicros;
      const pausedMs = context.pausedMs + (context.endedAt === null ? 0 : Math.max(0, at - context.endedAt));
      const cutoff = cutoffOf(termsOf({ ...context, maxChargeMicros }));
      // An increment raises the same hold: it was granted when it was, and lapses when it did.
      const raised = { ...hold, authorizedAt: context.hold!.authorizedAt };
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
  },
}).createMachine({
  id: 'session',
  context: ({ input }) => ({
    ...input,
    hold: null,
    startedAt: null,
    cutoffAt: null,
    cutoffReason: null,
    pausedMs: 0,
    graceUntil: null,
    endedAt: null,
    endReason: null,
    chargeMicros: null,
    chargeSlip: null,
    declineReason: null,
    extension: null,
    extensions: 0,
    renewAt: null,
    reauthorizations: 0,
    staleHoldIds: [],
    closingSince: null,
    closeAttempts: 0,
    lastError: null,
    retryAt: null,
  }),
  initial: 'authorizing',
  states: {
    authorizing: {
      initial: 'requesting',
      states: {
        requesting: {
          on: {
            // An operator gives up on an authorization: whatever it placed is released.
            TERMINATE: {
              target: 'releasing',
              actions: assign(({ event }) => ({
                endedAt: event.at,
                endReason: 'declined' as const,
                declineReason: 'ops_terminated',
              })),
            },
          },
          invoke: {
            src: 'authorizeHold',
            input: ({ context }) => authorizeInput(context, 0),
            onDone: [
              {
                guard: ({ event }) => event.output.ok,
                target: '#session.active',
                actions: assign(({ context, event }) => {
                  const { hold, at } = event.output as Extract<AuthorizeOutcome, { ok: true }>;
                  const cutoff = cutoffOf(termsOf(context));
                  return {
                    hold,
                    startedAt: at,
                    cutoffAt: at + cutoff.afterMs,
                    cutoffReason: cutoff.reason,
                    renewAt: renewAtOf(context, hold),
                  };
                }),
              },
              {
                guard: ({ event }) => !event.output.ok && event.output.declined,
                target: '#session.declined',
                actions: assign(({ event }) => {
                  const outcome = event.output as Extract<AuthorizeOutcome, { declined: true }>;
                  return { endedAt: outcome.at, endReason: 'declined' as const, declineReason: outcome.reason };
                }),
              },
              {
                // No answer: a hold may exist all the same (an answer lost after the commit).
                target: 'releasing',
                actions: assign(({ event }) => {
                  const outcome = event.output as Extract<AuthorizeOutcome, { declined: false }>;
                  return {
                    endedAt: outcome.at,
                    endReason: 'declined' as const,
                    declineReason: 'card_network_unavailable',
                    lastError: outcome.detail,
                  };
                }),
              },
            ],
            onError: {
              target: 'releasing',
              actions: assign(({ context, event }) => ({
                endedAt: context.createdAt,
                endReason: 'declined' as const,
                declineReason: 'internal_error',
                lastError: String(event.error),
              })),
            },
          },
        },
        releasing: {
          invoke: {
            src: 'releaseAuthorization',
            input: ({ context }) => authorizeInput(context, 0),
            onDone: [
              { guard: ({ event }) => event.output.ok, target: '#session.declined', actions: assign({ retryAt: null }) },
              {
                target: 'waiting',
                actions: {
                  type: 'noteRetry',
                  params: ({ event }) => event.output as Extract<CallOutcome, { ok: false }>,
                },
              },
            ],
            onError: { target: 'waiting', actions: { type: 'noteRetry', params: thrownFailure } },
          },
        },
        waiting: { on: { RETRY: 'releasing' } },
      },
    },
    active: {
      initial: 'running',
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
      states: {
        running: {
          on: {
            EXTEND: { guard: 'raisesLimit', target: 'extending', actions: 'requestExtension' },
            RENEW_HOLD: 'renewing',
          },
        },
        extending: {
          invoke: {
            src: 'incrementHold',
            input: incrementInput,
            onDone: [
              {
                guard: ({ event }) => event.output.ok,
                target: 'running',
                actions: 'extensionApproved',
              },
              {
                target: 'running',
                actions: {
                  type: 'extensionDeclined',
                  params: ({ event }) => ({ reason: (event.output as Extract<IncrementOutcome, { ok: false }>).reason }),
                },
              },
            ],
            onError: {
              target: 'running',
              actions: { type: 'extensionDeclined', params: ({ event }) => ({ reason: `internal error: ${String(event.error)}` }) },
            },
          },
        },
        renewing: {
          invoke: {
            src: 'renewHold',
            input: ({ context }) => ({
              ...authorizeInput(context, context.reauthorizations + 1),
              previousHoldId: context.hold!.holdId,
            }),
            onDone: [
              {
                guard: ({ event }) => event.output.ok,
                target: 'running',
                actions: assign(({ context, event }) => {
                  const outcome = event.output as Extract<RenewOutcome, { ok: true }>;
                  return {
                    hold: outcome.hold,
                    renewAt: renewAtOf(context, outcome.hold),
                    reauthorizations: context.reauthorizations + 1,
                    staleHoldIds: outcome.staleHoldId ? [...context.staleHoldIds, outcome.staleHoldId] : context.staleHoldIds,
                  };
                }),
              },
              {
                // Declined: the session closes at what it has accrued, on the hold it still has.
                guard: ({ event }) => !event.output.ok && event.output.declined,
                target: '#session.closing',
                actions: [
                  assign(({ event }) => ({ declineReason: (event.output as Extract<AuthorizeOutcome, { declined: true }>).reason })),
                  { type: 'endAt', params: ({ event }) => ({ at: event.output.at, reason: 'reauthorization_declined' }) },
                ],
              },
              {
                // No answer: try again soon, while the current hold is still valid.
                target: 'running',
                actions: assign(({ context, event }) => {
                  const outcome = event.output as Extract<AuthorizeOutcome, { declined: false }>;
                  const retryAt = outcome.at + retryDelayMs(context, context.closeAttempts + 1);
                  return {
                    lastError: outcome.detail,
                    closeAttempts: context.closeAttempts + 1,
                    renewAt: Math.min(retryAt, context.hold!.expiresAt - 1),
                  };
                }),
              },
            ],
            onError: {
              target: 'running',
              actions: assign(({ context, event }) => ({
                lastError: String(event.error),
                renewAt: context.hold!.expiresAt - 1,
              })),
            },
          },
        },
      },
    },
    over_limit: {
      entry: 'endAtCutoff',
      initial: 'interrupting',
      states: {
        interrupting: {
          invoke: {
            src: 'interruptService',
            input: ({ context }) => ({ sessionId: context.sessionId, serviceId: context.serviceId }),
            onDone: 'deciding',
            // Billing must not wait on a service that cannot be reached; the charge is already fixed.
            onError: { target: 'deciding', actions: assign({ lastError: ({ event }) => String(event.error) }) },
          },
        },
        deciding: {
          always: [
            {
              guard: 'hasGrace',
              target: 'grace',
              actions: assign(({ context }) => ({ graceUntil: context.endedAt! + context.graceMs })),
            },
            { target: '#session.closing' },
          ],
        },
        grace: {
          on: {
            EXTEND: { guard: 'raisesLimit', target: 'extending', actions: 'requestExtension' },
            GRACE_OVER: '#session.closing',
            LOGOFF: '#session.closing',
            TERMINATE: '#session.closing',
          },
        },
        extending: {
          invoke: {
            src: 'incrementHold',
            input: incrementInput,
            onDone: [
              {
                // Approved: the session resumes; the time it spent interrupted is not billed.
                guard: ({ event }) => event.output.ok,
                target: '#session.active',
                actions: 'extensionApproved',
              },
              {
                target: 'grace',
                actions: {
                  type: 'extensionDeclined',
                  params: ({ event }) => ({ reason: (event.output as Extract<IncrementOutcome, { ok: false }>).reason }),
                },
              },
            ],
            onError: {
              target: 'grace',
              actions: { type: 'extensionDeclined', params: ({ event }) => ({ reason: `internal error: ${String(event.error)}` }) },
            },
          },
        },
      },
    },
    closing: {
      entry: 'startClosing',
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
              staleHoldIds: context.staleHoldIds,
            }),
            onDone: [
              {
                guard: ({ event }) => event.output.ok,
                target: '#session.settled',
                actions: assign(({ event }) => ({
                  chargeSlip: (event.output as Extract<CaptureOutcome, { ok: true }>).slip,
                  staleHoldIds: [],
                  lastError: null,
                  retryAt: null,
                })),
              },
              {
                target: 'waiting',
                actions: { type: 'noteRetry', params: ({ event }) => event.output as Extract<CaptureOutcome, { ok: false }> },
              },
            ],
            onError: { target: 'waiting', actions: { type: 'noteRetry', params: thrownFailure } },
          },
        },
        voiding: {
          invoke: {
            src: 'voidHold',
            input: ({ context }) => ({
              sessionId: context.sessionId,
              holdId: context.hold!.holdId,
              staleHoldIds: context.staleHoldIds,
            }),
            onDone: [
              {
                guard: ({ event }) => event.output.ok,
                target: '#session.settled',
                actions: assign({ staleHoldIds: [], lastError: null, retryAt: null }),
              },
              {
                target: 'waiting',
                actions: { type: 'noteRetry', params: ({ event }) => event.output as Extract<VoidOutcome, { ok: false }> },
              },
            ],
            onError: { target: 'waiting', actions: { type: 'noteRetry', params: thrownFailure } },
          },
        },
        waiting: {
          on: {
            RETRY: 'choosing',
            // An operator forgives a charge that cannot be captured: the hold is voided instead.
            VOID: { target: 'voiding', actions: assign({ chargeMicros: '0', lastError: 'charge voided by an operator' }) },
          },
        },
      },
    },
    settled: { type: 'final' },
    declined: { type: 'final' },
  },
});
