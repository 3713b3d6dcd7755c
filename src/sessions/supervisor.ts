import { type Actor, createActor, type InspectionEvent, waitFor } from 'xstate';
import {
  deadlineOf,
  migrateSessionSnapshot,
  resolveSnapshot,
  SESSION_MACHINE_VERSION,
  sessionEventSchema,
  sessionMachine,
  stateNameOf,
  statePathOf,
  type SessionEvent,
  type SessionInput,
  type SessionSnapshot,
  type TaggedFacts,
} from '../../machines/session/index.js';
import type { Admission } from '../admission/admission.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import type { Logger } from '../logger.js';
import type { CardGateway } from '../payments/gateway.js';
import { DeadlineScheduler } from '../time/deadline-scheduler.js';
import { singleNode, type Ownership } from '../cluster/ownership.js';
import { sessionEffects } from './effects.js';
import type { Journal } from './journal.js';
import { loadUnsettled, quarantine, releaseQuarantine, type StoredSession, type UnsettledSession } from './session-rows.js';
import { factsOf, transitionRecordOf } from './transition-record.js';
import { writeTransition } from './transition-sql.js';

export interface SupervisorDeps {
  sql: Sql;
  journal: Journal;
  admission: Admission;
  clock: Clock;
  gateway: CardGateway;
  log: Logger;
  /** The XState inspector, when TOLLGATE_INSPECT is on. */
  inspect?: ((event: InspectionEvent) => void) | undefined;
  /** A session resting this long with nothing asked of it lets its actor go (0: only restored ones start cold). */
  coldAfterMs?: number;
  /** Which servers' sessions run here, and the epoch their writes carry (default: one node, every server). */
  ownership?: Ownership;
}

type SessionMachine = ReturnType<typeof sessionMachine.provide>;
export type SessionActor = Actor<SessionMachine>;

/** Why this process does not run a session: an operator decides (resume with `retry`). */
export interface Held {
  kind: 'write_failed' | 'unreadable';
  reason: string;
  stored: StoredSession;
  /** The newest state this process knew and could not write, to resume from. */
  pending: SessionSnapshot | null;
}

interface Hosted {
  /** The server it runs on: its sessions move between nodes with the server's lease. */
  serverId: string;
  /** Null when held, or cold: resting, its row the whole of it, its deadline still armed here. */
  actor: SessionActor | null;
  /** The last transition appended to the journal, and what the session was after it (null when cold). */
  seq: number;
  path: string;
  facts: TaggedFacts | null;
  held: Held | null;
  /** When something last happened to it (clock ms): a session idle long enough goes cold. */
  touchedAt: number;
  /** Commands waiting on it: it stays awake for them. */
  waiters: number;
  /** Its row being read to wake it. */
  waking: Promise<void> | null;
}

type SeatToRestore = Parameters<Admission['restoreSeats']>[0][number];

/** Path strings are few and every session holds one: one copy of each. */
const paths = new Map<string, string>();
const intern = (path: string) => {
  const known = paths.get(path);
  if (known !== undefined) return known;
  paths.set(path, path);
  return path;
};

/** "xstate.done.actor.capture" reads as "capture done" in the history. */
const eventLabel = (type: string) => {
  const invoked = /^xstate\.(done|error)\.actor\.(.+)$/.exec(type);
  return invoked ? `${invoked[2]} ${invoked[1]}` : type;
};

/** Longer than any call to the card company (its attempts, timeouts and backoff) can take. */
const LET_GO_REMEMBERED_MS = 120_000;

/**
 * Hosts the session actors (DESIGN: the supervisor only hosts): the routing table from session
 * id to actor, their lifecycle (create, start, stop when final and committed), their deadlines,
 * and restore. Each transition an actor takes is handed to the journal; commands and queries
 * live elsewhere and reach actors only through `awake`, `send` and `snapshotOf`.
 *
 * A session that rests (nothing in flight, nothing stuck) with nothing asked of it for
 * `coldAfterMs` lets its actor go: its committed row is all of it, and its deadline and seat
 * stay here. A command or its deadline wakes it from the row. Most sessions of a busy provider
 * are running quietly towards their cutoff, and this is what a million of them cost.
 */
