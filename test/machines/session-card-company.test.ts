import { describe, expect, it } from 'vitest';
import { deadlineOf, stateNameOf } from '../../machines/session/index.js';
import { flatTariff } from '../../src/billing/tariff.js';
import { ManualClock } from '../../src/clock.js';
import { hold, ScriptedCardCompany, START, startSession } from './session-harness.js';

const DAY = 86_400_000;

function scripted() {
  const clock = new ManualClock(START);
  return { clock, card: new ScriptedCardCompany(clock) };
}

describe('an authorization with no answer', () => {
  it('releases whatever hold may exist, then ends declined, giving its seats back at once', async () => {
    const { clock, card } = scripted();
    card.authorize = { kind: 'unanswered', detail: 'timeout', at: START };
    card.releases = [{ kind: 'unanswered', detail: 'still down', at: 0 }];
    const session = startSession({ clock, card });
    await session.settle();
    const waiting = session.actor.getSnapshot();
    expect(waiting.value).toEqual({ authorizing: { releasing: 'waiting' } });
    expect(waiting.hasTag('seat')).toBe(false);
    expect(waiting.context.declineReason).toBe('card_network_unavailable');
    expect(deadlineOf(waiting)).toEqual({ at: START + 1000, event: 'RETRY' });
    await session.advance(1000);
    await session.settle();
    expect(stateNameOf(session.actor.getSnapshot())).toBe('declined');
    expect(card.calls).toEqual(['authorize', 'release', 'release']);
  });
});

describe('raising the limit', () => {
  it('moves the limit and the cutoff when the card company approves', async () => {
    const { clock, card } = scripted();
    const session = startSession({ clock, card });
    await session.settle();
    await session.advance(100_000);
    session.actor.send({ type: 'EXTEND', at: clock.now(), maxChargeMicros: '8000000' });
    await session.settle();
    const { context, value } = session.actor.getSnapshot();
    expect(value).toEqual({ active: 'running' });
    // 8.00 at 0.60 a minute lasts 800 s from the start.
    expect(context).toMatchObject({ maxChargeMicros: '8000000', cutoffAt: START + 800_000, extensions: 1 });
    expect(context.extension).toMatchObject({ outcome: 'approved', fromMicros: '5000000', toMicros: '8000000' });
    expect(context.hold?.amountMicros).toBe('8000000');
    expect(card.calls).toContain('increment 8000000');
  });

  it('changes nothing when the card company declines', async () => {
    const { clock, card } = scripted();
    card.increments = [{ kind: 'declined', reason: 'insufficient_funds', at: 0 }];
    const session = startSession({ clock, card });
    await session.settle();
    session.actor.send({ type: 'EXTEND', at: clock.now(), maxChargeMicros: '8000000' });
    await session.settle();
    const { context } = session.actor.getSnapshot();
    expect(context).toMatchObject({ maxChargeMicros: '5000000', cutoffAt: START + 500_000 });
    expect(context.extension).toMatchObject({ outcome: 'declined', reason: 'insufficient_funds' });
  });

  it('ignores a request that does not raise the limit', async () => {
    const session = startSession();
    await session.settle();
    session.actor.send({ type: 'EXTEND', at: session.clock.now(), maxChargeMicros: '5000000' });
    await session.settle();
    expect(session.card.calls).not.toContain('increment 5000000');
    expect(session.actor.getSnapshot().value).toEqual({ active: 'running' });
  });
});

