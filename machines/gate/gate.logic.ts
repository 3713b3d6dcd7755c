/**
 * The seats of one gate (a server or a service): pure functions over plain data, so the
 * machine, the property test and the inspector all see the same rules. A gate counts seats
 * and keeps the line of requests waiting for one. It never hands a freed seat on by itself:
 * a session needs a seat of its service and one of its server at once, so which waiter a
 * freed seat goes to is decided by the coordinator (src/admission), which sees both gates
 * and takes both seats in one step. Which session holds which seats is the coordinator's
 * routing table too, so a release is O(1) however many seats a gate has.
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
  /**
   * The longest the queue may grow (DESIGN rule 16): a request it keeps out beyond it is refused
   * at once. Requests kept out by their other gate may stand past it (see enqueue).
   */
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

/** Takes a seat for the request if one is free (leaving the line if it stood in it); refuses it otherwise. */
export function take(gate: GateContext, requestId: string): GateDecisions {
  if (seatsFree(gate) === 0) return { context: gate, granted: [], rejected: [requestId] };
  const queue = gate.queue.some((q) => q.requestId === requestId) ? gate.queue.filter((q) => q.requestId !== requestId) : gate.queue;
  return { context: { ...gate, used: gate.used + 1, queue }, granted: [requestId], rejected: [] };
}

/**
 * Puts a request at the end of the line until `waitUntil`. Refused at once when it may not wait
 * at all, and `overflowed` when the line is as long as it may be. A request that stands here
 * only to keep its place (it waits for its other gate's seat, this one has one free) joins
 * whatever the line's length (`bounded: false`): the bound is kept by the gate that holds it
 * out, so one full service cannot fill its server's line for the others.
 */
export function enqueue(gate: GateContext, request: { requestId: string; at: number; waitUntil: number; bounded?: boolean | undefined }): GateDecisions {
  if (request.waitUntil <= request.at) return { context: gate, granted: [], rejected: [request.requestId] };
  if (request.bounded !== false && gate.queue.length >= gate.maxQueue) return { context: gate, granted: [], rejected: [], overflowed: [request.requestId] };
  const queued = { requestId: request.requestId, queuedAt: request.at, expiresAt: request.waitUntil };
  return { context: { ...gate, queue: [...gate.queue, queued] }, granted: [], rejected: [] };
}

/** Gives a seat back; whoever waits for it is served by the coordinator. */
export function release(gate: GateContext): GateContext {
  return { ...gate, used: Math.max(0, gate.used - 1) };
}

/** Takes a waiting request out of the line (its caller gave up, or it was refused elsewhere). */
export function withdraw(gate: GateContext, requestId: string): GateContext {
  const queue = gate.queue.filter((q) => q.requestId !== requestId);
  return queue.length === gate.queue.length ? gate : { ...gate, queue };
}

export function setCapacity(gate: GateContext, capacity: number): GateContext {
  return { ...gate, capacity };
}

/** Refuses every waiter whose wait is over at `at`. */
export function expire(gate: GateContext, at: number): GateDecisions {
  const rejected = gate.queue.filter((q) => q.expiresAt <= at).map((q) => q.requestId);
  if (rejected.length === 0) return { context: gate, granted: [], rejected };
  return { context: { ...gate, queue: gate.queue.filter((q) => q.expiresAt > at) }, granted: [], rejected };
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