export class Supervisor {
  private readonly hosted = new Map<string, Hosted>();
  /** Read with the account when a session opens, handed to its first authorization. */
  private readonly cardTokens = new Map<string, string>();
  private readonly scheduler: DeadlineScheduler;
  private readonly machine: SessionMachine;
  /** Cold sessions asked for in this tick: their rows are read in one statement. */
  private wakeBatch: Map<string, { resolve: () => void; reject: (error: unknown) => void }> | null = null;
  private coldSweep: NodeJS.Timeout | null = null;
  private readonly observers = new Set<(sessionId: string, snapshot: SessionSnapshot) => void>();
  readonly ownership: Ownership;

  /** The edge's requests of this process still waiting to be settled ("sessionId reservationId"): a restore leaves their units held. */
  readonly edgeInFlight = new Set<string>();

  constructor(private readonly deps: SupervisorDeps) {
    this.ownership = deps.ownership ?? singleNode;
    this.scheduler = new DeadlineScheduler(deps.clock, (sessionId) => this.onDeadline(sessionId));
    this.machine = sessionMachine.provide({
      actors: sessionEffects({
        ...deps,
        durable: (sessionId) => deps.journal.durable(sessionId),
        epochOf: (sessionId) => this.epochOfSession(sessionId),
        takeCardToken: (sessionId) => {
          const token = this.cardTokens.get(sessionId);
          this.cardTokens.delete(sessionId);
          return token;
        },
        leftRenewing: (sessionId) => !this.stopping && !this.letGoLately(sessionId),
      }),
    });
    const coldAfterMs = deps.coldAfterMs ?? 0;
    if (coldAfterMs > 0) {
      this.coldSweep = setInterval(() => this.sweepCold(), Math.max(1000, Math.floor(coldAfterMs / 2)));
      this.coldSweep.unref();
    }
  }

  get liveCount(): number {
    return this.hosted.size;
  }

  /** How many hosted sessions have an actor now (the rest are cold or held). */
  get awakeCount(): number {
    let awake = 0;
    for (const hosted of this.hosted.values()) if (hosted.actor) awake++;
    return awake;
  }

  has(sessionId: string): boolean {
    return this.hosted.has(sessionId);
  }

  /** The live snapshot, or null when the session has no actor here (cold, settled, held, or elsewhere). */
  snapshotOf(sessionId: string): SessionSnapshot | null {
    return this.hosted.get(sessionId)?.actor?.getSnapshot() ?? null;
  }

  /** The live snapshot, waking a cold session first; null when the session does not run here. */
  async awake(sessionId: string): Promise<SessionSnapshot | null> {
    const hosted = this.hosted.get(sessionId);
    if (!hosted || hosted.held) return null;
    // Counted as waiting while its row is read, so that no sweep lets it go before the caller has it.
    hosted.waiters++;
    try {
      if (!hosted.actor) await this.wake(sessionId, hosted);
    } finally {
      hosted.waiters--;
    }
    hosted.touchedAt = this.deps.clock.now();
    return this.snapshotOf(sessionId);
  }

  heldOf(sessionId: string): Held | null {
    return this.hosted.get(sessionId)?.held ?? null;
  }

  /** Every session hosted here by top-level state, for metrics: `snapshot` is null for a cold one. */
  *census(): IterableIterator<{ state: string; snapshot: SessionSnapshot | null }> {
    for (const hosted of this.hosted.values()) {
      if (hosted.held) continue;
      const snapshot = hosted.actor?.getSnapshot() ?? null;
      yield { state: snapshot ? stateNameOf(snapshot) : hosted.path.split('.')[0]!, snapshot };
    }
  }

  /**
   * Waits until `done(snapshot)` holds for the session's snapshot (waking it if cold), or the
   * timeout passes; the snapshot then, or null when the session does not run here.
   */
  async waitFor(sessionId: string, done: (snapshot: SessionSnapshot) => boolean, timeoutMs: number): Promise<SessionSnapshot | null> {
    const hosted = this.hosted.get(sessionId);
    const first = await this.awake(sessionId);
    const actor = hosted?.actor;
    if (!hosted || !first || !actor) return first;
    if (done(first)) return first;
    hosted.waiters++;
    try {
      await waitFor(actor, done, { timeout: timeoutMs }).catch(() => undefined);
    } finally {
      hosted.waiters--;
      hosted.touchedAt = this.deps.clock.now();
    }
    return actor.getSnapshot();
  }

