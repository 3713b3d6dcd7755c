/**
 * The seats of one gate (a server or a service): pure functions over plain data, so the
 * machine, the property test and the inspector all see the same rules. A gate counts seats
 * and queues waiters; which session holds which seats is the coordinator's routing table,
 * so a release is O(1) however many seats a gate has.
 */
export interface QueuedRequest {
  requestId: string;
  queuedAt: number;
  /** Instant after which the request stops waiting and is rejected. */
  expiresAt: number;
}

export interface GateContext {
  gateId: string;
  kind: 'server' | 'service';
  capacity: number;
  used: number;
  /** First in, first out. */
  queue: QueuedRequest[];
  /** The longest the queue may grow (DESIGN rule 16): a request beyond it is refused at once. */
  maxQueue: number;
}

export interface GateDecisions {
  context: GateContext;
  granted: string[];
  /** Refused: the gate is full and the request may not wait, or its wait ran out. */
  rejected: string[];
  /** Refused at once: it would wait, but the queue is as long as it may be. */
  overflowed?: string[];
}

export function emptyGate(gateId: string, kind: 'server' | 'service', capacity: number, maxQueue = Number.POSITIVE_INFINITY): GateContext {
  return { gateId, kind, capacity, used: 0, queue: [], maxQueue };
}

/** Seats free now; never negative: a cap lowered below the count just admits no one. */
export const seatsFree = (gate: GateContext) => Math.max(0, gate.capacity - gate.used);

export function acquire(gate: GateContext, request: { requestId: string; at: number; waitUntil: number }): GateDecisions {
  // Nobody jumps the queue: a free seat goes to the oldest waiter first.
  if (gate.queue.length === 0 && seatsFree(gate) > 0) {
    return { context: { ...gate, used: gate.used + 1 }, granted: [request.requestId], rejected: [] };
  }
  if (request.waitUntil > request.at) {
    if (gate.queue.length >= gate.maxQueue) return { context: gate, granted: [], rejected: [], overflowed: [request.requestId] };
    const queued = { requestId: request.requestId, queuedAt: request.at, expiresAt: request.waitUntil };
    return { context: { ...gate, queue: [...gate.queue, queued] }, granted: [], rejected: [] };
  }
  return { context: gate, granted: [], rejected: [request.requestId] };
}

/** Gives a seat back, then serves the queue. */
export function release(gate: GateContext): GateDecisions {
  return serve({ ...gate, used: Math.max(0, gate.used - 1) });
}

/** Takes a waiting request out of the queue (its caller gave up). */
export function withdraw(gate: GateContext, requestId: string): GateDecisions {
  const queue = gate.queue.filter((q) => q.requestId !== requestId);
  return { context: queue.length === gate.queue.length ? gate : { ...gate, queue }, granted: [], rejected: [] };
}

export function setCapacity(gate: GateContext, capacity: number): GateDecisions {
  return serve({ ...gate, capacity });
}

/** Rejects every waiter whose wait is over at `at`. */
export function expire(gate: GateContext, at: number): GateDecisions {
  const rejected = gate.queue.filter((q) => q.expiresAt <= at).map((q) => q.requestId);
  if (rejected.length === 0) return { context: gate, granted: [], rejected };
  const decisions = serve({ ...gate, queue: gate.queue.filter((q) => q.expiresAt > at) });
  return { ...decisions, rejected: [...rejected, ...decisions.rejected] };
}

/** Seats held before a restart, taken back without asking (they may exceed a capacity lowered since). */
export function restoreSeat(gate: GateContext, count = 1): GateContext {
  return { ...gate, used: gate.used + count };
}

export function nextExpiry(gate: GateContext): number | null {
  let earliest: number | null = null;
  for (const q of gate.queue) if (earliest === null || q.expiresAt < earliest) earliest = q.expiresAt;
  return earliest;
}

/** Gives free seats to the oldest waiters. Every caller hands it a fresh context, so it builds one too. */
function serve(gate: GateContext): GateDecisions {
  const admitted = gate.queue.slice(0, seatsFree(gate));
  return {
    context: { ...gate, used: gate.used + admitted.length, queue: gate.queue.slice(admitted.length) },
    granted: admitted.map((q) => q.requestId),
    rejected: [],
  };
}
