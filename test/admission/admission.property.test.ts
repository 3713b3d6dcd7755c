import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Admission } from '../../src/admission/admission.js';
import { createOccupancyStore } from '../../src/admission/occupancy.js';
import { ManualClock } from '../../src/clock.js';
import { AppError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { runs, SEED } from '../helpers/property-runs.js';

const SERVICES = [
  { id: 's1', serverId: 'v' },
  { id: 's2', serverId: 'v' },
  { id: 's3', serverId: 'w' },
];
const GATES = [
  ['service', 's1'],
  ['service', 's2'],
  ['service', 's3'],
  ['server', 'v'],
  ['server', 'w'],
] as const;

const operation = fc.oneof(
  fc.record({ op: fc.constant('open' as const), service: fc.nat(2), waitMs: fc.constantFrom(0, 0, 50, 200, 1_000) }),
  fc.record({ op: fc.constant('finish' as const), pick: fc.nat(50) }),
  fc.record({ op: fc.constant('cap' as const), gate: fc.nat(4), capacity: fc.nat(5) }),
  fc.record({ op: fc.constant('advance' as const), ms: fc.constantFrom(10, 60, 250, 1_500) }),
);

const flush = () => new Promise((resolve) => setImmediate(resolve));

// 300 runs of up to 80 operations on a simulated clock: about 3 s, more on a busy machine.
describe('admission through service and server gates', { timeout: 30_000 }, () => {
  it('never exceeds a cap, keeps no one waiting for free seats, serves waiters in order, and leaks no seat', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(5), { minLength: 5, maxLength: 5 }), fc.array(operation, { maxLength: 80 }), async (caps, operations) => {
        const clock = new ManualClock(0);
        let timer: (() => void) | null = null;
        const occupancy = createOccupancyStore();
        const admission = new Admission({
          clock,
          occupancy,
          log: createLogger('silent'),
          retryAfterSeconds: 1,
          timers: { setTimeout: (fn) => (timer = fn), clearTimeout: () => (timer = null) },
        });
        GATES.forEach(([kind, id], i) =>
          admission.register(kind, id, id, caps[i]!, kind === 'service' ? SERVICES.find((s) => s.id === id)!.serverId : null),
        );
        // Failures are collected, not thrown: a throw inside a listener or a callback is swallowed.
        const violations: string[] = [];
        // The cap holds at every moment a count goes up.
        let previous: Record<string, number> = {};
        occupancy.subscribe(({ context }) => {
          for (const [key, gate] of Object.entries(context.gates)) {
            if (gate.activeUsers > (previous[key] ?? 0) && gate.activeUsers > gate.maxUsers) {
              violations.push(`${key} went to ${gate.activeUsers} over its cap ${gate.maxUsers}`);
            }
          }
          previous = Object.fromEntries(Object.entries(context.gates).map(([k, g]) => [k, g.activeUsers]));
        });
        const gates = () => occupancy.getSnapshot().context.gates;

        const admitted: { sessionId: string; service: number; order: number }[] = [];
        const admittedOrder: number[][] = [[], [], []];
        const pending = new Set<Promise<void>>();
        /** Requests not answered yet, by order of arrival. */
        const waiting = new Map<number, { service: number; order: number }>();
        let opened = 0;
        for (const step of operations) {
          if (step.op === 'open') {
            const order = opened++;
            const sessionId = `r${order}`;
            const service = SERVICES[step.service]!;
            waiting.set(order, { service: step.service, order });
            const attempt = admission
              .admit({ sessionId, serviceId: service.id, serverId: service.serverId, waitMs: step.waitMs })
              .then(
                () => {
                  admitted.push({ sessionId, service: step.service, order });
                  admittedOrder[step.service]!.push(order);
                },
                (error: unknown) => {
                  const code = error instanceof AppError ? error.code : String(error);
                  if (code !== 'SERVICE_AT_CAPACITY' && code !== 'SERVER_AT_CAPACITY') violations.push(`r${order}: ${code}`);
                },
              )
              .finally(() => {
                pending.delete(attempt);
                waiting.delete(order);
              });
            pending.add(attempt);
          } else if (step.op === 'finish' && admitted.length > 0) {
            const [done] = admitted.splice(step.pick % admitted.length, 1);
            admission.release(done!.sessionId);
          } else if (step.op === 'cap') {
            const [kind, id] = GATES[step.gate]!;
            admission.setCapacity(kind, id, step.capacity);
          } else if (step.op === 'advance') {
            clock.advance(step.ms);
            (timer as (() => void) | null)?.();
          }
          await flush();
          const now = gates();
          const free = (key: string) => now[key]!.activeUsers < now[key]!.maxUsers;
          // Work-conserving: nobody waits while both the seats they need are free.
          for (const { service, order } of waiting.values()) {
            const { id, serverId } = SERVICES[service]!;
            if (free(`service:${id}`) && free(`server:${serverId}`)) violations.push(`r${order} waits with seats free at ${id} and ${serverId}`);
          }
          for (const gate of Object.values(now)) {
            // Counts agree with the sessions admitted: a request waiting holds no seat anywhere.
            const onGate = admitted.filter((a) =>
              gate.kind === 'service' ? SERVICES[a.service]!.id === gate.id : SERVICES[a.service]!.serverId === gate.id,
            ).length;
            if (gate.activeUsers !== onGate) violations.push(`${gate.id} counts ${gate.activeUsers} but ${onGate} sessions hold it`);
          }
          expect(violations).toEqual([]);
        }

        // Everyone leaves, every wait runs out: every count is back to zero.
        for (const session of admitted.splice(0)) admission.release(session.sessionId);
        clock.advance(10_000);
        (timer as (() => void) | null)?.();
        await flush();
        for (const session of admitted.splice(0)) admission.release(session.sessionId);
        await Promise.all(pending);
        expect(pending.size).toBe(0);
        expect(violations).toEqual([]);
        for (const gate of Object.values(occupancy.getSnapshot().context.gates)) {
          expect(gate.activeUsers, gate.id).toBe(0);
          expect(gate.queued, gate.id).toBe(0);
        }
        expect(admission.seatCount).toBe(0);
        // First in, first out: per service, sessions are admitted in the order they asked.
        for (const orders of admittedOrder) expect(orders).toEqual([...orders].sort((a, b) => a - b));
        admission.close();
      }),
      { numRuns: runs(300), seed: SEED },
    );
  });
});
