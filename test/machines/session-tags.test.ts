import { createActor, fromPromise } from 'xstate';
import { describe, expect, it } from 'vitest';
import { deadlineOf, sessionMachine, statePathOf, type AuthorizeInput, type CallOutcome, type SessionTag } from '../../machines/session/index.js';
import { flatTariff } from '../../src/billing/tariff.js';
import { ManualClock } from '../../src/clock.js';
import { hold, input, ScriptedCardCompany, START, startSession } from './session-harness.js';
import { REACHABLE_STATES } from './session-states.js';

/**
 * What hosts ask of a state (DESIGN rule 12): the tags and the next deadline of every reachable
 * state; and what each call leaves in the context for operators once it has come back.
 */
const TAGS: Record<string, SessionTag[]> = {
  'authorizing.requesting': ['opening', 'seat'],
  'authorizing.releasing.calling': [],
  'authorizing.releasing.waiting': ['resting'],
  'authorizing.releasing.blocked': ['resting', 'stuck'],
  'active.running': ['billable', 'extendable', 'resting', 'seat'],
  'active.extending.reserving': ['billable', 'extending', 'seat'],
  'active.extending.incrementing': ['billable', 'extending', 'seat'],
  'active.renewing': ['billable', 'seat'],
  'over_limit.grace': ['extendable', 'resting'],
  'over_limit.awaiting_uses': ['resting'],
  'over_limit.extending.reserving': ['extending'],
  'over_limit.extending.incrementing': ['extending'],
  'closing.capturing.calling': [],
  'closing.capturing.waiting': ['resting'],
  'closing.capturing.blocked': ['resting', 'stuck'],
  'closing.voiding.calling': [],
  'closing.voiding.waiting': ['resting'],
  'closing.voiding.blocked': ['resting', 'stuck'],
  settled: ['resting'],
  declined: ['resting'],
};

/** Each state's next deadline (after START), as the host arms it: only waits and limits have one. */
const DEADLINES: Record<string, { afterMs: number; event: string } | null> = {
  'authorizing.requesting': null,
  'authorizing.releasing.calling': null,
  'authorizing.releasing.waiting': { afterMs: 1000, event: 'RETRY' },
  'authorizing.releasing.blocked': null,
  'active.running': { afterMs: 500_000, event: 'CUTOFF' },
  'active.extending.reserving': { afterMs: 500_000, event: 'CUTOFF' },
  'active.extending.incrementing': { afterMs: 500_000, event: 'CUTOFF' },
  // The renewal that was due is in flight: the next deadline is the cutoff, 115 days in.
  'active.renewing': { afterMs: 10_000_000_000, event: 'CUTOFF' },
  'over_limit.grace': { afterMs: 560_000, event: 'GRACE_OVER' },
  'over_limit.awaiting_uses': { afterMs: 460_000, event: 'USES_OVER' },
  'over_limit.extending.reserving': null,
  'over_limit.extending.incrementing': null,
  'closing.capturing.calling': null,
  'closing.capturing.waiting': { afterMs: 43_000, event: 'RETRY' },
  'closing.capturing.blocked': null,
  'closing.voiding.calling': null,
  'closing.voiding.waiting': { afterMs: 1_500, event: 'RETRY' },
  'closing.voiding.blocked': null,
  settled: null,
  declined: null,
};

function scripted(configure: (card: ScriptedCardCompany) => void = () => {}) {
  const clock = new ManualClock(START);
  const card = new ScriptedCardCompany(clock);
  configure(card);
  return { clock, card };
}

describe('the tags and the next deadline of each state', () => {
  it.each(REACHABLE_STATES.map((s) => [s.path, s] as const))('%s says what hosts need to know', async (path, { reach }) => {
    const session = await reach();
    expect(statePathOf(session.actor.getSnapshot().value)).toBe(path);
    expect([...session.actor.getSnapshot().tags].sort()).toEqual(TAGS[path]);
    const deadline = deadlineOf(session.actor.getSnapshot());
    expect(deadline && { afterMs: deadline.at - START, event: deadline.event }).toEqual(DEADLINES[path]);
  });
});

