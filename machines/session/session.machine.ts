// Over 300 lines on purpose: this file is the session's statechart and nothing else, read (and
// drawn) as one; its vocabulary of guards, actions and actors is in session.setup.ts.
import { not, type SnapshotFrom } from 'xstate';
import { failureOf, renewsAgain, sessionSetup, thrownFailure } from './session.setup.js';
import { lostAt } from './session.terms.js';
import type { SessionContext } from './session.types.js';

/** Stored with every snapshot; bump it (with a migration and a fixture) when a snapshot's shape changes. */
export const SESSION_MACHINE_VERSION = 4;

const authorizeInput = (context: SessionContext, attempt: number) => ({
  sessionId: context.sessionId,
  accountId: context.accountId,
  amountMicros: context.maxChargeMicros,
  currency: context.currency,
  attempt,
});

/** Waiting to retry a call that got no answer; the RETRY comes at retryAt, or from an operator. */
const waitingToRetry = sessionSetup.createStateConfig({
  tags: ['resting'],
  on: { RETRY: 'calling' },
});

/** An operator's VOID of a charge being closed: the failure is cleared first, so the note that it was forgiven is what stays. */
const forgiven = { target: '#session.closing.voiding', actions: ['clearFailure', 'forgiveCharge'] } as const;

/** A call the card company refused for good: only an operator moves it on. */
const blockedOnOperator = sessionSetup.createStateConfig({
  tags: ['resting', 'stuck'],
  on: { RETRY: { target: 'calling', actions: 'clearFailure' } },
});

/**
 * One extension, from `running` (or from grace over the limit): the extra share of the
 * outstanding limit is reserved first, then the card company is asked to raise the hold.
 * `approved` and `declined` are where the session goes next.
 */
function extending(targets: { approved: string; declined: string }) {
  return sessionSetup.createStateConfig({
    tags: ['extending'],
    initial: 'reserving',
    states: {
      reserving: {
        invoke: {
          id: 'reserve',
          src: 'reserveExtension',
          input: ({ context }) => ({
            sessionId: context.sessionId,
            accountId: context.accountId,
            toMicros: context.extension!.toMicros,
            attempt: context.extensions + 1,
          }),
          onDone: [
            {
              guard: { type: 'outcomeIs', params: ({ event }) => ({ outcome: event.output, kind: 'reserved' }) },
              target: 'incrementing',
              actions: 'extensionReserved',
            },
            {
              target: targets.declined,
              actions: { type: 'extensionDeclined', params: ({ event }) => ({ reason: failureOf(event.output).detail }) },
            },
          ],
          onError: {
            target: targets.declined,
            actions: { type: 'extensionDeclined', params: ({ event }) => ({ reason: `internal error: ${String(event.error)}` }) },
          },
        },
      },
      incrementing: {
        invoke: {
          id: 'increment',
          src: 'incrementHold',
          input: ({ context }) => ({
            sessionId: context.sessionId,
            holdId: context.hold!.holdId,
            amountMicros: context.extension!.toMicros,
            attempt: context.extensions + 1,
            mayHoldMicros: context.extension!.unconfirmedMicros ?? null,
          }),
          onDone: [
            {
              guard: { type: 'outcomeIs', params: ({ event }) => ({ outcome: event.output, kind: 'raised' }) },
              target: targets.approved,
              actions: { type: 'extensionApproved', params: ({ event }) => event.output },
            },
            {
              guard: { type: 'outcomeIs', params: ({ event }) => ({ outcome: event.output, kind: 'declined' }) },
              target: targets.declined,
              actions: { type: 'extensionDeclined', params: ({ event }) => ({ reason: failureOf(event.output).detail }) },
            },
            {
              // No answer: the limit stays as it was, but the hold may have been raised (found by an
              // outside probe: its share of the outstanding limit was given back while the card
              // company held the raised amount, so other sessions were held beyond the limit).
              guard: { type: 'outcomeIs', params: ({ event }) => ({ outcome: event.output, kind: 'unanswered' }) },
              target: targets.declined,
              actions: 'extensionUnanswered',
            },
            {
              // Refused: the hold stays as it was, and so does the limit.
              target: targets.declined,
              actions: { type: 'extensionDeclined', params: () => ({ reason: 'card_network_unavailable' }) },
            },
          ],
          onError: {
            target: targets.declined,
            actions: { type: 'extensionDeclined', params: ({ event }) => ({ reason: `internal error: ${String(event.error)}` }) },
          },
        },
      },
    },
  });
}