  /** Called with every transition any session takes here (benchmarks and diagnostics); returns the way to stop. */
  observe(observer: (sessionId: string, snapshot: SessionSnapshot) => void): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  /** A new session's actor, created but not started: its initial snapshot is what the open writes. */
  create(input: SessionInput): SessionSnapshot {
    const actor = this.createActor(input.sessionId, { input });
    const snapshot = actor.getSnapshot();
    this.hosted.set(input.sessionId, this.entry(input.serverId, actor, 0, snapshot));
    return snapshot;
  }

  /** The stored form of a created session's first snapshot. */
  persistedInitial(sessionId: string): unknown {
    return this.hosted.get(sessionId)?.actor?.getPersistedSnapshot() ?? null;
  }

  /** The card token read with the account as the session opened, for its first authorization. */
  rememberCardToken(sessionId: string, token: string): void {
    this.cardTokens.set(sessionId, token);
  }

  /** Forgets a session that was created but whose open was refused before anything was written. */
  discard(sessionId: string): void {
    const hosted = this.hosted.get(sessionId);
    hosted?.actor?.stop();
    this.hosted.delete(sessionId);
    this.cardTokens.delete(sessionId);
    this.scheduler.cancel(sessionId);
  }

  start(sessionId: string): void {
    const actor = this.hosted.get(sessionId)?.actor;
    if (!actor) return;
    actor.start();
    this.arm(sessionId, actor.getSnapshot());
  }

  /** Sends one event to one awake session's actor; false when it has none here (see `awake`). */
  send(sessionId: string, event: SessionEvent): boolean {
    const hosted = this.hosted.get(sessionId);
    const actor = hosted?.actor;
    if (!hosted || !actor) return false;
    hosted.touchedAt = this.deps.clock.now();
    actor.send(sessionEventSchema.parse(event));
    return true;
  }

  /**
   * Brings back every session that had not finished (or only those given), re-arming deadlines
   * from stored instants. Rows come from a cursor in batches, so a restore of many sessions never
   * holds every stored snapshot at once; a resting one is kept cold (no actor), the others start.
   * A session already hosted here is left as it is; one this build cannot read, or whose writes
   * were failing, is held for an operator.
   */
  async restore(ids?: string[]): Promise<number> {
    return this.restoreRows(ids ? { ids } : {});
  }

  /** Brings back the unsettled sessions of a server whose lease this node has just taken. */
  async restoreServer(serverId: string): Promise<number> {
    return this.restoreRows({ servers: [serverId] });
  }

  private async restoreRows(filter: { ids?: string[]; servers?: string[] }): Promise<number> {
    let restored = 0;
    const orphaned: [string, string[]][] = [];
    for await (const rows of readAhead(loadUnsettled(this.deps.sql, filter))) {
      const seats: SeatToRestore[] = [];
      const started: string[] = [];
      for (const row of rows) {
        // Another node's sessions are its own to run (a lease names the node that runs a server).
        if (this.hosted.has(row.id) || !this.ownership.hosts(row.serverId)) continue;
        if (this.host(row, seats, started, orphaned)) restored++;
      }
      // Seats first, so that a session started here never gives back a seat it was not given.
      this.deps.admission.restoreSeats(seats);
      for (const id of started) this.start(id);
    }
    await this.releaseOrphanedRequests(orphaned);
    return restored;
  }

  /**
   * Reservations the edge made for requests in flight when the process that ran the session died
   * (or lost it): those requests died with it and will never be settled, so their units go back
   * now rather than holding the limit until the session ends (or holding a session at its limit
   * for the window for late uses).
   */
  private async releaseOrphanedRequests(orphaned: [string, string[]][]): Promise<void> {
    for (const [sessionId, reservations] of orphaned) {
      const snapshot = await this.awake(sessionId).catch(() => null);
      if (!snapshot) continue;
      for (const reservationId of reservations) {
        const event: SessionEvent = { type: 'RELEASE_USE', at: this.deps.clock.now(), reservationId };
        if (this.snapshotOf(sessionId)?.can(event)) this.send(sessionId, event);
      }
      this.deps.log.warn({ sessionId, reservations }, 'requests in flight when the session was last run were given back their units');
    }
  }