describe('grace over the limit', () => {
  it('resumes an extended session without billing the time it was interrupted', async () => {
    const { clock, card } = scripted();
    const session = startSession({ clock, card, input: { graceMs: 60_000 } });
    await session.settle();
    await session.advance(500_000);
    await session.settle();
    expect(session.actor.getSnapshot().value).toEqual({ over_limit: 'grace' });
    expect(deadlineOf(session.actor.getSnapshot())).toEqual({ at: START + 560_000, event: 'GRACE_OVER' });
    await session.advance(20_000);
    session.actor.send({ type: 'EXTEND', at: clock.now(), maxChargeMicros: '6000000' });
    await session.settle();
    const resumed = session.actor.getSnapshot();
    expect(stateNameOf(resumed)).toBe('active');
    // 20 s paused; 6.00 lasts 600 s of billable time.
    // Billable time stopped at 500 s and went on 20 s later.
    expect(resumed.context).toMatchObject({ resumes: [{ billableAtMs: 500_000, wallAtMs: START + 520_000 }], cutoffAt: START + 620_000, chargeMicros: null });
    await session.advance(30_000);
    session.actor.send({ type: 'LOGOFF', at: clock.now() });
    await session.settle();
    // 530 s billed at 0.01 a second.
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'logoff', chargeMicros: '5300000' });
  });

  it('closes at the limit when the grace runs out', async () => {
    const session = startSession({ input: { graceMs: 60_000 } });
    await session.settle();
    await session.advance(500_000);
    await session.settle();
    await session.advance(60_000);
    await session.settle();
    expect(stateNameOf(session.actor.getSnapshot())).toBe('settled');
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'charge_limit', chargeMicros: '5000000' });
  });
});

describe('holds that outlive their validity', () => {
  // 100.00 at 0.0006 a minute lasts about 115 days: long enough to outlive a 7-day hold.
  const longSession = { maxChargeMicros: '100000000', tariff: flatTariff(600n) };

  it('renews the hold before it lapses and voids the old one', async () => {
    const { clock, card } = scripted();
    const session = startSession({ clock, card, input: longSession });
    await session.settle();
    const firstRenewal = deadlineOf(session.actor.getSnapshot());
    // A 7-day hold is renewed a day before it lapses.
    expect(firstRenewal).toEqual({ at: START + 6 * DAY, event: 'RENEW_HOLD' });
    await session.advance(6 * DAY);
    await session.settle();
    const { context } = session.actor.getSnapshot();
    expect(context.hold?.holdId).toBe('hold_2');
    expect(context).toMatchObject({ reauthorizations: 1, staleHoldIds: [] });
    expect(card.calls).toEqual(['authorize', 'renew 1']);
  });

  it('ends at its time limit, renewing nothing, when the limit falls as the hold is due for renewal', async () => {
    const { clock, card } = scripted();
    const session = startSession({ clock, card, input: { ...longSession, maxMs: 6 * DAY } });
    await session.settle();
    expect(deadlineOf(session.actor.getSnapshot())).toEqual({ at: START + 6 * DAY, event: 'CUTOFF' });
    await session.advance(6 * DAY);
    await session.settle();
    // 518,400 s at 0.00001 a second is 5.184, charged as 5.18.
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'time_limit', endedAt: START + 6 * DAY, chargeMicros: '5180000' });
    expect(card.calls).toEqual(['authorize', 'capture 5180000']);
  });

  it('voids a replaced hold it could not void at once before settling', async () => {
    const { clock, card } = scripted();
    card.renewals = [
      {
        kind: 'held',
        hold: { ...hold(), holdId: 'hold_2', authorizedAt: START + 6 * DAY, expiresAt: START + 13 * DAY },
        staleHoldId: 'hold_1',
        at: 0,
      },
    ];
    const session = startSession({ clock, card, input: longSession });
    await session.settle();
    await session.advance(6 * DAY);
    await session.settle();
    expect(session.actor.getSnapshot().context.staleHoldIds).toEqual(['hold_1']);
    session.actor.send({ type: 'LOGOFF', at: clock.now() });
    await session.settle();
    expect(card.calls.at(-1)).toMatch(/^capture \d+ voiding hold_1$/);
    expect(session.actor.getSnapshot().context.staleHoldIds).toEqual([]);
  });

  it('closes at what it has accrued when the new hold is declined', async () => {
    const { clock, card } = scripted();
    card.renewals = [{ kind: 'declined', reason: 'insufficient_funds', at: 0 }];
    const session = startSession({ clock, card, input: longSession });
    await session.settle();
    await session.advance(6 * DAY);
    await session.settle();
    const { context } = session.actor.getSnapshot();
    expect(stateNameOf(session.actor.getSnapshot())).toBe('settled');
    // 518,400 s at 0.00001 a second is 5.184, charged as 5.18.
    expect(context).toMatchObject({ endReason: 'reauthorization_declined', chargeMicros: '5180000', endedAt: START + 6 * DAY });
    expect(context.chargeSlip?.amountMicros).toBe('5180000');
  });

  it('tries again soon when the card company does not answer, while the hold still holds', async () => {
    const { clock, card } = scripted();
    card.renewals = [{ kind: 'unanswered', detail: 'timeout', at: 0 }];
    const session = startSession({ clock, card, input: longSession });
    await session.settle();
    await session.advance(6 * DAY);
    await session.settle();
    expect(session.actor.getSnapshot().value).toEqual({ active: 'running' });
    expect(deadlineOf(session.actor.getSnapshot())).toEqual({ at: START + 6 * DAY + 1000, event: 'RENEW_HOLD' });
    await session.advance(1000);
    await session.settle();
    expect(session.actor.getSnapshot().context.hold?.holdId).toBe('hold_2');
  });
});

