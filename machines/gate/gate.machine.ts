import { assign, enqueueActions, setup } from 'xstate';
import * as logic from './gate.logic.js';
import type { GateContext, GateDecisions } from './gate.logic.js';

export type GateEvent =
  | { type: 'TAKE'; requestId: string }
  | { type: 'QUEUE'; requestId: string; at: number; waitUntil: number; bounded?: boolean }
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
 * One admission gate: a server's or a service's cap on concurrent users. It grants a seat
 * while one is free and keeps the line of those waiting, first in, first out, telling the
 * coordinator by emitting `granted` / `rejected` / `overflowed`. A freed seat is not handed
 * on here: the coordinator serves the line, since a waiter needs its service's and its
 * server's seat at once. Queue deadlines are data (nextExpiry) that it schedules, as for
 * sessions.
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
        TAKE: { actions: enqueueActions(({ context, event, enqueue }) => apply(enqueue, context, logic.take(context, event.requestId))) },
        QUEUE: { actions: enqueueActions(({ context, event, enqueue }) => apply(enqueue, context, logic.enqueue(context, event))) },
        RELEASE: { actions: assign(({ context }) => logic.release(context)) },
        WITHDRAW: { actions: assign(({ context, event }) => logic.withdraw(context, event.requestId)) },
        SET_CAPACITY: { actions: assign(({ context, event }) => logic.setCapacity(context, event.capacity)) },
        EXPIRE: { actions: enqueueActions(({ context, event, enqueue }) => apply(enqueue, context, logic.expire(context, event.at))) },
        RESTORE_SEAT: { actions: assign(({ context, event }) => logic.restoreSeat(context, event.count ?? 1)) },
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
