import { describe, expect, it } from 'vitest';
import { deadlineOf, stateNameOf } from '../../machines/session/index.js';
import { flatTariff } from '../../src/billing/tariff.js';
import { ManualClock } from '../../src/clock.js';
import { ScriptedCardCompany, START, startSession } from './session-harness.js';

/**
 * Every way a session ends, and what each leaves: its end reason, its charge, its calls. Every
 * session here is 5.00 at 0.60 a minute (0.01 a second): its charge limit comes 500 s in.
 */
function scripted(configure: (card: ScriptedCardCompany) => void = () => {}) {
  const clock = new ManualClock(START);
  const card = new ScriptedCardCompany(clock);
  configure(card);
  return { clock, card };
}

describe('a session still opening', () => {
  it.each([
    ['TERMINATE', 'ops_terminated'],
    ['ABANDON', 'abandoned'],
  ] as const)('ends declined on %s, releasing whatever the authorization may have placed', async (type, reason) => {
    const session = startSession(scripted((c) => (c.authorize = 'pending')));
    session.actor.send({ type, at: START + 3_000 });
    await session.settle();
    expect(stateNameOf(session.actor.getSnapshot())).toBe('declined');
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'declined', declineReason: reason, endedAt: START + 3_000 });
    expect(session.card.calls).toEqual(['authorize', 'release']);
  });
});

describe('a running session', () => {
  it.each([
    ['TERMINATE', 'ops_terminated'],
    ['ABANDON', 'abandoned'],
    ['LOGOFF', 'logoff'],
  ] as const)('is charged to the second on %s', async (type, endReason) => {
    const session = startSession();
    await session.settle();
    session.actor.send({ type, at: START + 30_500 });
    await session.settle();
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason, endedAt: START + 30_500, chargeMicros: '300000' });
    expect(session.card.calls).toEqual(['authorize', 'capture 300000']);
  });

  it.each(['TERMINATE', 'LOGOFF', 'ABANDON'] as const)('ends at its limit, for the limit, on a %s told after its cutoff passed, before the cutoff fired', async (type) => {
    const session = startSession();
    await session.settle();
    session.actor.send({ type, at: START + 501_000 });
    await session.settle();
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'charge_limit', endedAt: START + 500_000, chargeMicros: '5000000' });
    expect(session.card.calls).toEqual(['authorize', 'capture 5000000']);
  });

  it.each([
    ['lost well before its limit', START + 30_500, START + 45_000, { endReason: 'service_unreachable', endedAt: START + 30_500, chargeMicros: '300000' }],
    // Told after the cutoff instant (the loss takes a while to be sure of), before the cutoff fired: lost first, so the loss ends it.
    ['lost before its limit, told after it', START + 490_000, START + 505_000, { endReason: 'service_unreachable', endedAt: START + 490_000, chargeMicros: '4900000' }],
    ['lost after its limit was reached', START + 502_000, START + 517_000, { endReason: 'charge_limit', endedAt: START + 500_000, chargeMicros: '5000000' }],
    ['lost before it started', START - 5_000, START + 10_000, { endReason: 'service_unreachable', endedAt: START, chargeMicros: '0' }],
  ] as const)('whose service is %s ends there, charged for no time after it', async (_, since, at, expected) => {
    const session = startSession();
    await session.settle();
    session.actor.send({ type: 'SERVICE_LOST', at, since });
    await session.settle();
    expect(session.actor.getSnapshot().context).toMatchObject(expected);
  });

  it('ignores a cutoff told before its instant', async () => {
    const session = startSession();
    await session.settle();
    session.actor.send({ type: 'CUTOFF', at: START + 499_999 });
    expect(session.actor.getSnapshot().value).toEqual({ active: 'running' });
    session.actor.send({ type: 'CUTOFF', at: START + 500_000 });
    await session.settle();
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'charge_limit', endedAt: START + 500_000 });
  });

  it('voids its hold when it ends before a whole second was billed', async () => {
    const session = startSession();
    await session.settle();
    session.actor.send({ type: 'LOGOFF', at: START + 999 });
    await session.settle();
    expect(session.actor.getSnapshot().context).toMatchObject({ chargeMicros: '0', chargeSlip: null, closingSince: START + 999, closeAttempts: 0 });
    expect(session.card.calls).toEqual(['authorize', 'void hold_1']);
    expect(stateNameOf(session.actor.getSnapshot())).toBe('settled');
  });
});