describe('uses priced per use', () => {
  // 0.60 a minute and 0.05 a use, on a 5.00 limit.
  const perUse = { tariff: { ...flatTariff(600_000n), perUse: { unit: 'unit' as const, priceMicros: '50000' } } };

  it('reserves, commits and releases uses; the cutoff comes nearer by what they hold', async () => {
    const session = startSession({ input: perUse });
    await session.settle();
    expect(session.actor.getSnapshot().context.cutoffAt).toBe(START + 500_000);
    session.actor.send({ type: 'RESERVE_USE', at: START, units: 10 });
    // 0.50 held back: time may spend 4.50, for 450 s.
    expect(session.actor.getSnapshot().context).toMatchObject({ cutoffAt: START + 450_000, uses: { reservedMicros: '500000', open: { r1: { units: 10 } } } });
    session.actor.send({ type: 'COMMIT_USE', at: START + 1_000, reservationId: 'r1', units: 4 });
    expect(session.actor.getSnapshot().context).toMatchObject({ cutoffAt: START + 480_000, uses: { usedUnits: 4, usedMicros: '200000', reservedMicros: '0', open: {} } });
    // Committed once: the same reservation again is not taken.
    expect(session.actor.getSnapshot().can({ type: 'COMMIT_USE', at: START + 2_000, reservationId: 'r1', units: 4 })).toBe(false);
    await session.advance(60_000);
    session.actor.send({ type: 'LOGOFF', at: session.clock.now() });
    await session.settle();
    // 60 s at 0.01 a second and 4 uses at 0.05.
    expect(session.actor.getSnapshot().context).toMatchObject({ chargeMicros: '800000' });
  });

  it('refuses a use that would pass the limit, and cuts the session at exactly its limit when uses reach it', async () => {
    const session = startSession({ input: perUse });
    await session.settle();
    await session.advance(100_000);
    // 1.00 of time used: 4.00 left, 80 uses.
    expect(session.actor.getSnapshot().can({ type: 'RESERVE_USE', at: session.clock.now(), units: 81 })).toBe(false);
    session.actor.send({ type: 'RESERVE_USE', at: session.clock.now(), units: 80 });
    session.actor.send({ type: 'COMMIT_USE', at: session.clock.now(), reservationId: 'r1', units: 80 });
    await session.settle();
    const { context } = session.actor.getSnapshot();
    expect(stateNameOf(session.actor.getSnapshot())).toBe('settled');
    expect(context).toMatchObject({ endReason: 'charge_limit', endedAt: START + 100_000, chargeMicros: '5000000' });
  });

  it('warns at the share of the limit configured, once, and again after an extension', async () => {
    const session = startSession({ input: { warnings: { shareBasisPoints: 8_000, secondsBefore: null } } });
    await session.settle();
    // 80 % of 5.00 is reached at 400 s.
    expect(deadlineOf(session.actor.getSnapshot())).toEqual({ at: START + 400_000, event: 'WARN' });
    await session.advance(400_000);
    expect(session.actor.getSnapshot().context.warnedAt).toBe(START + 400_000);
    expect(deadlineOf(session.actor.getSnapshot())).toEqual({ at: START + 500_000, event: 'CUTOFF' });
    session.actor.send({ type: 'EXTEND', at: session.clock.now(), maxChargeMicros: '10000000' });
    await session.settle();
    // 80 % of 10.00 at 800 s.
    expect(session.actor.getSnapshot().context).toMatchObject({ warnedAt: null, warnAt: START + 800_000, cutoffAt: START + 1_000_000 });
  });
});
