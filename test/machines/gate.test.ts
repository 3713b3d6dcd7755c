import { createActor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { acquire, emptyGate, expire, gateMachine, nextExpiry, release, restoreSeat, seatsFree, setCapacity, withdraw, type GateContext } from '../../machines/gate/index.js';

/** A gate's seats and queue, request by request: who is granted, who waits, who is refused. */
const wait = (requestId: string, at: number, waitMs: number) => ({ requestId, at, waitUntil: at + waitMs });

/** Applies requests in turn; returns the gate after them and every decision, in order. */
function run(gate: GateContext, ...requests: ReturnType<typeof wait>[]) {
  const decided: string[] = [];
  for (const request of requests) {
    const d = acquire(gate, request);
    gate = d.context;
    decided.push(...d.granted.map((id) => `granted ${id}`), ...d.rejected.map((id) => `rejected ${id}`), ...(d.overflowed ?? []).map((id) => `overflowed ${id}`));
  }
  return { gate, decided };
}

describe('an admission gate', () => {
  it('grants seats up to its capacity, queues those who may wait up to its bound, and refuses the rest', () => {
    const { gate, decided } = run(emptyGate('svc', 'service', 2, 2), wait('a', 0, 0), wait('b', 0, 0), wait('c', 1, 100), wait('d', 2, 0), wait('e', 3, 50), wait('f', 4, 10));
    expect(decided).toEqual(['granted a', 'granted b', 'rejected d', 'overflowed f']);
    expect(gate).toEqual({
      gateId: 'svc',
      kind: 'service',
      capacity: 2,
      used: 2,
      maxQueue: 2,
      queue: [
        { requestId: 'c', queuedAt: 1, expiresAt: 101 },
        { requestId: 'e', queuedAt: 3, expiresAt: 53 },
      ],
    });
    expect(seatsFree(gate)).toBe(0);
    expect(nextExpiry(gate)).toBe(53);
  });

  it('gives a released seat to the oldest waiter, and keeps it free when nobody waits', () => {
    const { gate } = run(emptyGate('g', 'server', 1), wait('a', 0, 0), wait('b', 1, 100), wait('c', 2, 100));
    const first = release(gate);
    expect(first.granted).toEqual(['b']);
    expect(first.context).toMatchObject({ used: 1, queue: [{ requestId: 'c' }] });
    const second = release(release(first.context).context);
    expect(second).toEqual({ context: { ...gate, used: 0, queue: [] }, granted: [], rejected: [] });
    // A release with no seat taken does not make a seat out of nothing.
    expect(release(second.context).context.used).toBe(0);
  });

  it('serves waiters in order when its capacity is raised, and admits no one while over a lowered one', () => {
    const { gate } = run(emptyGate('g', 'server', 0), wait('a', 0, 100), wait('b', 0, 100), wait('c', 0, 100));
    const raised = setCapacity(gate, 2);
    expect(raised).toEqual({ context: { ...gate, capacity: 2, used: 2, queue: [gate.queue[2]] }, granted: ['a', 'b'], rejected: [] });
    const lowered = setCapacity(raised.context, 1);
    expect(seatsFree(lowered.context)).toBe(0);
    expect(release(lowered.context).granted).toEqual([]);
    expect(release(release(lowered.context).context).granted).toEqual(['c']);
  });

  it('refuses waiters whose wait ran out, at the instant it runs out, and then serves the rest', () => {
    const { gate } = run(emptyGate('g', 'server', 1), wait('a', 0, 0), wait('b', 0, 100), wait('c', 0, 50), wait('d', 0, 200));
    expect(expire(gate, 49)).toEqual({ context: gate, granted: [], rejected: [] });
    const expired = expire(gate, 50);
    expect(expired.rejected).toEqual(['c']);
    expect(expired.context.queue.map((q) => q.requestId)).toEqual(['b', 'd']);
    expect(nextExpiry(gate)).toBe(50);
    expect(nextExpiry(expired.context)).toBe(100);
    const freed = expire(release(gate).context, 100);
    // b had the released seat; d still waits.
    expect(freed.rejected).toEqual(['c']);
    expect(freed.context).toMatchObject({ used: 1, queue: [{ requestId: 'd' }] });
  });

  it('takes a waiter out when its caller gives up, and changes nothing for one it does not hold', () => {
    const { gate } = run(emptyGate('g', 'server', 0), wait('a', 0, 100), wait('b', 0, 100));
    expect(withdraw(gate, 'a')).toEqual({ context: { ...gate, queue: [gate.queue[1]] }, granted: [], rejected: [] });
    expect(withdraw(gate, 'zz').context).toBe(gate);
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
  it('tells who is granted, refused, and refused for a full queue, naming itself', () => {
    const actor = createActor(gateMachine, { input: { gateId: 'svc', kind: 'service', capacity: 1, maxQueue: 1 } }).start();
    const heard: string[] = [];
    for (const type of ['granted', 'rejected', 'overflowed'] as const) actor.on(type, (e) => heard.push(`${e.type} ${e.requestId} ${e.gateId}`));
    actor.send({ type: 'ACQUIRE', requestId: 'a', at: 0, waitUntil: 0 });
    actor.send({ type: 'ACQUIRE', requestId: 'b', at: 0, waitUntil: 10 });
    actor.send({ type: 'ACQUIRE', requestId: 'c', at: 0, waitUntil: 10 });
    actor.send({ type: 'ACQUIRE', requestId: 'd', at: 0, waitUntil: 0 });
    actor.send({ type: 'WITHDRAW', requestId: 'b' });
    actor.send({ type: 'ACQUIRE', requestId: 'e', at: 1, waitUntil: 5 });
    actor.send({ type: 'EXPIRE', at: 5 });
    actor.send({ type: 'SET_CAPACITY', capacity: 2 });
    actor.send({ type: 'ACQUIRE', requestId: 'f', at: 6, waitUntil: 6 });
    actor.send({ type: 'RELEASE' });
    actor.send({ type: 'RESTORE_SEAT' });
    actor.send({ type: 'RESTORE_SEAT', count: 2 });
    expect(heard).toEqual(['granted a svc', 'overflowed c svc', 'rejected d svc', 'rejected e svc', 'granted f svc']);
    expect(actor.getSnapshot().context).toMatchObject({ capacity: 2, used: 4, queue: [] });
  });
});
