import { type Actor, createActor, type InspectionEvent } from 'xstate';
import { gateMachine, nextExpiry, type GateContext } from '../../machines/gate/index.js';
import type { Clock } from '../clock.js';
import { errors } from '../errors.js';
import type { Logger } from '../logger.js';
import { DeadlineScheduler, type Timers } from '../time/deadline-scheduler.js';
import { CustomerLoad, type CustomerEstimates } from './customer-load.js';
import type { OccupancyStore, ServerLoad } from './occupancy.js';

type GateActor = Actor<typeof gateMachine>;
type Kind = 'server' | 'service';
/**
 * `withdrawn`: the process is shutting down and gave up the wait; `abandoned`: the client went
 * away; `overflowed`: the gate's queue is as long as it may be.
 */
type Outcome = 'granted' | 'rejected' | 'overflowed' | 'withdrawn' | 'abandoned';

export interface SeatRequest {
  sessionId: string;
  /** Whose open it is: an account may have only so many waiting at once. */
  accountId?: string | undefined;
  serviceId: string;
  serverId: string;
  /** How long the request may queue for a seat; 0 rejects at once when a gate is full. */
  waitMs: number;
  /** Aborted when the client goes away: a request still queued gives its place up. */
  signal?: AbortSignal | undefined;
}

/** The client went away while its request waited for a seat; nobody is left to answer. */
export class ClientGoneError extends Error {
  constructor() {
    super('the client went away');
    this.name = 'ClientGoneError';
  }
}

interface Seat {
  serviceId: string;
  serverId: string;
  accountId: string | null;
}

const keyOf = (kind: Kind, id: string) => `${kind}:${id}`;

/**
 * Routes admissions between sessions and the gates (DESIGN rule 6): a session runs only with
 * a seat from its service gate and one from its server gate. Seats are taken in one order
 * (service, then server); a seat granted by one gate and refused by the other is given back
 * before the answer, so the gates never disagree about a session.
 */
export class Admission {
  private readonly gates = new Map<string, { actor: GateActor; name: string; serverId: string | null }>();
  private readonly waiters = new Map<string, (outcome: Outcome) => void>();
  /** Requests waiting in a gate's queue: waiter key → the gate and the request. */
  private readonly queued = new Map<string, { gate: GateActor; requestId: string }>();
  private readonly seats = new Map<string, Seat>();
  private readonly load = new CustomerLoad();
  private readonly scheduler: DeadlineScheduler;
  /** Requests waiting for a seat, per account. */
  private readonly waitingByAccount = new Map<string, number>();

  constructor(
    private readonly deps: {
      clock: Clock;
      occupancy: OccupancyStore;
      log: Logger;
      retryAfterSeconds: number;
      /** The longest queue of one gate (ADMISSION_MAX_QUEUE); unbounded when left out. */
      maxQueuePerGate?: number;
      /** Requests of one account that may wait at once (MAX_QUEUED_OPENS_PER_ACCOUNT); unbounded when left out. */
      maxQueuedPerAccount?: number;
      timers?: Timers;
      inspect?: ((event: InspectionEvent) => void) | undefined;
    },
  ) {
    this.scheduler = new DeadlineScheduler(
      deps.clock,
      (key) => this.gates.get(key)?.actor.send({ type: 'EXPIRE', at: deps.clock.now() }),
      deps.timers,
    );
  }

  /** Creates the gate of a server or a service (or renames it if it exists). */
  register(kind: Kind, id: string, name: string, maxUsers: number, serverId: string | null = null): void {
    const key = keyOf(kind, id);
    const existing = this.gates.get(key);
    if (existing) {
      existing.name = name;
      existing.actor.send({ type: 'SET_CAPACITY', capacity: maxUsers });
      return;
    }
    const actor = createActor(gateMachine, {
      input: { gateId: id, kind, capacity: maxUsers, ...(this.deps.maxQueuePerGate !== undefined && { maxQueue: this.deps.maxQueuePerGate }) },
      ...(this.deps.inspect && { inspect: this.deps.inspect }),
    });
    const entry = { actor, name, serverId };
    this.gates.set(key, entry);
    actor.on('granted', (event) => this.waiters.get(`${key}|${event.requestId}`)?.('granted'));
    actor.on('rejected', (event) => this.waiters.get(`${key}|${event.requestId}`)?.('rejected'));
    actor.on('overflowed', (event) => this.waiters.get(`${key}|${event.requestId}`)?.('overflowed'));
    actor.subscribe({
      next: (snapshot) => this.publish(key, entry, snapshot.context),
      error: (error) => this.deps.log.error({ gate: key, err: String(error) }, 'gate actor failed'),
    });
    actor.start();
    this.publish(key, entry, actor.getSnapshot().context);
  }

