import { describe, expect, it } from 'vitest';
import { billableMs, deadlineOf, extensionRefusal, stateNameOf } from '../../machines/session/index.js';
import { cutoffInstant, warnAtOf } from '../../machines/session/session.terms.js';
import { flatTariff } from '../../src/billing/tariff.js';
import { ManualClock } from '../../src/clock.js';
import { START, startSession } from './session-harness.js';

/**
 * The session's arithmetic as a customer meets it: when they are warned, which extensions are
 * taken, which uses fit, what an end with uses open costs. Every session here is 5.00 at 0.60 a
 * minute (0.01 a second): its charge limit comes 500 s in.
 */
const warnings = (shareBasisPoints: number | null, secondsBefore: number | null) => ({ input: { warnings: { shareBasisPoints, secondsBefore } } });
const perUse = { tariff: { ...flatTariff(600_000n), perUse: { unit: 'unit' as const, priceMicros: '50000' } } };

async function running(options: Parameters<typeof startSession>[0] = {}) {
  const session = startSession(options);
  await session.settle();
  return session;
}

describe('warnings before the cutoff', () => {
  it.each([
    ['a share of the limit alone', 8_000, null, 400_000],
    ['seconds before the cutoff alone', null, 60, 440_000],
    ['the share, when it comes first', 8_000, 60, 400_000],
    ['the seconds before, when they come first', 8_000, 200, 300_000],
  ])('warn at %s', async (_label, share, seconds, afterMs) => {
    const session = await running(warnings(share, seconds));
    expect(session.actor.getSnapshot().context.warnAt).toBe(START + afterMs);
    expect(deadlineOf(session.actor.getSnapshot())).toEqual({ at: START + afterMs, event: 'WARN' });
  });

  it('warns at once when the cutoff is nearer than the warning wants', async () => {
    const session = await running(warnings(null, 600));
    expect(session.actor.getSnapshot().context.warnAt).toBe(START);
  });

  it.each([
    ['none is configured', null, null, {}],
    ['it would come at the cutoff itself', null, 0, {}],
    ['the time limit ends the session before the share is reached', 8_000, null, { maxMs: 100_000 }],
  ])('gives no warning when %s', async (_label, share, seconds, extra) => {
    const session = await running({ input: { warnings: { shareBasisPoints: share, secondsBefore: seconds }, ...extra } });
    expect(session.actor.getSnapshot().context.warnAt).toBeNull();
    expect(deadlineOf(session.actor.getSnapshot())?.event).toBe('CUTOFF');
  });

  it('is given once, not before it is due', async () => {
    const session = await running(warnings(8_000, null));
    session.actor.send({ type: 'WARN', at: START + 399_999 });
    expect(session.actor.getSnapshot().context.warnedAt).toBeNull();
    session.actor.send({ type: 'WARN', at: START + 400_000 });
    session.actor.send({ type: 'WARN', at: START + 450_000 });
    expect(session.actor.getSnapshot().context.warnedAt).toBe(START + 400_000);
  });

  it('comes nearer with the cutoff when uses are reserved, unless it was given', async () => {
    const session = await running({ input: { ...perUse, warnings: { shareBasisPoints: null, secondsBefore: 100 } } });
    session.actor.send({ type: 'RESERVE_USE', at: START, units: 10 });
    // 0.50 held back: the cutoff at 450 s, the warning 100 s before it.
    expect(session.actor.getSnapshot().context).toMatchObject({ cutoffAt: START + 450_000, warnAt: START + 350_000 });
    session.actor.send({ type: 'WARN', at: START + 360_000 });
    session.actor.send({ type: 'RELEASE_USE', at: START + 360_000, reservationId: 'r1' });
    expect(session.actor.getSnapshot().context).toMatchObject({ cutoffAt: START + 500_000, warnAt: START + 350_000, warnedAt: START + 360_000 });
  });
});

