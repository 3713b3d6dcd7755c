import { enqueueActions, setup } from 'xstate';
import * as logic from './gate.logic.js';
import type { GateContext, GateDecisions } from './gate.logic.js';

export type GateEvent =
  | { type: 'ACQUIRE'; requestId: string; at: number; waitUntil: number }
  | { type: 'RELEASE' }
  | { type: 'WITHDRAW'; requestId: string }
  | { type: 'SET_CAPACITY'; capacity: number }
  | { type: 'EXPIRE'; at: number }
  | { type: 'RESTORE_SEAT'; count?: number };

export type GateEmitted =
  | { type: 'granted'; requestId: string; gateId: string }
  | { type: 'rejected'; requestId: string; gateId: string }
  | { type: 'overflowed'; requestId: string; gateId: string };

/**
 * One admission gate: a server's or a service's cap on concurrent users. It grants seats
 * first in, first out, and tells the supervisor by emitting `granted` / `rejected`; queue
 * deadlines are data (nextExpiry) that the supervisor schedules, as for sessions.
 */
export const gateMachine = setup({
  types: {
    context: {} as GateContext,
    input: {} as { gateId: string; kind: 'server' | 'service'; capacity: number; maxQueue?: number },
    events: {} as GateEvent,
    emitted: {} as GateEmitted,
  },
}).createMachine({
  id: 'gate',
  context: ({ input }) => logic.emptyGate(input.gateId, input.kind, input.capacity, input.maxQueue),
  initial: 'open',
  states: {
    open: {
      on: {
        ACQUIRE: { actions: enqueueActions(({ context, event, enqueue }) => apply(enqueue, context, logic.acquire(context, event))) },
        RELEASE: { actions: enqueueActions(({ context, enqueue }) => apply(enqueue, context, logic.release(context))) },
        WITHDRAW: {
          actions: enqueueActions(({ context, event, enqueue }) => apply(enqueue, context, logic.withdraw(context, event.requestId))),
        },
        SET_CAPACITY: {
          actions: enqueueActions(({ context, event, enqueue }) =>
            apply(enqueue, context, logic.setCapacity(context, event.capacity)),
          ),
        },
        EXPIRE: { actions: enqueueActions(({ context, event, enqueue }) => apply(enqueue, context, logic.expire(context, event.at))) },
        RESTORE_SEAT: {
          actions: enqueueActions(({ context, event, enqueue }) =>
            apply(enqueue, context, { context: logic.restoreSeat(context, event.count ?? 1), granted: [], rejected: [] }),
          ),
        },
      },
    },
  },
});

type Enqueue = Parameters<Parameters<typeof enqueueActions<GateContext, GateEvent, undefined, GateEvent, never, never, never, never, GateEmitted>>[0]>[0]['enqueue'];

function apply(enqueue: Enqueue, before: GateContext, decisions: GateDecisions): void {
  if (decisions.context !== before) enqueue.assign(() => decisions.context);
  for (const requestId of decisions.granted) enqueue.emit({ type: 'granted', requestId, gateId: before.gateId });
  for (const requestId of decisions.rejected) enqueue.emit({ type: 'rejected', requestId, gateId: before.gateId });
  for (const requestId of decisions.overflowed ?? []) enqueue.emit({ type: 'overflowed', requestId, gateId: before.gateId });
}
