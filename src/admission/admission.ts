import { type Actor, createActor, type InspectionEvent } from 'xstate';
import { gateMachine, nextExpiry, seatsFree, type GateContext } from '../../machines/gate/index.js';
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

interface Gate {
  key: string;
  kind: Kind;
  actor: GateActor;
  name: string;
  serverId: string | null;
}

/** A request standing in the lines of both its gates, holding neither's seat. */
interface Waiter {
  request: SeatRequest;
  service: Gate;
  server: Gate;
  /** Answers the request; `kind` names the gate that refused it. */
  answer: (outcome: Outcome, kind: Kind) => void;
}

const keyOf = (kind: Kind, id: string) => `${kind}:${id}`;

/**
 * Routes admissions between sessions and the gates (DESIGN rule 6): a session runs only with
 * a seat from its service gate and one from its server gate, and it takes both in one
 * synchronous step, or neither. A request that must wait stands in the lines of both gates
 * holding no seat, so a service never counts a user it does not have. Each time seats free up
 * (a release, a raised cap) the lines are served in arrival order: a waiter is admitted as
 * soon as both of its gates have a seat, and one whose own gate is still full lets those
 * behind it that need other seats go first. Serving is one synchronous walk, so no chain of
 * hand-overs runs between waiters.
 */
export class Admission {
  private readonly gates = new Map<string, Gate>();
  private readonly waiting = new Map<string, Waiter>();
  /** The gate and request whose answer a synchronous send is waiting for. */
  private asking: { key: string; requestId: string; outcome: Outcome | null } | null = null;
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

  /** Creates the gate of a server or a service (or renames it and sets its cap if it exists). */
  register(kind: Kind, id: string, name: string, maxUsers: number, serverId: string | null = null): void {
    const key = keyOf(kind, id);
    const existing = this.gates.get(key);
    if (existing) {
      existing.name = name;
      this.setCapacity(kind, id, maxUsers);
      return;
    }
    const actor = createActor(gateMachine, {
      input: { gateId: id, kind, capacity: maxUsers, ...(this.deps.maxQueuePerGate !== undefined && { maxQueue: this.deps.maxQueuePerGate }) },
      ...(this.deps.inspect && { inspect: this.deps.inspect }),
    });
    const gate: Gate = { key, kind, actor, name, serverId };
    this.gates.set(key, gate);
    actor.on('granted', (event) => this.heard(gate, event.requestId, 'granted'));
    actor.on('rejected', (event) => this.heard(gate, event.requestId, 'rejected'));
    actor.on('overflowed', (event) => this.heard(gate, event.requestId, 'overflowed'));
    actor.subscribe({
      next: (snapshot) => this.publish(gate, snapshot.context),
      error: (error) => this.deps.log.error({ gate: key, err: String(error) }, 'gate actor failed'),
    });
    actor.start();
    this.publish(gate, actor.getSnapshot().context);
  }

  rename(kind: Kind, id: string, name: string): void {
    const gate = this.gates.get(keyOf(kind, id));
    if (!gate) return;
    gate.name = name;
    this.publish(gate, gate.actor.getSnapshot().context);
  }

  setCapacity(kind: Kind, id: string, maxUsers: number): void {
    const gate = this.gate(kind, id);
    gate.actor.send({ type: 'SET_CAPACITY', capacity: maxUsers });
    this.serve(gate);
  }

  async admit(request: SeatRequest): Promise<void> {
    const at = this.deps.clock.now();
    if (request.signal?.aborted) throw new ClientGoneError();
    const service = this.gate('service', request.serviceId);
    const server = this.gate('server', request.serverId);
    // Everyone still waiting needs a seat one of their gates lacks (each change of seats serves
    // the lines at once), so a request whose gates both have one takes them now.
    if (this.free(service) && this.free(server)) {
      this.take(request, service, server);
      return;
    }
    // An account with as many requests waiting as it may have gets a seat only if one is free now.
    const quotaHit = request.accountId !== undefined && request.waitMs > 0 && this.waitingOf(request.accountId) >= (this.deps.maxQueuedPerAccount ?? Infinity);
    const waitUntil = quotaHit ? at : at + request.waitMs;
    const blockedOn = this.blockedOn(service);
    if (waitUntil <= at) throw this.refusal(blockedOn, 'rejected', quotaHit);
    // It stands in both lines, to keep its place at each; only the gate keeping it out may refuse it a place.
    const queued = { requestId: request.sessionId, at, waitUntil };
    if (this.ask(service, { type: 'QUEUE', ...queued, bounded: blockedOn === 'service' }) === 'overflowed') throw this.refusal('service', 'overflowed', false);
    if (this.ask(server, { type: 'QUEUE', ...queued, bounded: blockedOn === 'server' }) === 'overflowed') {
      service.actor.send({ type: 'WITHDRAW', requestId: request.sessionId });
      throw this.refusal('server', 'overflowed', false);
    }
    const { outcome, kind } = await new Promise<{ outcome: Outcome; kind: Kind }>((resolve) => {
      const abandon = () => this.waiting.get(request.sessionId)?.answer('abandoned', 'service');
      if (request.accountId !== undefined) this.waitingByAccount.set(request.accountId, this.waitingOf(request.accountId) + 1);
      this.waiting.set(request.sessionId, {
        request,
        service,
        server,
        answer: (outcome, kind) => {
          this.waiting.delete(request.sessionId);
          if (outcome !== 'granted') {
            service.actor.send({ type: 'WITHDRAW', requestId: request.sessionId });
            server.actor.send({ type: 'WITHDRAW', requestId: request.sessionId });
          }
          if (request.accountId !== undefined) {
            const left = this.waitingOf(request.accountId) - 1;
            if (left > 0) this.waitingByAccount.set(request.accountId, left);
            else this.waitingByAccount.delete(request.accountId);
          }
          request.signal?.removeEventListener('abort', abandon);
          resolve({ outcome, kind });
        },
      });
      // A client that hangs up while queued gives its place to the next one.
      request.signal?.addEventListener('abort', abandon, { once: true });
    });
    if (outcome !== 'granted') throw this.refusal(kind, outcome, false);
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
    const service = this.gates.get(keyOf('service', seat.serviceId));
    const server = this.gates.get(keyOf('server', seat.serverId));
    service?.actor.send({ type: 'RELEASE' });
    server?.actor.send({ type: 'RELEASE' });
    // Every waiter for the service stands in its server's line too, so that walk serves them all
    // unless the service moved to another server while they waited.
    if (server) this.serve(server);
    if (service) this.serve(service);
  }

