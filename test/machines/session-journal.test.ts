import { describe, expect, it } from 'vitest';
import { bookingsOf, domainEventsOf, openedEvent, reservationOf, type Booking, type SessionDomainEvent, type SessionSnapshot } from '../../machines/session/index.js';
import { flatTariff } from '../../src/billing/tariff.js';
import { ManualClock } from '../../src/clock.js';
import { factsOf } from '../../src/sessions/transition-record.js';
import { ScriptedCardCompany, slip, START, startSession } from './session-harness.js';

/**
 * What the journal writes beside each row, transition by transition: the ledger rows, the
 * account's reservation, the charge slip and log row (bookingsOf), and the announcements
 * (domainEventsOf), for sessions driven through their lives. Each expectation is the exact list.
 */
const DAY = 86_400_000;
const ids = {
  sessionId: 'a0000000-0000-4000-8000-000000000001',
  accountId: 'a0000000-0000-4000-8000-0000000000aa',
  serviceId: 'a0000000-0000-4000-8000-0000000000bb',
  serverId: 'a0000000-0000-4000-8000-0000000000cc',
};

type Session = ReturnType<typeof startSession>;

/** Records every transition's bookings and events from now on, as the journal derives them (with the first row's, for a new session). */
function journal(session: Session, firstRow = false) {
  let previous: SessionSnapshot = session.actor.getSnapshot();
  const bookings: Booking[] = firstRow ? bookingsOf(null, factsOf(previous)) : [];
  const events: SessionDomainEvent[] = firstRow ? [openedEvent(previous.context)] : [];
  session.actor.subscribe((next) => {
    if (next === previous) return;
    bookings.push(...bookingsOf(factsOf(previous), factsOf(next)));
    events.push(...domainEventsOf(factsOf(previous), factsOf(next), session.clock.now()));
    previous = next;
  });
  return { bookings, events };
}

function scripted(configure: (card: ScriptedCardCompany) => void = () => {}) {
  const clock = new ManualClock(START);
  const card = new ScriptedCardCompany(clock);
  configure(card);
  return { clock, card };
}

const holdRow = (holdId: string, amountMicros: bigint, key = `hold:${holdId}:${amountMicros}`): Booking => ({
  kind: 'ledger',
  key,
  entry: 'hold',
  debit: 'card_hold',
  credit: 'card_available',
  amountMicros,
  authorizationNumber: 'AB12CD',
});
const releaseRow = (holdId: string, amountMicros: bigint): Booking => ({
  kind: 'ledger',
  key: `release:${holdId}`,
  entry: 'release',
  debit: 'card_available',
  credit: 'card_hold',
  amountMicros,
  authorizationNumber: 'AB12CD',
});
const captureRow = (holdId: string, amountMicros: bigint): Booking => ({
  kind: 'ledger',
  key: `capture:${holdId}`,
  entry: 'capture',
  debit: 'receivable',
  credit: 'card_hold',
  amountMicros,
  authorizationNumber: 'AB12CD',
});