  rename(kind: Kind, id: string, name: string): void {
    const entry = this.gates.get(keyOf(kind, id));
    if (!entry) return;
    entry.name = name;
    this.publish(keyOf(kind, id), entry, entry.actor.getSnapshot().context);
  }

  setCapacity(kind: Kind, id: string, maxUsers: number): void {
    this.gate(kind, id).send({ type: 'SET_CAPACITY', capacity: maxUsers });
  }

  async admit(request: SeatRequest): Promise<void> {
    const at = this.deps.clock.now();
    // An account with as many requests waiting as it may have gets a seat only if one is free now.
    const quotaHit = request.accountId !== undefined && request.waitMs > 0 && this.waitingOf(request.accountId) >= (this.deps.maxQueuedPerAccount ?? Infinity);
    const waitUntil = quotaHit ? at : at + request.waitMs;
    // When no gate makes the request wait, both seats are decided in one synchronous step:
    // no other admission runs between the service's grant and the server's answer.
    if (request.signal?.aborted) throw new ClientGoneError();
    let waiting = false;
    const wait = async (pending: Promise<Outcome>) => {
      if (!waiting && request.accountId !== undefined) {
        waiting = true;
        this.waitingByAccount.set(request.accountId, this.waitingOf(request.accountId) + 1);
      }
      return pending;
    };
    try {
      let service = this.acquire('service', request.serviceId, request.sessionId, at, waitUntil, request.signal);
      if (service instanceof Promise) service = await wait(service);
      if (service !== 'granted') throw this.refusal('service', service, quotaHit);
      let server: Outcome | Promise<Outcome>;
      try {
        server = this.acquire('server', request.serverId, request.sessionId, this.deps.clock.now(), waitUntil, request.signal);
      } catch (error) {
        // No such server gate: the service's seat goes back before the answer.
        this.gate('service', request.serviceId).send({ type: 'RELEASE' });
        throw error;
      }
      if (server instanceof Promise) server = await wait(server);
      if (server !== 'granted') {
        this.gate('service', request.serviceId).send({ type: 'RELEASE' });
        throw this.refusal('server', server, quotaHit);
      }
      this.seats.set(request.sessionId, { serviceId: request.serviceId, serverId: request.serverId, accountId: null });
    } finally {
      if (waiting && request.accountId !== undefined) {
        const left = this.waitingOf(request.accountId) - 1;
        if (left > 0) this.waitingByAccount.set(request.accountId, left);
        else this.waitingByAccount.delete(request.accountId);
      }
    }
  }

  private waitingOf(accountId: string): number {
    return this.waitingByAccount.get(accountId) ?? 0;
  }

  /** Counts the customer of an admitted session in its server's load. */
  connect(sessionId: string, customer: CustomerEstimates): void {
    const seat = this.seats.get(sessionId);
    if (!seat || seat.accountId !== null) return;
    seat.accountId = customer.accountId;
    const load = this.load.connect(seat.serverId, customer);
    this.deps.occupancy.trigger.loadChanged({ serverId: seat.serverId, load });
  }

  /** Gives both seats of a session back; a second call does nothing. */
  release(sessionId: string): void {
    const seat = this.seats.get(sessionId);
    if (!seat) return;
    this.seats.delete(sessionId);
    if (seat.accountId !== null) {
      const load = this.load.disconnect(seat.serverId, seat.accountId);
      this.deps.occupancy.trigger.loadChanged({ serverId: seat.serverId, load });
    }
    this.gates.get(keyOf('service', seat.serviceId))?.actor.send({ type: 'RELEASE' });
    this.gates.get(keyOf('server', seat.serverId))?.actor.send({ type: 'RELEASE' });
  }

  /** On start-up: the seats a restored session held before the restart (and its customer, when known). */
  restoreSeat(sessionId: string, serviceId: string, serverId: string, customer: CustomerEstimates | null): void {
    if (this.seats.has(sessionId)) return;
    this.gate('service', serviceId).send({ type: 'RESTORE_SEAT' });
    this.gate('server', serverId).send({ type: 'RESTORE_SEAT' });
    this.seats.set(sessionId, { serviceId, serverId, accountId: null });
    if (customer) this.connect(sessionId, customer);
  }

