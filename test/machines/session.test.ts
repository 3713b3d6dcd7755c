import { describe, expect, it } from 'vitest';
import { deadlineOf, resolveSnapshot, sessionMachine, stateNameOf, statePathOf } from '../../machines/session/index.js';
import { expectOutcome } from './session-drive.js';
import { REACHABLE_STATES } from './session-states.js';
import { ManualClock } from '../../src/clock.js';
import { hold, ScriptedCardCompany, START, startSession } from './session-harness.js';

describe('session machine', () => {
  it('goes active on authorization with the cutoff at the exact instant the charge limit is reached', async () => {
    const session = startSession();
    await session.settle();
    const { context } = session.actor.getSnapshot();
    expect(stateNameOf(session.actor.getSnapshot())).toBe('active');
    // 5.00 at 0.60 a minute: 500 s.
    expect(context.cutoffAt).toBe(START + 500_000);
    expect(context.cutoffReason).toBe('charge_limit');
    expect(deadlineOf(session.actor.getSnapshot())).toEqual({ at: START + 500_000, event: 'CUTOFF' });
  });

  it('charges the time used, to the whole second, on logoff', async () => {
    const session = startSession();
    await session.settle();
    await session.advance(61_900);
    session.actor.send({ type: 'LOGOFF', at: session.clock.now() });
    await session.settle();
    const { context } = session.actor.getSnapshot();
    // 61 whole seconds at 0.01 a second.
    expect(context.chargeMicros).toBe('610000');
    expect(context.endReason).toBe('logoff');
    expect(session.card.calls).toEqual(['authorize', 'capture 610000']);
    expect(session.actor.getSnapshot().status).toBe('done');
    expect(stateNameOf(session.actor.getSnapshot())).toBe('settled');
  });

  it('interrupts the service at the charge limit and charges exactly the limit', async () => {
    const session = startSession();
    await session.settle();
    await session.advance(499_999);
    expect(stateNameOf(session.actor.getSnapshot())).toBe('active');
    await session.advance(1);
    await session.settle();
    const { context } = session.actor.getSnapshot();
    expect(stateNameOf(session.actor.getSnapshot())).toBe('settled');
    expect(context).toMatchObject({ endReason: 'charge_limit', chargeMicros: '5000000', endedAt: START + 500_000 });
    expect(session.card.calls).toEqual(['authorize', 'capture 5000000']);
  });

  it('ends at the time limit when it comes before the charge limit', async () => {
    const session = startSession({ input: { maxMs: 90_000 } });
    await session.settle();
    expect(session.actor.getSnapshot().context.cutoffReason).toBe('time_limit');
    await session.advance(90_000);
    await session.settle();
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'time_limit', chargeMicros: '900000' });
  });

  it('treats a logoff that arrives after the cutoff as the limit it is', async () => {
    const session = startSession();
    await session.settle();
    session.clock.advance(600_000);
    session.actor.send({ type: 'LOGOFF', at: session.clock.now() });
    await session.settle();
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'charge_limit', chargeMicros: '5000000' });
  });

  it('ends declined with the reason when the card company declines', async () => {
    const clock = new ManualClock(START);
    const card = new ScriptedCardCompany(clock);
    card.authorize = { kind: 'declined', reason: 'insufficient_funds', at: START };
    const session = startSession({ clock, card });
    await session.settle();
    expect(stateNameOf(session.actor.getSnapshot())).toBe('declined');
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'declined', declineReason: 'insufficient_funds' });
    expect(session.actor.getSnapshot().status).toBe('done');
  });

  it('retries a failed capture with growing backoff and never drops the session', async () => {
    const clock = new ManualClock(START);
    const card = new ScriptedCardCompany(clock);
    card.captures = [
      { kind: 'unanswered', detail: '503', at: 0 },
      { kind: 'unanswered', detail: '503', at: 0 },
    ];
    const session = startSession({ clock, card });
    await session.settle();
    await session.advance(10_000);
    session.actor.send({ type: 'LOGOFF', at: clock.now() });
    await session.settle();
    expect(session.actor.getSnapshot().value).toEqual({ closing: { capturing: 'waiting' } });
    expect(session.actor.getSnapshot().context).toMatchObject({ closeAttempts: 1, retryAt: clock.now() + 1000 });
    await session.advance(1000);
    await session.settle();
    // Second failure: twice the wait.
    expect(session.actor.getSnapshot().context).toMatchObject({ closeAttempts: 2, retryAt: clock.now() + 2000 });
    await session.advance(1999);
    expect(session.actor.getSnapshot().value).toEqual({ closing: { capturing: 'waiting' } });
    await session.advance(1);
    await session.settle();
    expect(stateNameOf(session.actor.getSnapshot())).toBe('settled');
    expect(session.card.calls.filter((c) => c.startsWith('capture'))).toHaveLength(3);
    expect(session.actor.getSnapshot().context.chargeSlip?.amountMicros).toBe('100000');
  });
});