/**
 * One customer session. Pure: the card company, the account's reservation and time all come in
 * as provided actors and event timestamps. Deadlines (cutoffAt, renewAt, graceUntil, retryAt)
 * are data in the context; the host schedules them and sends the event deadlineOf names, the
 * same way before and after a restore (xstate does not restore `after` timers).
 *
 * Calls that must end well (releasing an unanswered authorization, capturing, voiding) share
 * one pattern: `calling`, then `waiting` to retry with backoff when unanswered, or `blocked`
 * (tag `stuck`) for an operator when the card company refuses for good.
 */
export const sessionMachine = sessionSetup.createMachine({
  id: 'session',
  context: ({ input }) => ({
    ...input,
    hold: null,
    startedAt: null,
    cutoffAt: null,
    cutoffReason: null,
    resumes: [],
    uses: { usedUnits: 0, usedMicros: '0', reservedMicros: '0', open: {}, next: 1 },
    warnAt: null,
    warnedAt: null,
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
    blocked: null,
  }),
  initial: 'authorizing',
  states: {
    authorizing: {
      initial: 'requesting',
      states: {
        requesting: {
          tags: ['seat', 'opening'],
          on: {
            // An operator gives up on an authorization: whatever it placed is released.
            TERMINATE: {
              target: 'releasing',
              actions: { type: 'decline', params: ({ event }) => ({ at: event.at, reason: 'ops_terminated' }) },
            },
            // The client went away before it saw an answer: it must not be charged for it.
            ABANDON: {
              target: 'releasing',
              actions: { type: 'decline', params: ({ event }) => ({ at: event.at, reason: 'abandoned' }) },
            },
          },
          invoke: {
            id: 'authorize',
            src: 'authorizeHold',
            input: ({ context }) => authorizeInput(context, 0),
            onDone: [
              {
                guard: { type: 'outcomeIs', params: ({ event }) => ({ outcome: event.output, kind: 'held' }) },
                target: '#session.active',
                actions: { type: 'activate', params: ({ event }) => event.output },
              },
              {
                guard: { type: 'outcomeIs', params: ({ event }) => ({ outcome: event.output, kind: 'declined' }) },
                target: '#session.declined',
                actions: {
                  type: 'decline',
                  params: ({ event }) => ({ at: event.output.at, reason: failureOf(event.output).detail }),
                },
              },
              {
                // Refused as a request (not a decline): nothing can have been held.
                guard: { type: 'outcomeIs', params: ({ event }) => ({ outcome: event.output, kind: 'refused' }) },
                target: '#session.declined',
                actions: {
                  type: 'decline',
                  params: ({ event }) => ({ at: event.output.at, reason: 'card_refused', detail: failureOf(event.output).detail }),
                },
              },
              {
                // No answer: a hold may exist all the same (an answer lost after the commit).
                target: 'releasing',
                actions: {
                  type: 'decline',
                  params: ({ event }) => ({ at: event.output.at, reason: 'card_network_unavailable', detail: failureOf(event.output).detail }),
                },
              },
            ],
            onError: {
              target: 'releasing',
              actions: {
                type: 'decline',
                params: ({ context, event }) => ({ at: context.createdAt, reason: 'internal_error', detail: String(event.error) }),
              },
            },
          },
        },
        // Replays the authorization with its key (returning the hold if it was placed) and voids it.
        releasing: {
          initial: 'calling',
          states: {
            calling: {
              invoke: {
                id: 'release',
                src: 'releaseAuthorization',
                input: ({ context }) => authorizeInput(context, 0),
                onDone: [
                  {
                    guard: { type: 'outcomeIs', params: ({ event }) => ({ outcome: event.output, kind: 'done' }) },
                    target: '#session.declined',
                    actions: 'clearFailure',
                  },
                  {
                    guard: { type: 'outcomeIs', params: ({ event }) => ({ outcome: event.output, kind: 'refused' }) },
                    target: 'blocked',
                    actions: { type: 'noteBlocked', params: ({ event }) => ({ ...failureOf(event.output), operation: 'release' as const }) },
                  },
                  { target: 'waiting', actions: { type: 'noteRetry', params: ({ event }) => failureOf(event.output) } },
                ],
                onError: { target: 'waiting', actions: { type: 'noteRetry', params: ({ context, event }) => thrownFailure(context, event.error) } },
              },
            },
            waiting: waitingToRetry,
            blocked: {
              ...blockedOnOperator,
              // An operator who released the hold by hand closes the matter.
              on: { ...blockedOnOperator.on, VOID: { target: '#session.declined', actions: 'clearFailure' } },
            },
          },
        },
      },
    },
    active: {
      tags: ['seat', 'billable'],
      initial: 'running',
      on: {
        // A logoff (or a termination, or a client gone) that arrives after the cutoff instant, before
        // its timer fired, is a limit hit: ended at the cutoff, for the limit's reason.
        LOGOFF: [
          { guard: 'pastCutoff', target: 'over_limit' },
          { target: 'closing', actions: { type: 'endAt', params: ({ event }) => ({ at: event.at, reason: 'logoff' }) } },
        ],
        CUTOFF: { guard: 'pastCutoff', target: 'over_limit' },
        TERMINATE: [
          { guard: 'pastCutoff', target: 'over_limit' },
          { target: 'closing', actions: { type: 'endAt', params: ({ event }) => ({ at: event.at, reason: 'ops_terminated' }) } },
        ],
        ABANDON: [
          { guard: 'pastCutoff', target: 'over_limit' },
          { target: 'closing', actions: { type: 'endAt', params: ({ event }) => ({ at: event.at, reason: 'abandoned' }) } },
        ],
        // The service's upstream has taken no connection since `since`: the session ends there, and
        // is charged for no time after it (never before it started).
        SERVICE_LOST: [
          { guard: 'lostPastCutoff', target: 'over_limit' },
          { target: 'closing', actions: { type: 'endAt', params: ({ context, event }) => ({ at: lostAt(context, event), reason: 'service_unreachable' }) } },
        ],
        WARN: { guard: 'warningDue', actions: 'warned' },
        // Uses priced per use: refused (not taken) when they would pass the limit.
        RESERVE_USE: { guard: 'useFits', actions: 'reserveUse' },
        COMMIT_USE: { guard: 'commitWithinReservation', actions: ['commitUse', 'cutIfLimitReached'] },
        RELEASE_USE: { guard: 'reservationOpen', actions: 'releaseUse' },
        USE: { guard: 'useFits', actions: ['useNow', 'cutIfLimitReached'] },
      },
      states: {
        running: {
          tags: ['resting', 'extendable'],
          on: {
            EXTEND: { guard: 'raisesLimit', target: 'extending', actions: 'requestExtension' },
            RENEW_HOLD: 'renewing',
          },
        },
        extending: extending({ approved: '#session.active.running', declined: '#session.active.running' }),
        // A new hold before the old one lapses; the old one is voided now, or before settling.
        renewing: {
          invoke: {
            id: 'renew',
            src: 'renewHold',
            input: ({ context }) => ({
              ...authorizeInput(context, context.reauthorizations + 1),
              previousHoldId: context.hold!.holdId,
              lastTry: !renewsAgain(context),
            }),
            onDone: [
              {
                guard: { type: 'outcomeIs', params: ({ event }) => ({ outcome: event.output, kind: 'held' }) },
                target: 'running',
                actions: { type: 'renewed', params: ({ event }) => event.output },
              },
              // Not renewed, told after the cutoff's instant (its timer late): the limit ends it, not the renewal.
              { guard: { type: 'toldPastCutoff', params: ({ event }) => ({ at: event.output.at }) }, target: '#session.over_limit' },
              {
                guard: { type: 'renewalAgain', params: ({ event }) => ({ retryable: event.output.kind === 'unanswered' }) },
                target: 'running',
                actions: { type: 'renewLater', params: ({ event }) => failureOf(event.output) },
              },
              {
                // Declined (or refused, or unanswered at its last try): the session closes at what it
                // has accrued, on the hold it still has.
                target: '#session.closing',
                actions: [
                  { type: 'renewalRefused', params: ({ event }) => ({ reason: failureOf(event.output).detail }) },
                  { type: 'endAt', params: ({ event }) => ({ at: event.output.at, reason: 'reauthorization_declined' }) },
                ],
              },
            ],
            onError: [
              {
                guard: { type: 'renewalAgain', params: { retryable: true } },
                target: 'running',
                actions: { type: 'renewLater', params: ({ context, event }) => thrownFailure(context, event.error) },
              },
              {
                target: '#session.closing',
                actions: [
                  { type: 'renewalRefused', params: ({ context, event }) => ({ reason: thrownFailure(context, event.error).detail }) },
                  { type: 'endAt', params: ({ context, event }) => ({ at: thrownFailure(context, event.error).at, reason: 'reauthorization_declined' }) },
                ],
              },
            ],
          },
        },
      },
    },
    over_limit: {
      entry: 'endAtCutoff',
      initial: 'deciding',
      states: {
        deciding: {
          always: [
            { guard: 'usesReserved', target: 'awaiting_uses' },
            { guard: 'hasGrace', target: 'grace', actions: 'startGrace' },
            { target: '#session.closing' },
          ],
        },
        // Time has stopped at the limit, but the service was granted uses it may be delivering:
        // their commits are charged (within what they reserved, so never past the limit) until
        // none is open or USES_WINDOW_MS has passed, when the rest go back.
        awaiting_uses: {
          tags: ['resting'],
          always: { guard: 'noUsesReserved', target: 'deciding' },
          on: {
            COMMIT_USE: { guard: 'commitWithinReservation', actions: ['commitUseAfterEnd', 'awaitingUsesSettled'] },
            RELEASE_USE: { guard: 'reservationOpen', actions: ['releaseUseAfterEnd', 'awaitingUsesSettled'] },
            USES_OVER: { target: 'deciding', actions: ['releaseOpenUses', 'awaitingUsesSettled'] },
            LOGOFF: { target: '#session.closing', actions: 'releaseOpenUses' },
            TERMINATE: { target: '#session.closing', actions: 'releaseOpenUses' },
            ABANDON: { target: '#session.closing', actions: 'releaseOpenUses' },
            SERVICE_LOST: [
              {
                guard: 'lostBeforeEnd',
                target: '#session.closing',
                actions: ['releaseOpenUses', { type: 'endAt', params: ({ context, event }) => ({ at: lostAt(context, event), reason: 'service_unreachable' }) }],
              },
              { target: '#session.closing', actions: 'releaseOpenUses' },
            ],
          },
        },
        grace: {
          tags: ['resting', 'extendable'],
          on: {
            EXTEND: { guard: 'raisesLimit', target: 'extending', actions: 'requestExtension' },
            GRACE_OVER: '#session.closing',
            LOGOFF: '#session.closing',
            TERMINATE: '#session.closing',
            ABANDON: '#session.closing',
            // Lost before the limit was reached (told later, once sure): it ends where it was lost.
            SERVICE_LOST: [
              {
                guard: 'lostBeforeEnd',
                target: '#session.closing',
                actions: { type: 'endAt', params: ({ context, event }) => ({ at: lostAt(context, event), reason: 'service_unreachable' }) },
              },
              '#session.closing',
            ],
          },
        },
        // Approved: the session resumes; the time it spent interrupted is not billed.
        extending: extending({ approved: '#session.active.running', declined: '#session.over_limit.grace' }),
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
          initial: 'calling',
          states: {
            calling: {
              invoke: {
                id: 'capture',
                src: 'captureCharge',
                input: ({ context }) => ({
                  sessionId: context.sessionId,
                  holdId: context.hold!.holdId,
                  amountMicros: context.chargeMicros!,
                  staleHoldIds: context.staleHoldIds,
                }),
                onDone: [
                  {
                    guard: { type: 'outcomeIs', params: ({ event }) => ({ outcome: event.output, kind: 'captured' }) },
                    target: '#session.settled',
                    actions: [{ type: 'recordSlip', params: ({ event }) => event.output }, 'clearFailure'],
                  },
                  {
                    guard: { type: 'outcomeIs', params: ({ event }) => ({ outcome: event.output, kind: 'refused' }) },
                    target: 'blocked',
                    actions: { type: 'noteBlocked', params: ({ event }) => ({ ...failureOf(event.output), operation: 'capture' as const }) },
                  },
                  { target: 'waiting', actions: { type: 'noteRetry', params: ({ event }) => failureOf(event.output) } },
                ],
                onError: { target: 'waiting', actions: { type: 'noteRetry', params: ({ context, event }) => thrownFailure(context, event.error) } },
              },
            },
            // An operator forgives a charge that is not being captured: the hold is voided instead,
            // and the charge is 0 once it is. Not while a capture is on its way: it may go through
            // after the void was sent (found by an outside probe: the session was left stuck at
            // 0.00 with the card charged and its share of the limit never returned). A capture
            // that was unanswered may have been made too: its hold cannot be voided then, and a
            // RETRY of the refused void replays the capture by its key, which finds it.
            waiting: { ...waitingToRetry, on: { ...waitingToRetry.on, VOID: forgiven } },
            blocked: { ...blockedOnOperator, on: { ...blockedOnOperator.on, VOID: forgiven } },
          },
        },
        voiding: {
          initial: 'calling',
          states: {
            calling: {
              invoke: {
                id: 'void',
                src: 'voidHold',
                input: ({ context }) => ({ sessionId: context.sessionId, holdId: context.hold!.holdId, staleHoldIds: context.staleHoldIds }),
                onDone: [
                  {
                    guard: { type: 'outcomeIs', params: ({ event }) => ({ outcome: event.output, kind: 'done' }) },
                    target: '#session.settled',
                    actions: ['holdsVoided', 'chargeForgiven', 'clearFailure'],
                  },
                  {
                    guard: { type: 'outcomeIs', params: ({ event }) => ({ outcome: event.output, kind: 'refused' }) },
                    target: 'blocked',
                    actions: { type: 'noteBlocked', params: ({ event }) => ({ ...failureOf(event.output), operation: 'void' as const }) },
                  },
                  { target: 'waiting', actions: { type: 'noteRetry', params: ({ event }) => failureOf(event.output) } },
                ],
                onError: { target: 'waiting', actions: { type: 'noteRetry', params: ({ context, event }) => thrownFailure(context, event.error) } },
              },
            },
            waiting: waitingToRetry,
            // A void refused for good while a charge is owed (an operator's forgiveness): the hold
            // is no longer open, most likely because an unanswered capture was made after all. A
            // RETRY captures again with the same key, which replays that capture if it was made.
            blocked: {
              ...blockedOnOperator,
              on: {
                RETRY: [
                  { guard: not('nothingToCharge'), target: '#session.closing.capturing.calling', actions: 'clearFailure' },
                  { target: 'calling', actions: 'clearFailure' },
                ],
              },
            },
          },
        },
      },
    },
    settled: { type: 'final', tags: ['resting'] },
    declined: { type: 'final', tags: ['resting'] },
  },
});

/** The machine's resolution of each state value met so far (a few dozen at most): nodes, tags, value. */
const resolvedByPath = new Map<string, SnapshotFrom<typeof sessionMachine>>();

/**
 * A stored snapshot (plain JSON, already migrated) as the machine sees it: with its tags and `can`.
 * What xstate resolves from a state value does not depend on the context, so a restore of a
 * million rows resolves each path once and gives every row its own context on a copy.
 */
export function resolveSnapshot(stored: { value: unknown; context: SessionContext }): SnapshotFrom<typeof sessionMachine> {
  const value = stored.value as SnapshotFrom<typeof sessionMachine>['value'];
  // The value's JSON is its state path (one child per level): a small string, and no import of session.deadline (which imports this file).
  const path = JSON.stringify(value);
  const resolved = resolvedByPath.get(path);
  if (resolved) return { ...resolved, context: stored.context };
  const fresh = sessionMachine.resolveState({ value, context: stored.context });
  // A final state's snapshot is not shared: xstate works out its status (and any output) from the context.
  if (fresh.status === 'active') resolvedByPath.set(path, fresh);
  return fresh;
}