  /** On start-up: the seats a restored session held before the restart (and its customer, when known). */
  restoreSeat(sessionId: string, serviceId: string, serverId: string, customer: CustomerEstimates | null): void {
    if (this.seats.has(sessionId)) return;
    this.gate('service', serviceId).actor.send({ type: 'RESTORE_SEAT' });
    this.gate('server', serverId).actor.send({ type: 'RESTORE_SEAT' });
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
      this.gate('service', serviceId).actor.send({ type: 'RESTORE_SEAT', count: servers.reduce((n, s) => n + s.count, 0) });
      for (const { serverId, count } of servers) perServer.set(serverId, (perServer.get(serverId) ?? 0) + count);
    }
    for (const [serverId, count] of perServer) this.gate('server', serverId).actor.send({ type: 'RESTORE_SEAT', count });
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
    for (const waiter of [...this.waiting.values()]) waiter.answer('withdrawn', 'service');
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

  /** Sends a request's event to a gate and returns the gate's answer to it during that send, if any. */
  private ask(gate: Gate, event: { type: 'TAKE'; requestId: string } | { type: 'QUEUE'; requestId: string; at: number; waitUntil: number; bounded: boolean }): Outcome | null {
    const asking = { key: gate.key, requestId: event.requestId, outcome: null as Outcome | null };
    this.asking = asking;
    try {
      gate.actor.send(event);
    } finally {
      this.asking = null;
    }
    return asking.outcome;
  }

  /** A gate's answer: to the send in progress, or a waiter's wait running out. */
  private heard(gate: Gate, requestId: string, outcome: Outcome): void {
    const asking = this.asking;
    if (asking && asking.key === gate.key && asking.requestId === requestId) {
      asking.outcome = outcome;
      return;
    }
    // Waits run out in both lines at the same instant; the first to say so answers.
    if (outcome === 'rejected') {
      const waiter = this.waiting.get(requestId);
      waiter?.answer('rejected', this.blockedOn(waiter.service));
    }
  }

  /** Takes both seats of a request in one step; the caller has seen both free. */
  private take(request: SeatRequest, service: Gate, server: Gate): void {
    const fromService = this.ask(service, { type: 'TAKE', requestId: request.sessionId });
    const fromServer = this.ask(server, { type: 'TAKE', requestId: request.sessionId });
    if (fromService !== 'granted' || fromServer !== 'granted') {
      // Not reachable while both were free; if it were, no seat is kept half-taken.
      if (fromService === 'granted') service.actor.send({ type: 'RELEASE' });
      if (fromServer === 'granted') server.actor.send({ type: 'RELEASE' });
      throw new Error(`gates ${service.key} and ${server.key} disagreed about free seats`);
    }
    this.seats.set(request.sessionId, { serviceId: request.serviceId, serverId: request.serverId, accountId: null });
  }

  /**
   * Admits, in arrival order, every waiter in this gate's line whose two gates both have a seat
   * now. One synchronous walk: a grant only takes seats, so it can free nothing for a later one.
   */
  private serve(gate: Gate): void {
    for (const { requestId } of gate.actor.getSnapshot().context.queue) {
      if (!this.free(gate)) return;
      const waiter = this.waiting.get(requestId);
      if (!waiter || !this.free(waiter.service) || !this.free(waiter.server)) continue;
      this.take(waiter.request, waiter.service, waiter.server);
      waiter.answer('granted', 'service');
    }
  }

  private free(gate: Gate): boolean {
    return seatsFree(gate.actor.getSnapshot().context) > 0;
  }

  /** The gate a request that cannot have both seats is refused by: its service when that is full. */
  private blockedOn(service: Gate): Kind {
    return this.free(service) ? 'server' : 'service';
  }

  private gate(kind: Kind, id: string): Gate {
    const gate = this.gates.get(keyOf(kind, id));
    if (!gate) throw kind === 'service' ? errors.serviceNotFound() : errors.serverNotFound();
    return gate;
  }

  private publish(gate: Gate, context: GateContext): void {
    const expiry = nextExpiry(context);
    if (expiry === null) this.scheduler.cancel(gate.key);
    else this.scheduler.schedule(gate.key, expiry);
    this.deps.occupancy.trigger.gateChanged({
      occupancy: {
        kind: context.kind,
        id: context.gateId,
        name: gate.name,
        serverId: gate.serverId,
        maxUsers: context.capacity,
        activeUsers: context.used,
        queued: context.queue.length,
        oldestQueuedAt: context.queue[0]?.queuedAt ?? null,
      },
    });
  }
}