  /**
   * restoreSeat for many sessions at once (a restart's batch of rows): each gate counts them in
   * one event, and each server's load is published once.
   */
  restoreSeats(seats: readonly { sessionId: string; serviceId: string; serverId: string; customer: CustomerEstimates | null }[]): void {
    // Counted per service, then per server: a batch of a thousand rows names a few gates.
    const perService = new Map<string, { serverId: string; count: number }[]>();
    const loads = new Map<string, ServerLoad>();
    for (const { sessionId, serviceId, serverId, customer } of seats) {
      if (this.seats.has(sessionId)) continue;
      let servers = perService.get(serviceId);
      if (!servers) {
        // An unknown gate is refused before anything is counted, as restoreSeat would be.
        this.gate('service', serviceId);
        perService.set(serviceId, (servers = []));
      }
      let entry = servers.find((s) => s.serverId === serverId);
      if (!entry) {
        this.gate('server', serverId);
        servers.push((entry = { serverId, count: 0 }));
      }
      entry.count++;
      this.seats.set(sessionId, { serviceId, serverId, accountId: customer?.accountId ?? null });
      if (customer) loads.set(serverId, this.load.connect(serverId, customer));
    }
    const perServer = new Map<string, number>();
    for (const [serviceId, servers] of perService) {
      this.gate('service', serviceId).send({ type: 'RESTORE_SEAT', count: servers.reduce((n, s) => n + s.count, 0) });
      for (const { serverId, count } of servers) perServer.set(serverId, (perServer.get(serverId) ?? 0) + count);
    }
    for (const [serverId, count] of perServer) this.gate('server', serverId).send({ type: 'RESTORE_SEAT', count });
    for (const [serverId, load] of loads) this.deps.occupancy.trigger.loadChanged({ serverId, load });
  }

  holds(sessionId: string): boolean {
    return this.seats.has(sessionId);
  }

  get seatCount(): number {
    return this.seats.size;
  }

  /**
   * Shutting down: every request queued for a seat leaves its gate's queue and is answered
   * SHUTTING_DOWN now, instead of holding the shutdown for the rest of its wait.
   */
  withdrawWaiting(): void {
    for (const [waiterKey, { gate, requestId }] of [...this.queued]) {
      gate.send({ type: 'WITHDRAW', requestId });
      this.waiters.get(waiterKey)?.('withdrawn');
    }
  }

  close(): void {
    this.withdrawWaiting();
    this.scheduler.close();
    for (const { actor } of this.gates.values()) actor.stop();
  }

  private refusal(kind: Kind, outcome: Exclude<Outcome, 'granted'>, quotaHit: boolean): Error {
    if (outcome === 'abandoned') return new ClientGoneError();
    if (outcome === 'withdrawn') return errors.shuttingDown();
    if (outcome === 'overflowed') return errors.queueFull(kind, this.deps.retryAfterSeconds);
    if (quotaHit) return errors.queueQuotaReached(this.deps.maxQueuedPerAccount!);
    return kind === 'service' ? errors.serviceAtCapacity(this.deps.retryAfterSeconds) : errors.serverAtCapacity(this.deps.retryAfterSeconds);
  }

  /** The gate's answer: at once when it decides during the send, later when the request queues. */
  private acquire(kind: Kind, id: string, requestId: string, at: number, waitUntil: number, signal?: AbortSignal): Outcome | Promise<Outcome> {
    const key = keyOf(kind, id);
    const gate = this.gate(kind, id);
    const waiterKey = `${key}|${requestId}`;
    let decided: Outcome | null = null;
    let resolveLater: ((outcome: Outcome) => void) | null = null;
    this.waiters.set(waiterKey, (outcome) => {
      this.waiters.delete(waiterKey);
      this.queued.delete(waiterKey);
      if (resolveLater) resolveLater(outcome);
      else decided = outcome;
    });
    gate.send({ type: 'ACQUIRE', requestId, at, waitUntil });
    if (decided !== null) return decided;
    this.queued.set(waiterKey, { gate, requestId });
    // A client that hangs up while queued gives its place to the next one.
    const abandon = () => {
      if (!this.queued.has(waiterKey)) return;
      gate.send({ type: 'WITHDRAW', requestId });
      this.waiters.get(waiterKey)?.('abandoned');
    };
    signal?.addEventListener('abort', abandon, { once: true });
    return new Promise<Outcome>((resolve) => {
      resolveLater = (outcome) => {
        signal?.removeEventListener('abort', abandon);
        resolve(outcome);
      };
    });
  }

  private gate(kind: Kind, id: string): GateActor {
    const entry = this.gates.get(keyOf(kind, id));
    if (!entry) throw kind === 'service' ? errors.serviceNotFound() : errors.serverNotFound();
    return entry.actor;
  }

  private publish(key: string, entry: { name: string; serverId: string | null }, gate: GateContext): void {
    const expiry = nextExpiry(gate);
    if (expiry === null) this.scheduler.cancel(key);
    else this.scheduler.schedule(key, expiry);
    this.deps.occupancy.trigger.gateChanged({
      occupancy: {
        kind: gate.kind,
        id: gate.gateId,
        name: entry.name,
        serverId: entry.serverId,
        maxUsers: gate.capacity,
        activeUsers: gate.used,
        queued: gate.queue.length,
        oldestQueuedAt: gate.queue[0]?.queuedAt ?? null,
      },
    });
  }
}
