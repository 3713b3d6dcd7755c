import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { DeadlineScheduler } from '../../src/time/deadline-scheduler.js';

function harness() {
  const clock = new ManualClock(0);
  const fired: [string, number][] = [];
  const armed: number[] = [];
  const scheduler = new DeadlineScheduler(clock, (key, at) => fired.push([key, at]), {
    setTimeout: (_fn, ms) => armed.push(ms),
    clearTimeout: () => {},
  });
  return { clock, fired, armed, scheduler };
}

describe('deadline scheduler', () => {
  it('fires each key once, in deadline order, when its instant has come', () => {
    const { clock, fired, scheduler } = harness();
    scheduler.schedule('b', 200);
    scheduler.schedule('a', 100);
    scheduler.schedule('c', 300);
    clock.set(250);
    scheduler.runDue();
    expect(fired).toEqual([
      ['a', 100],
      ['b', 200],
    ]);
    expect(scheduler.size).toBe(1);
  });

  it('keeps one real timer, armed for the earliest deadline', () => {
    const { armed, scheduler } = harness();
    scheduler.schedule('late', 5_000);
    scheduler.schedule('early', 1_000);
    expect(armed.at(-1)).toBe(1_000);
  });

  it('forgets cancelled and superseded deadlines', () => {
    const { clock, fired, scheduler } = harness();
    scheduler.schedule('a', 100);
    scheduler.schedule('a', 400);
    scheduler.schedule('b', 150);
    scheduler.cancel('b');
    clock.set(300);
    scheduler.runDue();
    expect(fired).toEqual([]);
    clock.set(400);
    scheduler.runDue();
    expect(fired).toEqual([['a', 400]]);
  });

  it('fires every live key exactly once at its last scheduled instant, whatever the order of operations', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd', 'e'), fc.nat(10_000), fc.boolean()), { maxLength: 60 }),
        (operations) => {
          const { clock, fired, scheduler } = harness();
          const expected = new Map<string, number>();
          for (const [key, at, cancel] of operations) {
            if (cancel) {
              scheduler.cancel(key);
              expected.delete(key);
            } else {
              scheduler.schedule(key, at);
              expected.set(key, at);
            }
          }
          clock.set(10_000);
          scheduler.runDue();
          expect(new Map(fired)).toEqual(expected);
          expect(fired.map(([, at]) => at)).toEqual([...fired.map(([, at]) => at)].sort((x, y) => x - y));
        },
      ),
    );
  });
});