describe('what a session books and announces', () => {
  it('for a logoff: the hold, the capture of the charge, the release of the rest, the slip and the log row', async () => {
    const session = startSession();
    const { bookings, events } = journal(session, true);
    await session.settle();
    await session.advance(42_000);
    session.actor.send({ type: 'LOGOFF', at: session.clock.now() });
    await session.settle();

    expect(bookings).toEqual([
      { kind: 'reservation', targetMicros: 5_000_000n },
      holdRow('hold_1', 5_000_000n),
      { kind: 'reservation', targetMicros: 0n },
      { kind: 'log_completed', startedAt: START, endedAt: START + 42_000, chargeMicros: 420_000n, endReason: 'logoff' },
      captureRow('hold_1', 420_000n),
      { kind: 'charge_slip', slip: slip('420000') },
      releaseRow('hold_1', 4_580_000n),
    ]);
    expect(events).toEqual([
      { ...ids, at: START, type: 'session.opened', maxChargeMicros: '5000000', maxMs: null },
      {
        ...ids,
        at: START,
        type: 'session.activated',
        startedAt: START,
        cutoffAt: START + 500_000,
        cutoffReason: 'charge_limit',
        maxChargeMicros: '5000000',
        authorizationNumber: 'AB12CD',
      },
      { ...ids, at: START + 42_000, type: 'session.logged_off', reason: 'logoff', endedAt: START + 42_000, chargeMicros: '420000' },
      { ...ids, at: START + 42_000, type: 'session.settled', endReason: 'logoff', chargeMicros: '420000', chargeSlip: slip('420000') },
    ]);
  });

  it('for a session ended before a second was billed: the hold released whole, settled at nothing', async () => {
    const session = startSession();
    await session.settle();
    const { bookings, events } = journal(session);
    await session.advance(500);
    session.actor.send({ type: 'LOGOFF', at: session.clock.now() });
    await session.settle();
    expect(bookings).toEqual([
      { kind: 'reservation', targetMicros: 0n },
      { kind: 'log_completed', startedAt: START, endedAt: START + 500, chargeMicros: 0n, endReason: 'logoff' },
      releaseRow('hold_1', 5_000_000n),
    ]);
    expect(events).toEqual([
      { ...ids, at: START + 500, type: 'session.logged_off', reason: 'logoff', endedAt: START + 500, chargeMicros: '0' },
      { ...ids, at: START + 500, type: 'session.settled', endReason: 'logoff', chargeMicros: '0', chargeSlip: null },
    ]);
  });

  it('for a decline: the reservation given back and the log row, no ledger rows', async () => {
    const session = startSession({ ...scripted((c) => (c.authorize = { kind: 'declined', reason: 'insufficient_funds', at: 0 })), input: { maxMs: 60_000 } });
    const { bookings, events } = journal(session, true);
    await session.settle();
    expect(bookings).toEqual([
      { kind: 'reservation', targetMicros: 5_000_000n },
      { kind: 'reservation', targetMicros: 0n },
      { kind: 'log_completed', startedAt: null, endedAt: START, chargeMicros: 0n, endReason: 'declined' },
    ]);
    expect(events).toEqual([
      { ...ids, at: START, type: 'session.opened', maxChargeMicros: '5000000', maxMs: 60_000 },
      { ...ids, at: START, type: 'session.declined', reason: 'insufficient_funds' },
    ]);
  });

  it('for a session interrupted at its limit and extended in its grace: interrupted, resumed, then settled', async () => {
    const session = startSession({ ...scripted(), input: { graceMs: 60_000 } });
    await session.settle();
    const { bookings, events } = journal(session);
    await session.advance(500_000);
    await session.advance(20_000);
    session.actor.send({ type: 'EXTEND', at: session.clock.now(), maxChargeMicros: '8000000' });
    await session.settle();
    await session.advance(10_000);
    session.actor.send({ type: 'TERMINATE', at: session.clock.now() });
    await session.settle();

    expect(events).toEqual([
      { ...ids, at: START + 500_000, type: 'session.interrupted', reason: 'charge_limit', endedAt: START + 500_000, chargeMicros: '5000000' },
      // 8.00 lasts 800 s of billable time; 20 s were paused.
      { ...ids, at: START + 520_000, type: 'session.extended', cutoffAt: START + 820_000, cutoffReason: 'charge_limit', maxChargeMicros: '8000000', resumed: true },
      { ...ids, at: START + 530_000, type: 'session.logged_off', reason: 'ops_terminated', endedAt: START + 530_000, chargeMicros: '5100000' },
      { ...ids, at: START + 530_000, type: 'session.settled', endReason: 'ops_terminated', chargeMicros: '5100000', chargeSlip: slip('5100000') },
    ]);
    expect(bookings).toEqual([
      // Reserved while the card company is asked, and kept once it agrees.
      { kind: 'reservation', targetMicros: 8_000_000n },
      holdRow('hold_1', 3_000_000n, 'hold:hold_1:8000000'),
      { kind: 'reservation', targetMicros: 0n },
      { kind: 'log_completed', startedAt: START, endedAt: START + 530_000, chargeMicros: 5_100_000n, endReason: 'ops_terminated' },
      captureRow('hold_1', 5_100_000n),
      { kind: 'charge_slip', slip: slip('5100000') },
      releaseRow('hold_1', 2_900_000n),
    ]);
  });

  it('for a session ended by its time limit: interrupted for that reason, not logged off', async () => {
    const session = startSession({ input: { maxMs: 90_000 } });
    await session.settle();
    const { events } = journal(session);
    await session.advance(90_000);
    await session.settle();
    expect(events).toEqual([
      { ...ids, at: START + 90_000, type: 'session.interrupted', reason: 'time_limit', endedAt: START + 90_000, chargeMicros: '900000' },
      { ...ids, at: START + 90_000, type: 'session.settled', endReason: 'time_limit', chargeMicros: '900000', chargeSlip: slip('900000') },
    ]);
  });

  it('for an extension the card company declines: the reservation goes back to the old limit', async () => {
    const session = startSession(scripted((c) => (c.increments = [{ kind: 'declined', reason: 'insufficient_funds', at: 0 }])));
    await session.settle();
    const { bookings, events } = journal(session);
    session.actor.send({ type: 'EXTEND', at: START, maxChargeMicros: '8000000' });
    await session.settle();
    expect(bookings).toEqual([
      { kind: 'reservation', targetMicros: 8_000_000n },
      { kind: 'reservation', targetMicros: 5_000_000n },
    ]);
    expect(events).toEqual([]);
  });

  it('for a renewed hold: the new hold, and the release of the one it replaced', async () => {
    const session = startSession({ ...scripted(), input: { maxChargeMicros: '100000000', tariff: flatTariff(600n) } });
    await session.settle();
    const { bookings, events } = journal(session);
    await session.advance(6 * DAY);
    await session.settle();
    expect(bookings).toEqual([holdRow('hold_2', 5_000_000n), releaseRow('hold_1', 5_000_000n)]);
    expect(events).toEqual([]);
  });

  it('for a warning and a capture refused for good: warned once, then stuck with the operation and why', async () => {
    const session = startSession({
      ...scripted((c) => (c.captures = [{ kind: 'refused', detail: 'hold_not_open', at: 0 }])),
      input: { warnings: { shareBasisPoints: null, secondsBefore: 100 } },
    });
    await session.settle();
    const { events } = journal(session);
    await session.advance(400_000);
    session.actor.send({ type: 'LOGOFF', at: session.clock.now() });
    await session.settle();
    expect(events).toEqual([
      { ...ids, at: START + 400_000, type: 'session.warning', cutoffAt: START + 500_000, cutoffReason: 'charge_limit' },
      { ...ids, at: START + 400_000, type: 'session.logged_off', reason: 'logoff', endedAt: START + 400_000, chargeMicros: '4000000' },
      { ...ids, at: START + 400_000, type: 'session.stuck', reason: 'capture refused: hold_not_open' },
    ]);
  });

  it('announces a stuck session once, and nothing for a transition that leaves it stuck', async () => {
    const session = startSession(scripted((c) => (c.captures = [{ kind: 'refused', detail: 'hold_not_open', at: 0 }])));
    await session.settle();
    session.actor.send({ type: 'LOGOFF', at: START + 400_000 });
    await session.settle();
    const stuck = factsOf(session.actor.getSnapshot());
    expect(stuck.stuck).toBe(true);
    expect(domainEventsOf(stuck, stuck, START + 400_000)).toEqual([]);
  });

  it('books and announces nothing for a transition that changed nothing, settled or not', async () => {
    const session = startSession();
    await session.settle();
    const running = factsOf(session.actor.getSnapshot());
    expect(bookingsOf(running, running)).toEqual([]);
    expect(domainEventsOf(running, running, START)).toEqual([]);
    session.actor.send({ type: 'LOGOFF', at: START + 42_000 });
    await session.settle();
    const settled = factsOf(session.actor.getSnapshot());
    expect(bookingsOf(settled, settled)).toEqual([]);
    expect(domainEventsOf(settled, settled, START + 42_000)).toEqual([]);
  });

  it('reserves a pending extension’s limit, the limit otherwise, and nothing once final', () => {
    const context = startSession().actor.getSnapshot().context;
    const pending = { ...context, extension: { fromMicros: '5000000', toMicros: '9000000', requestedAt: START, outcome: 'pending' as const, reason: null } };
    expect(reservationOf({ context: pending, final: false })).toBe(9_000_000n);
    expect(reservationOf({ context: { ...pending, extension: { ...pending.extension, outcome: 'reserving' } }, final: false })).toBe(5_000_000n);
    expect(reservationOf({ context: pending, final: true })).toBe(0n);
  });
});
