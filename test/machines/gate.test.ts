import { createActor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { emptyGate, enqueue, expire, gateMachine, nextExpiry, release, restoreSeat, seatsFree, setCapacity, take, withdraw, type GateContext } from '../../machines/gate/index.js';

/** A gate's seats and line, step by step: who is granted, who waits, who is refused. */
const wait = (requestId: string, at: number, waitMs: number) => ({ requestId, at, waitUntil: at + waitMs });

/** Queues requests in turn; returns the gate after them and every decision, in order. */
function line(gate: GateContext, ...requests: ReturnType<typeof wait>[]) {
  const decided: string[] = [];
  for (const request of requests) {
    const d = enqueue(gate, request);
    gate = d.context;
    decided.push(...d.rejected.map((id) => `rejected ${id}`), ...(d.overflowed ?? []).map((id) => `overflowed ${id}`));
  }
  return { gate, decided };
}

describe('an admission gate', () => {
  it('grants seats up to its capacity and refuses a seat when none is free', () => {
    let gate = emptyGate('svc', 'service', 2);
    const decided: string[] = [];
    for (const id of ['a', 'b', 'c']) {
      const d = take(gate, id);
      gate = d.context;
      decided.push(...d.granted.map((g) => `granted ${g}`), ...d.rejected.map((r) => `rejected ${r}`));
    }
    expect(decided).toEqual(['granted a', 'granted b', 'rejected c']);
    expect(gate).toMatchObject({ used: 2, queue: [] });
    expect(seatsFree(gate)).toBe(0);
  });

  it('keeps a line up to its bound, refuses at once one that may not wait, and overflows the rest', () => {
    const { gate, decided } = line(emptyGate('svc', 'service', 0, 2), wait('c', 1, 100), wait('d', 2, 0), wait('e', 3, 50), wait('f', 4, 10));
    expect(decided).toEqual(['rejected d', 'overflowed f']);
    expect(gate).toEqual({
      gateId: 'svc',
      kind: 'service',
      capacity: 0,
      used: 0,
      maxQueue: 2,
      queue: [
        { requestId: 'c', queuedAt: 1, expiresAt: 101 },
        { requestId: 'e', queuedAt: 3, expiresAt: 53 },
      ],
    });
    expect(nextExpiry(gate)).toBe(53);
    // One that only keeps its place here (another gate keeps it out) stands past the bound.
    expect(enqueue(gate, { ...wait('g', 5, 10), bounded: false }).context.queue.map((q) => q.requestId)).toEqual(['c', 'e', 'g']);
  });

  it('hands no freed seat on by itself: a waiter leaves the line only when it takes a seat', () => {
    let gate = take(emptyGate('g', 'server', 1), 'a').context;
    gate = line(gate, wait('b', 1, 100), wait('c', 2, 100)).gate;
    gate = release(gate);
    expect(gate).toMatchObject({ used: 0, queue: [{ requestId: 'b' }, { requestId: 'c' }] });
    const taken = take(gate, 'c');
    expect(taken.granted).toEqual(['c']);
    expect(taken.context).toMatchObject({ used: 1, queue: [{ requestId: 'b' }] });
    // Refused, a waiter keeps its place.
    expect(take(taken.context, 'b')).toEqual({ context: taken.context, granted: [], rejected: ['b'] });
    // A release with no seat taken does not make a seat out of nothing.
    expect(release(release(taken.context)).used).toBe(0);
  });

  it('admits no one while over a lowered capacity', () => {
    const gate = setCapacity(take(take(emptyGate('g', 'server', 2), 'a').context, 'b').context, 1);
    expect(seatsFree(gate)).toBe(0);
    expect(take(gate, 'c').rejected).toEqual(['c']);
    expect(take(release(gate), 'c').rejected).toEqual(['c']);
    expect(take(release(release(gate)), 'c').granted).toEqual(['c']);
  });

  it('refuses waiters whose wait ran out, at the instant it runs out', () => {
    const { gate } = line(emptyGate('g', 'server', 0), wait('b', 0, 100), wait('c', 0, 50), wait('d', 0, 200));
    expect(expire(gate, 49)).toEqual({ context: gate, granted: [], rejected: [] });
    const expired = expire(gate, 50);
    expect(expired.rejected).toEqual(['c']);
    expect(expired.context.queue.map((q) => q.requestId)).toEqual(['b', 'd']);
    expect(nextExpiry(gate)).toBe(50);
    expect(nextExpiry(expired.context)).toBe(100);
  });

  it('takes a waiter out when its caller gives up, and changes nothing for one it does not hold', () => {
    const { gate } = line(emptyGate('g', 'server', 0), wait('a', 0, 100), wait('b', 0, 100));
    expect(withdraw(gate, 'a')).toEqual({ ...gate, queue: [gate.queue[1]] });
    expect(withdraw(gate, 'zz')).toBe(gate);
    expect(nextExpiry(emptyGate('g', 'server', 1))).toBeNull();
  });

  it('takes back seats held before a restart, even beyond a capacity lowered since', () => {
    const gate = emptyGate('g', 'server', 1);
    expect(restoreSeat(gate).used).toBe(1);
    expect(restoreSeat(gate, 3).used).toBe(3);
    expect(seatsFree(restoreSeat(gate, 3))).toBe(0);
  });
});

describe('the gate machine', () => {
  it('tells who is granted, refused, and refused for a full line, naming itself', () => {
    const actor = createActor(gateMachine, { input: { gateId: 'svc', kind: 'service', capacity: 1, maxQueue: 1 } }).start();
    const heard: string[] = [];
    for (const type of ['granted', 'rejected', 'overflowed'] as const) actor.on(type, (e) => heard.push(`${e.type} ${e.requestId} ${e.gateId}`));
    actor.send({ type: 'TAKE', requestId: 'a' });
    actor.send({ type: 'QUEUE', requestId: 'b', at: 0, waitUntil: 10 });
    actor.send({ type: 'QUEUE', requestId: 'c', at: 0, waitUntil: 10 });
    actor.send({ type: 'TAKE', requestId: 'd' });
    actor.send({ type: 'WITHDRAW', requestId: 'b' });
    actor.send({ type: 'QUEUE', requestId: 'e', at: 1, waitUntil: 5 });
    actor.send({ type: 'EXPIRE', at: 5 });
    actor.send({ type: 'SET_CAPACITY', capacity: 2 });
    actor.send({ type: 'TAKE', requestId: 'f' });
    actor.send({ type: 'RELEASE' });
    actor.send({ type: 'RESTORE_SEAT' });
    actor.send({ type: 'RESTORE_SEAT', count: 2 });
    expect(heard).toEqual(['granted a svc', 'overflowed c svc', 'rejected d svc', 'rejected e svc', 'granted f svc']);
    expect(actor.getSnapshot().context).toMatchObject({ capacity: 2, used: 4, queue: [] });
  });
});
