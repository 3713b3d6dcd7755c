import { type Actor, createActor, type InspectionEvent } from 'xstate';
import {
  deadlineOf,
  migrateSessionSnapshot,
  resolveSnapshot,
  SESSION_MACHINE_VERSION,
  sessionEventSchema,
  sessionMachine,
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
  actor: SessionActor | null;
  /** The last transition appended to the journal, and what the session was after it. */
  seq: number;
  path: string;
  facts: TaggedFacts;
  held: Held | null;
}

/** "xstate.done.actor.capture" reads as "capture done" in the history. */
const eventLabel = (type: string) => {
  const invoked = /^xstate\.(done|error)\.actor\.(.+)$/.exec(type);
  return invoked ? `${invoked[2]} ${invoked[1]}` : type;
};

/**
 * Hosts the session actors (DESIGN: the supervisor only hosts): the routing table from session
 * id to actor, their lifecycle (create, start, stop when final and committed), their deadlines,
 * and restore. Each transition an actor takes is handed to the journal; commands and queries
 * live elsewhere and reach actors only through `send` and `snapshotOf`.
 */
export class Supervisor {
  private readonly hosted = new Map<string, Hosted>();
  /** Read with the account when a session opens, handed to its first authorization. */
  private readonly cardTokens = new Map<string, string>();
  private readonly scheduler: DeadlineScheduler;
  private readonly machine: SessionMachine;

  constructor(private readonly deps: SupervisorDeps) {
    this.scheduler = new DeadlineScheduler(deps.clock, (sessionId) => this.onDeadline(sessionId));
    this.machine = sessionMachine.provide({
      actors: sessionEffects({
        ...deps,
        durable: (sessionId) => deps.journal.durable(sessionId),
        takeCardToken: (sessionId) => {
          const token = this.cardTokens.get(sessionId);
          this.cardTokens.delete(sessionId);
          return token;
        },
      }),
    });
  }

  get liveCount(): number {
    return this.hosted.size;
  }

  has(sessionId: string): boolean {
    return this.hosted.has(sessionId);
  }

  /** The live snapshot, or null when the session is not running here (settled, held, or elsewhere). */
  snapshotOf(sessionId: string): SessionSnapshot | null {
    return this.hosted.get(sessionId)?.actor?.getSnapshot() ?? null;
  }

  heldOf(sessionId: string): Held | null {
    return this.hosted.get(sessionId)?.held ?? null;
  }

  /** Every session running here, for metrics and operators. */
  *liveSnapshots(): IterableIterator<SessionSnapshot> {
    for (const hosted of this.hosted.values()) if (hosted.actor) yield hosted.actor.getSnapshot();
  }

  /** The actor itself, for callers that wait on it (waitFor); null when not running here. */
  actorOf(sessionId: string): SessionActor | null {
    return this.hosted.get(sessionId)?.actor ?? null;
  }

  /** A new session's actor, created but not started: its initial snapshot is what the open writes. */
  create(input: SessionInput): SessionSnapshot {
    const actor = this.createActor(input.sessionId, { input });
    const snapshot = actor.getSnapshot();
    this.hosted.set(input.sessionId, { actor, seq: 0, path: statePathOf(snapshot.value), facts: factsOf(snapshot), held: null });
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

  /** Sends one event to one session's actor; false when it is not running here. */
  send(sessionId: string, event: SessionEvent): boolean {
    const actor = this.hosted.get(sessionId)?.actor;
    if (!actor) return false;
    actor.send(sessionEventSchema.parse(event));
    return true;
  }

  /**
   * Brings back every session that had not finished (or only those given), re-arming deadlines
   * from stored instants. Rows come from a cursor in batches, so a restore of many sessions never
   * holds every stored snapshot at once. A session already hosted here is left as it is; one this
   * build cannot read, or whose writes were failing, is held for an operator and the rest start.
   */
  async restore(ids?: string[]): Promise<number> {
    let restored = 0;
    for await (const rows of loadUnsettled(this.deps.sql, ids ? { ids } : {})) {
      for (const row of rows) {
        if (this.hosted.has(row.id)) continue;
        if (this.host(row)) restored++;
      }
    }
    return restored;
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
      retry: false,
      write: async (tx) => {
        await releaseQuarantine(tx, sessionId);
        if (!held.pending) return [];
        return writeTransition(tx, transitionRecordOf({ snapshot: live, persisted: actor.getPersistedSnapshot(), previous: from, from: statePathOf(stored.value), seq, event: 'RESUMED', at: this.deps.clock.now() }));
      },
    });
    Object.assign(hosted, { actor, seq, path: statePathOf(live.value), facts: factsOf(live), held: null });
    if (live.hasTag('seat')) this.deps.admission.restoreSeat(sessionId, live.context.serviceId, live.context.serverId, null);
    this.start(sessionId);
  }

  /** Stops every actor once pending writes are committed; restore carries on from the rows. */
  async stop(): Promise<void> {
    this.scheduler.close();
    await this.deps.journal.idle();
    for (const hosted of this.hosted.values()) hosted.actor?.stop();
    this.hosted.clear();
    this.deps.journal.close();
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

  private host(row: UnsettledSession): boolean {
    const { id } = row;
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
      this.hold(row, { kind: row.quarantine.kind, reason: row.quarantine.reason, stored: row, pending });
      return false;
    }
    const actor = this.createActor(id, { snapshot: stored });
    const live = actor.getSnapshot();
    this.hosted.set(id, { actor, seq: row.seq, path: statePathOf(live.value), facts: factsOf(live), held: null });
    if (live.hasTag('seat')) this.deps.admission.restoreSeat(id, live.context.serviceId, live.context.serverId, row.customer);
    this.start(id);
    return true;
  }

  private hold(row: UnsettledSession, held: Held): void {
    const context = row.snapshot.context;
    this.hosted.set(row.id, {
      actor: null,
      seq: row.seq,
      path: row.state,
      facts: { context, final: false, billable: false, stuck: true },
      held,
    });
  }

  private onDeadline(sessionId: string): void {
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
    if (!hosted || hosted.actor !== actor) return;
    const path = statePathOf(snapshot.value);
    if (path === hosted.path && snapshot.context === hosted.facts.context) return;
    const previous = hosted.facts;
    const seq = hosted.seq + 1;
    const record = transitionRecordOf({ snapshot, persisted: actor.getPersistedSnapshot(), previous, from: hosted.path, seq, event, at: this.deps.clock.now() });
    Object.assign(hosted, { seq, path, facts: factsOf(snapshot) });
    // The promise is for commands that answer someone; a failure is retried and reported by the journal.
    void this.deps.journal.append({ sessionId, retry: true, write: (tx) => writeTransition(tx, record) }).catch(() => undefined);
    if (!snapshot.hasTag('seat')) this.deps.admission.release(sessionId);
    this.arm(sessionId, snapshot);
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