describe('session snapshots', () => {
  it.each(REACHABLE_STATES.map((state) => [state.path, state] as const))(
    'round-trips %s through JSON, re-arms its deadline from the stored instant, and ends as its state implies',
    async (path, { reach, outcome }) => {
      const live = await reach();
      expect(statePathOf(live.actor.getSnapshot().value)).toBe(path);
      const stored = live.persisted();
      live.actor.stop();
      const clock = new ManualClock(live.clock.now());
      const restored = startSession({ snapshot: stored, clock, card: new ScriptedCardCompany(clock) });
      expect(restored.actor.getSnapshot().value).toEqual(stored.value);
      expect(restored.actor.getSnapshot().context).toEqual(stored.context);
      expect(deadlineOf(restored.actor.getSnapshot())).toEqual(deadlineOf(resolveSnapshot(stored)));
      await expectOutcome(restored, outcome, path);
    },
  );

  it.each(REACHABLE_STATES.map((state) => [state.path, state] as const))(
    'resolves a stored %s as xstate does, with its own context, after another row of that state was resolved',
    async (_path, { reach }) => {
      const live = await reach();
      const stored = live.persisted();
      live.actor.stop();
      // Another row in the same state, with a different context, is resolved first.
      const other = { ...stored, context: { ...stored.context, sessionId: 'a0000000-0000-4000-8000-0000000000ff', cutoffAt: 1, retryAt: 2 } };
      resolveSnapshot(other);
      const resolved = resolveSnapshot(stored);
      const expected = sessionMachine.resolveState({ value: stored.value as never, context: stored.context });
      expect(resolved.context).toBe(stored.context);
      expect(resolved.value).toEqual(expected.value);
      expect(resolved.status).toBe(expected.status);
      expect([...resolved.tags].sort()).toEqual([...expected.tags].sort());
      expect(deadlineOf(resolved)).toEqual(deadlineOf(expected));
      const at = live.clock.now();
      const probes = [
        { type: 'LOGOFF', at },
        { type: 'RETRY', at: stored.context.retryAt ?? at },
        { type: 'CUTOFF', at },
        { type: 'EXTEND', at, maxChargeMicros: '900000000' },
      ] as const;
      for (const event of probes) expect(resolved.can(event as never), event.type).toBe(expected.can(event as never));
      expect(deadlineOf(resolveSnapshot(other))).toEqual(deadlineOf(sessionMachine.resolveState({ value: other.value as never, context: other.context })));
    },
  );

  it('closes a restored session whose cutoff passed while it was down at its limit, not more', async () => {
    const live = startSession();
    await live.settle();
    const stored = live.persisted();
    live.actor.stop();
    const clock = new ManualClock(START + 3_600_000);
    const restored = startSession({ snapshot: stored, clock });
    // Past deadlines fire at once.
    restored.scheduler.runDue();
    await restored.settle();
    expect(restored.actor.getSnapshot().context).toMatchObject({
      endReason: 'charge_limit',
      chargeMicros: '5000000',
      endedAt: START + 500_000,
    });
    expect(stateNameOf(restored.actor.getSnapshot())).toBe('settled');
  });

  it('re-drives the authorization of a session restored while authorizing', async () => {
    const clock = new ManualClock(START);
    const pending = new ScriptedCardCompany(clock);
    pending.authorize = 'pending';
    const first = startSession({ clock, card: pending });
    const stored = first.persisted();
    first.actor.stop();
    const card = new ScriptedCardCompany(clock);
    card.authorize = { kind: 'held', hold: hold(), at: START };
    const restored = startSession({ snapshot: stored, clock, card });
    await restored.settle();
    expect(card.calls).toEqual(['authorize']);
    expect(stateNameOf(restored.actor.getSnapshot())).toBe('active');
  });
});