  /**
   * Runs a held session again: from the newest state this process knew (written first), or from
   * its row. Throws when its snapshot still cannot be read.
   */
  async resume(sessionId: string): Promise<void> {
    const held = this.heldOf(sessionId);
    if (!held) return;
    const stored = migrateSessionSnapshot(held.stored.machineVersion, held.stored.snapshot) as unknown as SessionSnapshot;
    const snapshot = held.pending ?? stored;
    const actor = this.createActor(sessionId, { snapshot });
    const live = actor.getSnapshot();
    const hosted = this.hosted.get(sessionId)!;
    const from = factsOf(resolveSnapshot(stored));
    const seq = held.stored.seq + 1;
    const { journal } = this.deps;
    await journal.append({
      sessionId,
      lockKey: live.context.accountId,
      retry: false,
      write: async (tx) => {
        await releaseQuarantine(tx, sessionId);
        if (!held.pending) return [];
        const record = transitionRecordOf({ snapshot: live, persisted: actor.getPersistedSnapshot(), previous: from, from: statePathOf(stored.value), seq, event: 'RESUMED', at: this.deps.clock.now() });
        return writeTransition(tx, { ...record, epoch: this.ownership.epochOf(hosted.serverId) });
      },
    });
    Object.assign(hosted, this.entry(hosted.serverId, actor, seq, live));
    if (live.hasTag('seat')) this.deps.admission.restoreSeat(sessionId, live.context.serviceId, live.context.serverId, null);
    else this.deps.admission.release(sessionId);
    this.start(sessionId);
  }