describe('extensions', () => {
  it('are refused when they do not raise the limit, or when the time limit ends the session first', async () => {
    const session = await running({ input: { maxMs: 100_000 } });
    const { context } = session.actor.getSnapshot();
    expect(extensionRefusal(context, '5000000')).toBe('not_higher');
    expect(extensionRefusal(context, '4990000')).toBe('not_higher');
    expect(extensionRefusal(context, '8000000')).toBe('time_limit_binds');
    expect(session.actor.getSnapshot().can({ type: 'EXTEND', at: START, maxChargeMicros: '8000000' })).toBe(false);
  });

  it('are taken when the new limit comes before the time limit', async () => {
    const session = await running({ input: { maxMs: 700_000 } });
    expect(extensionRefusal(session.actor.getSnapshot().context, '5010000')).toBeNull();
    session.actor.send({ type: 'EXTEND', at: START, maxChargeMicros: '8000000' });
    await session.settle();
    // 8.00 would last 800 s; the time limit ends it at 700 s.
    expect(session.actor.getSnapshot().context).toMatchObject({ maxChargeMicros: '8000000', cutoffAt: START + 700_000, cutoffReason: 'time_limit' });
  });
});

describe('uses priced per use', () => {
  it('are refused by a service with no price per use', async () => {
    const session = await running();
    expect(session.actor.getSnapshot().can({ type: 'RESERVE_USE', at: START, units: 1 })).toBe(false);
    expect(session.actor.getSnapshot().can({ type: 'USE', at: START, units: 1 })).toBe(false);
  });

  it('are refused before the session is active', () => {
    const session = startSession({ input: perUse });
    expect(session.actor.getSnapshot().can({ type: 'RESERVE_USE', at: START, units: 1 })).toBe(false);
  });

  it('fit up to exactly what the limit leaves', async () => {
    const session = await running({ input: perUse });
    expect(session.actor.getSnapshot().context.uses).toEqual({ usedUnits: 0, usedMicros: '0', reservedMicros: '0', open: {}, next: 1 });
    // Nothing used yet: 5.00 is 100 uses.
    expect(session.actor.getSnapshot().can({ type: 'USE', at: START, units: 100 })).toBe(true);
    expect(session.actor.getSnapshot().can({ type: 'USE', at: START, units: 101 })).toBe(false);
    session.actor.send({ type: 'RESERVE_USE', at: START, units: 30 });
    session.actor.send({ type: 'USE', at: START, units: 20 });
    expect(session.actor.getSnapshot().can({ type: 'USE', at: START, units: 50 })).toBe(true);
    expect(session.actor.getSnapshot().can({ type: 'USE', at: START, units: 51 })).toBe(false);
  });

  it('charge a use reported after the fact at once, and move the cutoff', async () => {
    const session = await running({ input: perUse });
    session.actor.send({ type: 'USE', at: START + 10_000, units: 3 });
    expect(session.actor.getSnapshot().context).toMatchObject({ cutoffAt: START + 485_000, uses: { usedUnits: 3, usedMicros: '150000', reservedMicros: '0' } });
    session.actor.send({ type: 'USE', at: START + 10_000, units: 2 });
    expect(session.actor.getSnapshot().context.uses).toMatchObject({ usedUnits: 5, usedMicros: '250000' });
  });

  it('end the session at its limit when a reported use takes the rest', async () => {
    const session = await running({ input: perUse });
    await session.advance(100_000);
    session.actor.send({ type: 'USE', at: session.clock.now(), units: 80 });
    await session.settle();
    expect(stateNameOf(session.actor.getSnapshot())).toBe('settled');
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'charge_limit', chargeMicros: '5000000', endedAt: START + 100_000 });
  });

  it('end a session free by the minute when a reported use takes the whole limit', async () => {
    const session = await running({ input: { tariff: { ...flatTariff(0n), perUse: { unit: 'unit', priceMicros: '50000' } } } });
    await session.advance(10_000);
    session.actor.send({ type: 'USE', at: session.clock.now(), units: 100 });
    await session.settle();
    expect(stateNameOf(session.actor.getSnapshot())).toBe('settled');
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'charge_limit', chargeMicros: '5000000', endedAt: START + 10_000 });
  });

  it('commit no more than was reserved, and only once', async () => {
    const session = await running({ input: perUse });
    session.actor.send({ type: 'RESERVE_USE', at: START, units: 4 });
    session.actor.send({ type: 'RESERVE_USE', at: START, units: 6 });
    expect(session.actor.getSnapshot().context.uses.open).toEqual({ r1: { units: 4, micros: '200000' }, r2: { units: 6, micros: '300000' } });
    expect(session.actor.getSnapshot().can({ type: 'COMMIT_USE', at: START, reservationId: 'r1', units: 5 })).toBe(false);
    expect(session.actor.getSnapshot().can({ type: 'COMMIT_USE', at: START, reservationId: 'r3', units: 0 })).toBe(false);
    expect(session.actor.getSnapshot().can({ type: 'RELEASE_USE', at: START, reservationId: 'r3' })).toBe(false);
    session.actor.send({ type: 'COMMIT_USE', at: START, reservationId: 'r2', units: 6 });
    session.actor.send({ type: 'RELEASE_USE', at: START, reservationId: 'r1' });
    expect(session.actor.getSnapshot().context.uses).toEqual({ usedUnits: 6, usedMicros: '300000', reservedMicros: '0', open: {}, next: 3 });
    expect(session.actor.getSnapshot().can({ type: 'RELEASE_USE', at: START, reservationId: 'r1' })).toBe(false);
  });

  it('reserved and not committed by the end are not charged', async () => {
    const session = await running({ input: perUse });
    session.actor.send({ type: 'RESERVE_USE', at: START, units: 10 });
    session.actor.send({ type: 'USE', at: START, units: 1 });
    await session.advance(60_000);
    session.actor.send({ type: 'LOGOFF', at: session.clock.now() });
    await session.settle();
    // 60 s at 0.01 and one use at 0.05.
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'logoff', chargeMicros: '650000' });
  });
});

