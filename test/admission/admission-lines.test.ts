import { describe, expect, it } from 'vitest';
import { Admission } from '../../src/admission/admission.js';
import { createOccupancyStore } from '../../src/admission/occupancy.js';
import { ManualClock } from '../../src/clock.js';
import { AppError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';

const macrotask = () => new Promise((resolve) => setImmediate(resolve));

/** One server `v` with services `s1` and `s2` on it, on a simulated clock. */
function setUp(caps: { v: number; s1: number; s2: number }, maxQueuePerGate?: number) {
  const clock = new ManualClock(0);
  const occupancy = createOccupancyStore();
  // The gates' deadline timer, fired by hand once the simulated clock has moved.
  let timer: (() => void) | null = null;
  const admission = new Admission({
    clock,
    occupancy,
    log: createLogger('silent'),
    retryAfterSeconds: 1,
    ...(maxQueuePerGate !== undefined && { maxQueuePerGate }),
    timers: { setTimeout: (fn) => (timer = fn), clearTimeout: () => (timer = null) },
  });
  admission.register('server', 'v', 'v', caps.v);
  admission.register('service', 's1', 's1', caps.s1, 'v');
  admission.register('service', 's2', 's2', caps.s2, 'v');
  const gate = (key: string) => occupancy.getSnapshot().context.gates[key]!;
  const admitted: string[] = [];
  const open = (sessionId: string, serviceId: string, waitMs = 60_000) =>
    admission.admit({ sessionId, serviceId, serverId: 'v', waitMs }).then(
      () => (admitted.push(sessionId), 'admitted'),
      (error: unknown) => (error instanceof AppError ? error.code : String(error)),
    );
  const advance = (ms: number) => {
    clock.advance(ms);
    (timer as (() => void) | null)?.();
  };
  return { advance, admission, gate, admitted, open };
}

describe('waiting for the seats of a service and its server', () => {
  it('holds no seat of the service while waiting for the server, so the service is not shown full', async () => {
    const { admission, gate, open } = setUp({ v: 1, s1: 1, s2: 5 });
    expect(await open('holder', 's2')).toBe('admitted');
    const waiter = open('waiter', 's1');
    await macrotask();
    expect(gate('service:s1')).toMatchObject({ activeUsers: 0, queued: 1 });
    expect(gate('server:v')).toMatchObject({ activeUsers: 1, queued: 1 });
    // Someone else who will not wait is told what is really full: the server.
    expect(await open('other', 's1', 0)).toBe('SERVER_AT_CAPACITY');
    admission.release('holder');
    expect(await waiter).toBe('admitted');
    expect(gate('service:s1')).toMatchObject({ activeUsers: 1, queued: 0 });
    expect(gate('server:v')).toMatchObject({ activeUsers: 1, queued: 0 });
  });

  it('lets a later request for another service take a seat its server has, while an earlier one waits for its own full service', async () => {
    const { admission, gate, open } = setUp({ v: 2, s1: 1, s2: 5 });
    expect(await open('h1', 's1')).toBe('admitted');
    const a = open('a', 's1');
    await macrotask();
    expect(await open('b', 's2', 0)).toBe('admitted');
    expect(gate('server:v')).toMatchObject({ activeUsers: 2, queued: 1 });
    // The server's seat freed, a still waits for its service...
    admission.release('b');
    await macrotask();
    expect(gate('service:s1')).toMatchObject({ activeUsers: 1, queued: 1 });
    // ...and has both as soon as its service frees one.
    admission.release('h1');
    expect(await a).toBe('admitted');
  });

  it('serves waiters of different services in arrival order, one synchronous step per freed seat', async () => {
    const { admission, gate, admitted, open } = setUp({ v: 1, s1: 1, s2: 1 });
    expect(await open('holder', 's1')).toBe('admitted');
    const waits = Array.from({ length: 200 }, (_, i) => open(`w${i}`, i % 2 === 0 ? 's2' : 's1'));
    await macrotask();
    expect(gate('server:v').queued).toBe(200);
    let last = 'holder';
    for (let i = 0; i < 200; i++) {
      admission.release(last);
      // The seat went to exactly one waiter, during the release itself.
      expect(admission.seatCount).toBe(1);
      expect(gate('server:v')).toMatchObject({ activeUsers: 1, queued: 199 - i });
      await macrotask();
      last = `w${i}`;
      expect(admitted.at(-1)).toBe(last);
    }
    admission.release(last);
    expect(await Promise.all(waits)).toEqual(Array(200).fill('admitted'));
    expect(admitted.slice(1)).toEqual(Array.from({ length: 200 }, (_, i) => `w${i}`));
    expect(admission.seatCount).toBe(0);
  });

  it('bounds a line by the requests its own gate keeps out: one full service does not fill its server\'s line for the others', async () => {
    const { admission, gate, open } = setUp({ v: 100, s1: 1, s2: 1 }, 2);
    expect(await open('h1', 's1')).toBe('admitted');
    expect(await open('h2', 's2')).toBe('admitted');
    const first = [open('a1', 's1'), open('a2', 's1')];
    await macrotask();
    expect(await open('a3', 's1')).toBe('QUEUE_FULL');
    // s2's own line is empty and its server has seats: its request waits for s2 alone.
    const b = open('b', 's2');
    await macrotask();
    expect(gate('service:s2')).toMatchObject({ activeUsers: 1, queued: 1 });
    admission.release('h2');
    expect(await b).toBe('admitted');
    admission.release('h1');
    expect(await first[0]).toBe('admitted');
    admission.release('a1');
    expect(await first[1]).toBe('admitted');
  });

  it('refuses a waiter whose wait runs out with the gate that kept it out, and leaves it in neither line', async () => {
    const { advance, admission, gate, open } = setUp({ v: 1, s1: 1, s2: 5 });
    expect(await open('holder', 's2')).toBe('admitted');
    const waiter = open('waiter', 's1', 1_000);
    await macrotask();
    advance(999);
    await macrotask();
    expect(gate('server:v').queued).toBe(1);
    advance(1);
    expect(await waiter).toBe('SERVER_AT_CAPACITY');
    expect(gate('service:s1')).toMatchObject({ activeUsers: 0, queued: 0 });
    expect(gate('server:v')).toMatchObject({ activeUsers: 1, queued: 0 });
    admission.release('holder');
  });
});