describe('what a call that came back leaves', () => {
  it('tells the host that forgot to provide a call which one', async () => {
    const actor = createActor(sessionMachine, { input: input() }).start();
    await new Promise((resolve) => setTimeout(resolve, 0));
    // The authorization failed first (internal_error); then its release, which waits to be retried.
    expect(actor.getSnapshot().value).toEqual({ authorizing: { releasing: 'waiting' } });
    expect(actor.getSnapshot().context).toMatchObject({
      declineReason: 'internal_error',
      lastError: 'internal error: Error: releaseAuthorization must be provided by the supervisor',
    });
    actor.stop();
    const releasing = sessionMachine.provide({ actors: { releaseAuthorization: fromPromise<CallOutcome, AuthorizeInput>(() => new Promise(() => {})) } });
    const first = createActor(releasing, { input: input() }).start();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(first.getSnapshot().context.lastError).toBe('Error: authorizeHold must be provided by the supervisor');
    first.stop();
  });

  it('clears the failure of a release once it is done', async () => {
    const session = startSession(scripted((c) => ((c.authorize = { kind: 'unanswered', detail: 'timeout', at: 0 }), (c.releases = [{ kind: 'unanswered', detail: '503', at: 0 }]))));
    await session.settle();
    expect(session.actor.getSnapshot().context).toMatchObject({ lastError: '503', retryAt: START + 1000 });
    await session.advance(1000);
    expect(session.actor.getSnapshot().context).toMatchObject({ lastError: null, retryAt: null, blocked: null, declineReason: 'card_network_unavailable' });
  });

  it('clears the failure of a capture once it is captured', async () => {
    const session = startSession(scripted((c) => (c.captures = [{ kind: 'unanswered', detail: '503', at: 0 }])));
    await session.settle();
    session.actor.send({ type: 'LOGOFF', at: START + 10_000 });
    await session.settle();
    await session.advance(11_000);
    expect(session.actor.getSnapshot().context).toMatchObject({ lastError: null, retryAt: null, closeAttempts: 1, chargeSlip: { amountMicros: '100000' } });
  });

  it('voids a replaced hold with the last one when nothing is charged, and waits for an operator if the void is refused', async () => {
    const free = { maxChargeMicros: '5000000', tariff: flatTariff(0n) };
    const session = startSession({
      ...scripted((c) => {
        c.renewals = [{ kind: 'held', hold: { ...hold(), holdId: 'hold_2', authorizedAt: START + 6 * 86_400_000, expiresAt: START + 13 * 86_400_000 }, staleHoldId: 'hold_1', at: 0 }];
        c.voids = [{ kind: 'refused', detail: '409 hold_not_open', at: 0 }];
      }),
      input: free,
    });
    await session.settle();
    await session.advance(6 * 86_400_000);
    session.actor.send({ type: 'LOGOFF', at: session.clock.now() });
    await session.settle();
    expect(session.card.calls.at(-1)).toBe('void hold_1 hold_2');
    expect(session.actor.getSnapshot().context.blocked).toEqual({ operation: 'void', detail: '409 hold_not_open', at: START + 6 * 86_400_000 });
    session.actor.send({ type: 'RETRY', at: session.clock.now() });
    await session.settle();
    expect(statePathOf(session.actor.getSnapshot().value)).toBe('settled');
    expect(session.actor.getSnapshot().context).toMatchObject({ staleHoldIds: [], blocked: null, lastError: null, chargeMicros: '0', chargeSlip: null });
  });

  it('clears a renewal’s failure once a new hold is granted', async () => {
    const session = startSession({ ...scripted((c) => (c.renewals = [{ kind: 'unanswered', detail: 'timeout', at: 0 }])), input: { maxChargeMicros: '100000000', tariff: flatTariff(600n) } });
    await session.settle();
    await session.advance(6 * 86_400_000);
    expect(session.actor.getSnapshot().context.lastError).toBe('timeout');
    await session.advance(1000);
    expect(session.actor.getSnapshot().context).toMatchObject({ lastError: null, reauthorizations: 1, hold: { holdId: 'hold_2' } });
  });

  it('says where an extension stands while it is asked for, and forgets the end once it resumes a session', async () => {
    const session = startSession({ ...scripted((c) => (c.reservations = ['pending'])), input: { graceMs: 60_000 } });
    await session.settle();
    await session.advance(500_000);
    session.actor.send({ type: 'EXTEND', at: session.clock.now(), maxChargeMicros: '8000000' });
    expect(session.actor.getSnapshot().context.extension).toEqual({ fromMicros: '5000000', toMicros: '8000000', requestedAt: START + 500_000, outcome: 'reserving', reason: null });

    const next = startSession({ ...scripted((c) => (c.increments = ['pending'])), input: { graceMs: 60_000 } });
    await next.settle();
    await next.advance(500_000);
    next.actor.send({ type: 'EXTEND', at: next.clock.now(), maxChargeMicros: '8000000' });
    await next.settle();
    expect(next.actor.getSnapshot().context.extension?.outcome).toBe('pending');

    const resumed = startSession({ ...scripted(), input: { graceMs: 60_000 } });
    await resumed.settle();
    await resumed.advance(500_000);
    resumed.actor.send({ type: 'EXTEND', at: resumed.clock.now(), maxChargeMicros: '8000000' });
    await resumed.settle();
    expect(resumed.actor.getSnapshot().context).toMatchObject({ endedAt: null, endReason: null, chargeMicros: null, graceUntil: null, extension: { outcome: 'approved' } });
  });
});