describe('billable time', () => {
  it('is nothing before the session starts', () => {
    const session = startSession();
    expect(billableMs(session.actor.getSnapshot().context, START + 60_000)).toBe(0);
  });

  it('counts from the instant the card company authorized, not from when the session was opened', async () => {
    // Opened at START; the authorization answers 30 s later.
    const session = await running({ clock: new ManualClock(START + 30_000) });
    expect(session.actor.getSnapshot().context).toMatchObject({ startedAt: START + 30_000, cutoffAt: START + 530_000 });
    await session.advance(42_000);
    expect(billableMs(session.actor.getSnapshot().context, session.clock.now())).toBe(42_000);
    session.actor.send({ type: 'LOGOFF', at: session.clock.now() });
    await session.settle();
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'logoff', endedAt: START + 72_000, chargeMicros: '420000' });
  });

  it('is charged at most to the cutoff, however late the end is told', async () => {
    const session = await running({ input: { maxMs: 90_000 } });
    session.actor.send({ type: 'TERMINATE', at: START + 89_000 });
    await session.settle();
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'ops_terminated', endedAt: START + 89_000, chargeMicros: '890000' });
  });
});

describe('a session billed by the minute', () => {
  // 1.00 a minute, billed a whole minute at a time.
  const byMinute = (maxChargeMicros: string, warnings: { shareBasisPoints: number | null; secondsBefore: number | null }) => ({
    tariff: { ...flatTariff(1_000_000n), billing: { firstPeriodSeconds: 60, incrementSeconds: 60, minimumChargeMicros: '0' } },
    maxChargeMicros,
    maxMs: null,
    startedAt: START,
    createdAt: START,
    resumes: [],
    uses: { usedUnits: 0, usedMicros: '0', reservedMicros: '0', open: {}, next: 1 },
    warnings,
  });

  it('runs a limit of whole minutes to the end of its last minute', () => {
    expect(cutoffInstant(byMinute('2000000', { shareBasisPoints: null, secondsBefore: null }))).toEqual({ at: START + 120_000, reason: 'charge_limit' });
  });

  it('warns when the charge reaches the share, not at the end of the minute that reached it', () => {
    // Half of 2.00 is charged from the first second: the first minute, 1.00, is billed at once.
    const half = byMinute('2000000', { shareBasisPoints: 5_000, secondsBefore: null });
    expect(warnAtOf(half, cutoffInstant(half).at, START)).toBe(START + 1_000);
  });
});
