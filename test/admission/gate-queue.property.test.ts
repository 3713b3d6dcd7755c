import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { emptyGate, enqueue, expire, release, setCapacity, take, withdraw, type GateContext, type GateDecisions } from '../../machines/gate/index.js';
import { runs, SEED } from '../helpers/property-runs.js';

const step = fc.oneof(
  fc.record({ op: fc.constant('acquire' as const), waitMs: fc.constantFrom(0, 10, 100, 1_000) }),
  fc.record({ op: fc.constant('serve' as const), pick: fc.nat(40) }),
  fc.record({ op: fc.constant('release' as const) }),
  fc.record({ op: fc.constant('withdraw' as const), pick: fc.nat(40) }),
  fc.record({ op: fc.constant('expire' as const), ms: fc.constantFrom(5, 50, 500) }),
  fc.record({ op: fc.constant('capacity' as const), capacity: fc.nat(4) }),
);

describe('a gate with a bounded queue', () => {
  it('never queues more than its bound, overflows only when the line is full, never grants beyond its capacity or a refused request', () => {
    fc.assert(
      fc.property(fc.nat(4), fc.nat(5), fc.array(step, { maxLength: 120 }), (capacity, maxQueue, steps) => {
        let gate: GateContext = emptyGate('g', 'service', capacity, maxQueue);
        let at = 0;
        let next = 0;
        const refused = new Set<string>();
        const granted = new Set<string>();
        const apply = (decisions: GateDecisions) => {
          for (const id of decisions.granted) {
            expect(refused.has(id), `${id} granted after it was refused`).toBe(false);
            granted.add(id);
          }
          for (const id of [...decisions.rejected, ...(decisions.overflowed ?? [])]) refused.add(id);
          gate = decisions.context;
          expect(gate.queue.length).toBeLessThanOrEqual(maxQueue);
          if (decisions.granted.length > 0) expect(gate.used).toBeLessThanOrEqual(gate.capacity);
        };
        const set = (next: GateContext) => apply({ context: next, granted: [], rejected: [] });
        for (const s of steps) {
          if (s.op === 'acquire') {
            const requestId = `r${next++}`;
            const queueBefore = gate.queue.length;
            // As the coordinator does for a gate alone: a free seat when nobody waits, else the line.
            const decisions =
              gate.queue.length === 0 && gate.used < gate.capacity ? take(gate, requestId) : enqueue(gate, { requestId, at, waitUntil: at + s.waitMs });
            // Overflow is the answer only for a request that would wait behind a full queue.
            if (decisions.overflowed?.length) {
              expect(s.waitMs).toBeGreaterThan(0);
              expect(queueBefore).toBe(maxQueue);
            }
            apply(decisions);
          } else if (s.op === 'release') {
            if (gate.used > 0) set(release(gate));
          } else if (s.op === 'serve') {
            // A waiter takes a seat (one it may, or may not, find free).
            const waiting = gate.queue[s.pick % Math.max(1, gate.queue.length)];
            if (waiting) {
              const decisions = take(gate, waiting.requestId);
              if (decisions.rejected.length > 0) expect(decisions.context).toBe(gate);
              else expect(decisions.context.queue.some((q) => q.requestId === waiting.requestId)).toBe(false);
              apply({ ...decisions, rejected: [] });
            }
          } else if (s.op === 'withdraw') {
            const waiting = gate.queue[s.pick % Math.max(1, gate.queue.length)];
            if (waiting) set(withdraw(gate, waiting.requestId));
          } else if (s.op === 'expire') {
            at += s.ms;
            apply(expire(gate, at));
          } else {
            set(setCapacity(gate, s.capacity));
          }
        }
      }),
      { numRuns: runs(500), seed: SEED },
    );
  });

  it('is unbounded when no bound is given', () => {
    let gate = emptyGate('g', 'server', 0);
    for (let i = 0; i < 1000; i++) gate = enqueue(gate, { requestId: `r${i}`, at: 0, waitUntil: 1 }).context;
    expect(gate.queue).toHaveLength(1000);
  });
});