describe('a session in its grace over the limit', () => {
  async function inGrace(configure: (card: ScriptedCardCompany) => void = () => {}) {
    const session = startSession({ ...scripted(configure), input: { graceMs: 60_000 } });
    await session.settle();
    await session.advance(500_000);
    await session.settle();
    expect(session.actor.getSnapshot().value).toEqual({ over_limit: 'grace' });
    expect(session.actor.getSnapshot().context).toMatchObject({ graceUntil: START + 560_000, endedAt: START + 500_000, chargeMicros: '5000000' });
    return session;
  }

  it('ends where its service was lost when that came before the limit, though told after it', async () => {
    const session = await inGrace();
    session.actor.send({ type: 'SERVICE_LOST', at: START + 505_000, since: START + 490_000 });
    await session.settle();
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'service_unreachable', endedAt: START + 490_000, chargeMicros: '4900000' });
    expect(session.card.calls).toEqual(['authorize', 'capture 4900000']);
  });

  it('ends at its limit, for the limit, when its service was lost after the limit was reached', async () => {
    const session = await inGrace();
    session.actor.send({ type: 'SERVICE_LOST', at: START + 520_000, since: START + 505_000 });
    await session.settle();
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'charge_limit', endedAt: START + 500_000, chargeMicros: '5000000' });
  });

  it('counts its grace from the last use settled when it first waited for its uses, not from the cut', async () => {
    const session = startSession({ ...scripted(), input: { graceMs: 30_000, tariff: { ...flatTariff(600_000n), perUse: { unit: 'unit', priceMicros: '10000' } } } });
    await session.settle();
    // 1.00 of uses reserved leaves 4.00 to time: cut 400 s in, the reservation still open.
    session.actor.send({ type: 'RESERVE_USE', at: START, units: 100 });
    await session.advance(400_000);
    await session.settle();
    expect(session.actor.getSnapshot().value).toEqual({ over_limit: 'awaiting_uses' });
    // Committed 50 s after the cut: grace runs 30 s from then, not from the cut (already past).
    session.actor.send({ type: 'COMMIT_USE', at: START + 450_000, reservationId: 'r1', units: 100 });
    await session.settle();
    expect(session.actor.getSnapshot().value).toEqual({ over_limit: 'grace' });
    expect(deadlineOf(session.actor.getSnapshot())).toEqual({ at: START + 480_000, event: 'GRACE_OVER' });
    expect(session.actor.getSnapshot().context.chargeMicros).toBe('5000000');
  });

  it.each(['LOGOFF', 'TERMINATE', 'ABANDON'] as const)('closes at the limit on %s', async (type) => {
    const session = await inGrace();
    session.actor.send({ type, at: START + 510_000 });
    await session.settle();
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'charge_limit', chargeMicros: '5000000', closingSince: START + 500_000 });
    expect(stateNameOf(session.actor.getSnapshot())).toBe('settled');
  });

  it('takes no extension in grace that does not raise the limit', async () => {
    const session = await inGrace();
    expect(session.actor.getSnapshot().can({ type: 'EXTEND', at: START + 510_000, maxChargeMicros: '5000000' })).toBe(false);
    expect(session.actor.getSnapshot().can({ type: 'EXTEND', at: START + 510_000, maxChargeMicros: '5010000' })).toBe(true);
  });

  it('stays in grace, with its deadline, when an extension is declined', async () => {
    const session = await inGrace((c) => (c.increments = [{ kind: 'declined', reason: 'insufficient_funds', at: 0 }]));
    session.actor.send({ type: 'EXTEND', at: START + 510_000, maxChargeMicros: '8000000' });
    await session.settle();
    expect(session.actor.getSnapshot().value).toEqual({ over_limit: 'grace' });
    expect(deadlineOf(session.actor.getSnapshot())).toEqual({ at: START + 560_000, event: 'GRACE_OVER' });
    expect(session.actor.getSnapshot().context.extension).toMatchObject({ outcome: 'declined', reason: 'insufficient_funds' });
  });

  it('closes at once over its limit when its service grants no grace', async () => {
    const session = startSession();
    await session.settle();
    await session.advance(500_000);
    await session.settle();
    expect(session.actor.getSnapshot().context).toMatchObject({ graceUntil: null, closingSince: START + 500_000 });
  });
});