  /** Stops every actor once pending writes are committed; restore carries on from the rows. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.coldSweep) clearInterval(this.coldSweep);
    this.scheduler.close();
    await this.deps.journal.idle();
    for (const hosted of this.hosted.values()) hosted.actor?.stop();
    this.hosted.clear();
    this.deps.journal.close();
  }

  /**
   * The server's lease is gone (`handingOver`: given back, so what is pending is committed first):
   * its sessions stop here, their seats are given back and their deadlines dropped. The node that
   * takes the server restores them from their rows. Returns how many were let go.
   */
  async dropServer(serverId: string, handingOver: boolean): Promise<number> {
    const ids = [...this.hosted].filter(([, hosted]) => hosted.serverId === serverId).map(([id]) => id);
    if (handingOver) {
      // Bounded: a session whose writes are stuck is restored, quarantine and all, by the next owner.
      const drained = Promise.all(ids.map((id) => this.deps.journal.durable(id)));
      await Promise.race([drained, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
    }
    for (const id of ids) this.letGo(id);
    if (ids.length > 0) this.deps.log.info({ serverId, sessions: ids.length, handingOver }, 'sessions of a server let go');
    return ids.length;
  }

  /** PostgreSQL refused a write of this session for a stale epoch: another node runs it now. */
  onFenced(sessionId: string): void {
    if (!this.hosted.has(sessionId)) return;
    this.deps.log.warn({ sessionId }, 'write refused for a stale epoch: the session runs on another node now');
    this.letGo(sessionId);
  }

  /** Stopping: actors stopped now were not done, and their calls' next run is elsewhere or later. */
  private stopping = false;

  /**
   * When sessions were let go here (their server moved): a call of theirs still on its way sees its
   * actor stopped, not the session moving on, and undoes nothing (the next run replays it by its
   * key). Remembered for longer than a call to the card company can take; forgotten as more are
   * let go (one timer each would cost a server of 100k sessions 100k timers at every move).
   */
  private readonly letGoAt = new Map<string, number>();

  private letGoLately(sessionId: string): boolean {
    const at = this.letGoAt.get(sessionId);
    return at !== undefined && this.deps.clock.now() - at < LET_GO_REMEMBERED_MS;
  }

  /** Stops running a session here without writing anything: no actor, no deadline, no seat. */
  private letGo(sessionId: string): void {
    const hosted = this.hosted.get(sessionId);
    if (!hosted) return;
    const now = this.deps.clock.now();
    // Map order is insertion order: the oldest come first.
    for (const [id, at] of this.letGoAt) {
      if (now - at < LET_GO_REMEMBERED_MS) break;
      this.letGoAt.delete(id);
    }
    this.letGoAt.delete(sessionId);
    this.letGoAt.set(sessionId, now);
    this.hosted.delete(sessionId);
    hosted.actor?.stop();
    this.scheduler.cancel(sessionId);
    this.cardTokens.delete(sessionId);
    this.deps.admission.release(sessionId);
    this.deps.journal.forget(sessionId);
  }

  private epochOfSession(sessionId: string): bigint | null {
    const hosted = this.hosted.get(sessionId);
    return hosted ? this.ownership.epochOf(hosted.serverId) : this.ownership.clustered ? 0n : null;
  }

  /** A session's writes keep failing: keep the newest state where an operator (or a restart) finds it. */
  async onWriteStuck(sessionId: string, reason: string): Promise<void> {
    const actor = this.hosted.get(sessionId)?.actor;
    this.deps.log.error({ sessionId, reason }, 'session stuck: its transitions cannot be written');
    if (!actor) return;
    await quarantine(this.deps.sql, {
      sessionId,
      kind: 'write_failed',
      reason,
      pendingSnapshot: actor.getPersistedSnapshot(),
      pendingVersion: SESSION_MACHINE_VERSION,
      at: this.deps.clock.now(),
    }).catch((error: unknown) => this.deps.log.error({ sessionId, err: String(error) }, 'could not quarantine a stuck session'));
  }

  /**
   * Lets go of the actors of sessions that rest and were left alone for `coldAfterMs` (or
   * `idleMs`), with every write of theirs committed. Returns how many went cold.
   */
  sweepCold(idleMs = this.deps.coldAfterMs ?? 0): number {
    const before = this.deps.clock.now() - idleMs;
    let cooled = 0;
    for (const [sessionId, hosted] of this.hosted) {
      const actor = hosted.actor;
      if (!actor || hosted.waiters > 0 || hosted.touchedAt > before || this.deps.journal.pending(sessionId)) continue;
      if (!mayGoCold(actor.getSnapshot())) continue;
      hosted.actor = null;
      hosted.facts = null;
      actor.stop();
      cooled++;
    }
    return cooled;
  }

  private entry(serverId: string, actor: SessionActor, seq: number, snapshot: SessionSnapshot): Hosted {
    return { serverId, actor, seq, path: intern(statePathOf(snapshot.value)), facts: factsOf(snapshot), held: null, touchedAt: this.deps.clock.now(), waiters: 0, waking: null };
  }

  /** Hosts one unsettled row: cold, held, or with an actor to start (in `started`); its seat goes in `seats`. */
  private host(row: UnsettledSession, seats: SeatToRestore[], started: string[], orphaned: [string, string[]][]): boolean {
    const { id } = row;
    // Let go of once (its server was lost, and has come back here): it runs from its row now.
    this.deps.journal.remember(id);
    let stored: SessionSnapshot;
    let pending: SessionSnapshot | null = null;
    try {
      stored = migrateSessionSnapshot(row.machineVersion, row.snapshot) as unknown as SessionSnapshot;
      if (row.quarantine?.pendingSnapshot) {
        pending = migrateSessionSnapshot(row.quarantine.pendingVersion ?? SESSION_MACHINE_VERSION, row.quarantine.pendingSnapshot) as unknown as SessionSnapshot;
      }
    } catch (error) {
      const reason = `snapshot cannot be read: ${error instanceof Error ? error.message : String(error)}`;
      this.hold(row, { kind: 'unreadable', reason, stored: row, pending: null });
      void quarantine(this.deps.sql, { sessionId: id, kind: 'unreadable', reason, pendingSnapshot: null, pendingVersion: null, at: this.deps.clock.now() })
        .catch((err: unknown) => this.deps.log.error({ sessionId: id, err: String(err) }, 'could not quarantine an unreadable session'));
      this.deps.log.error({ sessionId: id, reason }, 'session held: its snapshot cannot be read');
      return false;
    }
    if (row.quarantine) {
      // Held, but its customer may still be using the service (the gate cuts at the stored
      // cutoff whatever happens here): its seat stays counted until it is resumed or ends.
      const newest = resolveSnapshot(pending ?? stored);
      if (newest.hasTag('seat')) seats.push({ sessionId: id, serviceId: newest.context.serviceId, serverId: newest.context.serverId, customer: row.customer });
      this.hold(row, { kind: row.quarantine.kind, reason: row.quarantine.reason, stored: row, pending });
      return false;
    }
    // A resting session needs no actor until something happens to it: only its deadline and seat.
    const resolved = resolveSnapshot(stored);
    // The edge's reservations whose requests are not in flight here died with them (another
    // process's), or ended while this process had let the server go (their settle found no session).
    const edge = Object.entries(resolved.context.uses.open).filter(([reservationId, use]) => use.edge && !this.edgeInFlight.has(`${id} ${reservationId}`));
    if (edge.length > 0) orphaned.push([id, edge.map(([reservationId]) => reservationId)]);
    if (resolved.hasTag('seat')) seats.push({ sessionId: id, serviceId: resolved.context.serviceId, serverId: resolved.context.serverId, customer: row.customer });
    if (mayGoCold(resolved)) {
      this.hosted.set(id, { serverId: row.serverId, actor: null, seq: row.seq, path: intern(statePathOf(resolved.value)), facts: null, held: null, touchedAt: this.deps.clock.now(), waiters: 0, waking: null });
      this.arm(id, resolved);
      return true;
    }
    const actor = this.createActor(id, { snapshot: stored });
    this.hosted.set(id, this.entry(row.serverId, actor, row.seq, actor.getSnapshot()));
    started.push(id);
    return true;
  }

  private hold(row: UnsettledSession, held: Held): void {
    const context = row.snapshot.context;
    this.hosted.set(row.id, {
      serverId: row.serverId,
      actor: null,
      seq: row.seq,
      path: row.state,
      facts: { context, final: false, billable: false, stuck: true },
      held,
      touchedAt: this.deps.clock.now(),
      waiters: 0,
      waking: null,
    });
  }

  /** Gives a cold session its actor back, from its committed row (read with others asked for in the same tick). */
  private wake(sessionId: string, hosted: Hosted): Promise<void> {
    hosted.waking ??= new Promise<void>((resolve, reject) => {
      if (!this.wakeBatch) {
        const batch = new Map<string, { resolve: () => void; reject: (error: unknown) => void }>();
        this.wakeBatch = batch;
        setImmediate(() => {
          this.wakeBatch = null;
          void this.wakeAll(batch);
        });
      }
      this.wakeBatch.set(sessionId, { resolve, reject });
    }).finally(() => {
      hosted.waking = null;
    });
    return hosted.waking;
  }

  private async wakeAll(batch: Map<string, { resolve: () => void; reject: (error: unknown) => void }>): Promise<void> {
    try {
      for await (const rows of loadUnsettled(this.deps.sql, { ids: [...batch.keys()], batch: batch.size })) {
        for (const row of rows) {
          const hosted = this.hosted.get(row.id);
          if (hosted && !hosted.actor && !hosted.held) {
            const stored = migrateSessionSnapshot(row.machineVersion, row.snapshot) as unknown as SessionSnapshot;
            const actor = this.createActor(row.id, { snapshot: stored });
            Object.assign(hosted, this.entry(hosted.serverId, actor, row.seq, actor.getSnapshot()));
            this.start(row.id);
          }
          batch.get(row.id)?.resolve();
          batch.delete(row.id);
        }
      }
      // Rows no longer unsettled: nothing to wake (the caller finds no actor).
      for (const { resolve } of batch.values()) resolve();
    } catch (error) {
      this.deps.log.error({ sessions: batch.size, err: String(error) }, 'could not wake cold sessions');
      for (const { reject } of batch.values()) reject(error);
    }
  }

  private onDeadline(sessionId: string): void {
    const hosted = this.hosted.get(sessionId);
    if (!hosted) return;
    if (hosted.actor) return this.sendDeadline(sessionId);
    // A cold session's deadline wakes it; a row that cannot be read now is tried again shortly.
    this.awake(sessionId).then(
      () => this.sendDeadline(sessionId),
      () => this.scheduler.schedule(sessionId, this.deps.clock.now() + 1000),
    );
  }

  private sendDeadline(sessionId: string): void {
    const snapshot = this.snapshotOf(sessionId);
    const deadline = snapshot && deadlineOf(snapshot);
    if (deadline) this.send(sessionId, { type: deadline.event, at: this.deps.clock.now() });
  }

  private arm(sessionId: string, snapshot: SessionSnapshot): void {
    const deadline = deadlineOf(snapshot);
    if (deadline) this.scheduler.schedule(sessionId, deadline.at);
    else this.scheduler.cancel(sessionId);
  }

  /** A session actor wired to journal its transitions; it does nothing until `start`. */
  private createActor(sessionId: string, options: { snapshot: SessionSnapshot } | { input: SessionInput }): SessionActor {
    const inspect = this.deps.inspect;
    const actor: SessionActor = createActor(this.machine, {
      // A restored actor ignores its input; the stored context is a complete one.
      ...('snapshot' in options ? { snapshot: options.snapshot, input: options.snapshot.context } : options),
      inspect: (event) => {
        inspect?.(event);
        if (event.type !== '@xstate.snapshot' || event.actorRef !== actor || event.event.type === 'xstate.init') return;
        this.onTransition(sessionId, actor, event.snapshot as SessionSnapshot, eventLabel(event.event.type));
      },
    });
    actor.subscribe({ error: (error) => this.deps.log.error({ sessionId, err: String(error) }, 'session actor failed') });
    return actor;
  }

  private onTransition(sessionId: string, actor: SessionActor, snapshot: SessionSnapshot, event: string): void {
    const hosted = this.hosted.get(sessionId);
    if (!hosted || hosted.actor !== actor || !hosted.facts) return;
    const path = statePathOf(snapshot.value);
    if (path === hosted.path && snapshot.context === hosted.facts.context) return;
    const previous = hosted.facts;
    const seq = hosted.seq + 1;
    const record = { ...transitionRecordOf({ snapshot, persisted: actor.getPersistedSnapshot(), previous, from: hosted.path, seq, event, at: this.deps.clock.now() }), epoch: this.ownership.epochOf(hosted.serverId) };
    Object.assign(hosted, { seq, path: intern(path), facts: factsOf(snapshot), touchedAt: this.deps.clock.now() });
    // The promise is for commands that answer someone; a failure is retried and reported by the journal.
    void this.deps.journal.append({ sessionId, lockKey: snapshot.context.accountId, retry: true, write: (tx) => writeTransition(tx, record) }).catch(() => undefined);
    if (!snapshot.hasTag('seat')) this.deps.admission.release(sessionId);
    this.arm(sessionId, snapshot);
    for (const observer of this.observers) observer(sessionId, snapshot);
    if (snapshot.status === 'done') {
      // Final and committed: nothing is left to do here, and a running session holds no memory.
      void this.deps.journal.durable(sessionId).then(() => {
        if (this.hosted.get(sessionId)?.actor !== actor) return;
        this.hosted.delete(sessionId);
        actor.stop();
      });
    }
  }
}

/** Asks for the next batch before handing this one over, so that PostgreSQL reads while this process hosts. */
async function* readAhead<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]();
  let next = iterator.next();
  for (;;) {
    const current = await next;
    if (current.done) return;
    next = iterator.next();
    // A batch that fails while this one is hosted is reported at the next await, not unhandled now.
    next.catch(() => undefined);
    yield current.value;
  }
}

/** Resting with nothing in flight and nothing for an operator: its row says all there is. */
function mayGoCold(snapshot: SessionSnapshot): boolean {
  return snapshot.status === 'active' && snapshot.hasTag('resting') && !snapshot.hasTag('stuck') && Object.keys(snapshot.children).length === 0;
}
