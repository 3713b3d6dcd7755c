import { randomUUID } from 'node:crypto';
import { type Actor, createActor, type InspectionEvent, waitFor } from 'xstate';
import {
  deadlineOf,
  holdsSeat,
  migrateSessionSnapshot,
  SESSION_MACHINE_VERSION,
  subStateOf,
  termsOf,
  sessionEventSchema,
  sessionMachine,
  type RetryPolicy,
  type SessionContext,
  type SessionEvent,
  type SessionInput,
  type SessionSnapshot,
  stateNameOf,
} from '../../machines/session/index.js';
import { availableHeadroom, limitReached, proposedHold, reserveExtension } from '../accounts/headroom.js';
import { MICROS_PER_CENT } from '../billing/money.js';
import { cutoffOf } from '../billing/tariff.js';
import type { Admission } from '../admission/admission.js';
import type { ServiceRecord } from '../catalogue/catalogue.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import { AppError, errors } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import { stuckReasonOf, type StuckPolicy } from './stuck.js';
import type { Logger } from '../logger.js';
import type { CardGateway } from '../payments/gateway.js';
import { DeadlineScheduler } from './deadline-scheduler.js';
import { sessionEffects } from './session-effects.js';
import { findSession, insertOpening, listSessions, loadUnsettled, writeTransition } from './session-records.js';
import { type SessionView, viewOf } from './session-view.js';
import { WriteBatcher } from './write-batcher.js';
import { transaction } from '../db/transaction.js';

export interface SupervisorDeps {
  sql: Sql;
  admission: Admission;
  catalogue: { service(id: string): ServiceRecord | undefined };
  clock: Clock;
  gateway: CardGateway;
  log: Logger;
  retry: RetryPolicy;
  /** Grace over the limit and hold renewal lead time, given to every new session. */
  policy: { graceMs: number; renewBeforeMs: number };
  openWaitMs: number;
  logoffWaitMs: number;
  stuck: StuckPolicy;
  metrics: Metrics;
  /** The XState inspector, when TOLLGATE_INSPECT is on. */
  inspect?: ((event: InspectionEvent) => void) | undefined;
}

/** A session as operators see it: the customer's view, plus whose it is and whether it is stuck. */
export interface OpsSessionView extends SessionView {
  accountId: string;
  subState: string | null;
  stuck: boolean;
  stuckReason: string | null;
  closeAttempts: number;
  lastError: string | null;
}

const OPS_ACTIONS = { terminate: 'TERMINATE', retry: 'RETRY', void: 'VOID' } as const;
export type OpsAction = keyof typeof OPS_ACTIONS;

export interface OpenRequest {
  accountId: string;
  serviceId: string;
  maxMs: number | null;
  maxChargeMicros: bigint | null;
  /** How long to queue for a seat when the service or its server is full. */
  waitMs: number;
}

type SessionMachine = ReturnType<typeof sessionMachine.provide>;
type SessionActor = Actor<SessionMachine>;

/** "xstate.done.actor.0.session.closing.capturing" reads as "closing.capturing done" in the history. */
const eventLabel = (type: string) => {
  const invoked = /^xstate\.(done|error)\.actor\.0\.session\.(.+)$/.exec(type);
  return invoked ? `${invoked[2]} ${invoked[1]}` : type;
};

const pathOf = (value: SessionSnapshot['value']): string =>
  typeof value === 'string'
    ? value
    : Object.entries(value)
        .map(([key, child]) => `${key}.${pathOf(child as SessionSnapshot['value'])}`)
        .join(',');

/**
 * Creates, finds and stops session actors. Each session is a top-level actor with its own row:
 * every transition is written with the ledger rows it implies before any call out that depends
 * on it, and every deadline is scheduled here from the instant stored in the snapshot.
 */
export class Supervisor {
  private readonly actors = new Map<string, SessionActor>();
  private readonly lastWrite = new Map<string, Promise<void>>();
  /** Read with the account when a session opens, handed to its first authorization. */
  private readonly cardTokens = new Map<string, string>();
  /** Inspection events of actors created but not started yet, released when they start. */
  private readonly heldInspection = new WeakMap<SessionActor, () => void>();
  private readonly batcher: WriteBatcher;
  private readonly scheduler: DeadlineScheduler;
  private readonly machine: SessionMachine;
  private accepting = true;

  constructor(private readonly deps: SupervisorDeps) {
    this.batcher = new WriteBatcher(deps.sql, 256, (writes, seconds) => {
      deps.metrics.persistBatchSize.observe(writes);
      deps.metrics.persistLatency.observe(seconds);
    });
    this.scheduler = new DeadlineScheduler(deps.clock, (sessionId) => this.onDeadline(sessionId));
    this.machine = sessionMachine.provide({
      actors: sessionEffects({
        ...deps,
        durable: (sessionId) => this.durable(sessionId),
        takeCardToken: (sessionId) => {
          const token = this.cardTokens.get(sessionId);
          this.cardTokens.delete(sessionId);
          return token;
        },
      }),
    });
  }

  get liveCount(): number {
    return this.actors.size;
  }

  /**
   * Brings back every session that had not finished, re-arming deadlines from stored instants.
   * Rows are read in batches from a cursor: holding every stored snapshot at once would leave
   * the process with hundreds of megabytes of heap it no longer uses. A session already live
   * here is left as it is.
   */
  async restore(): Promise<number> {
    let restored = 0;
    for await (const rows of loadUnsettled(this.deps.sql)) {
      for (const row of rows) {
        const snapshot = migrateSessionSnapshot(row.machineVersion, row.snapshot) as unknown as SessionSnapshot;
        const { context } = snapshot;
        if (this.actors.has(context.sessionId)) continue;
        if (holdsSeat(snapshot)) {
          this.deps.admission.restoreSeat(context.sessionId, context.serviceId, context.serverId, row.customer);
        }
        this.start(context.sessionId, this.create(context.sessionId, { snapshot }));
        restored++;
      }
    }
    return restored;
  }

  async open(request: OpenRequest): Promise<SessionView> {
    try {
      const view = await this.openSession(request);
      this.deps.metrics.admissions.inc();
      return view;
    } catch (error) {
      this.deps.metrics.rejections.inc({ code: error instanceof AppError ? error.code : 'INTERNAL_ERROR' });
      throw error;
    }
  }

  private async openSession(request: OpenRequest): Promise<SessionView> {
    if (!this.accepting) throw errors.shuttingDown();
    const service = this.deps.catalogue.service(request.serviceId);
    if (!service) throw errors.serviceNotFound();
    const sessionId = randomUUID();
    const { admission } = this.deps;
    // Seats first: no hold is placed at the card company for a session that cannot run.
    await admission.admit({ sessionId, serviceId: service.id, serverId: service.serverId, waitMs: request.waitMs });
    const createdAt = this.deps.clock.now();
    const opened = this.insertOpening(request, service, sessionId, createdAt).catch((error: unknown) => {
      admission.release(sessionId);
      throw error;
    });
    const { actor, customer } = await opened;
    const { cardToken } = customer;
    this.cardTokens.set(sessionId, cardToken);
    admission.connect(sessionId, {
      accountId: request.accountId,
      estimatedStorageGb: Number(customer.estimatedStorageGb),
      estimatedProcessingHours: Number(customer.estimatedProcessingHours),
    });

    this.start(sessionId, actor);
    const snapshot = await this.settle(
      actor,
      (s) => !(stateNameOf(s) === 'authorizing' && subStateOf(s) === 'requesting'),
      this.deps.openWaitMs,
    );
    const state = stateNameOf(snapshot);
    const reason = snapshot.context.declineReason;
    // A session whose authorization went unanswered is declined while any hold is released.
    if (reason === 'card_network_unavailable' || reason === 'internal_error') throw errors.cardNetworkUnavailable();
    if (state === 'declined') throw errors.cardDeclined(reason ?? 'generic_decline');
    return viewOf(state, snapshot.context, this.deps.clock.now());
  }

  /**
   * Writes the new session with its hold reserved against the account's outstanding limit. A
   * hold given as maxCharge either fits or is refused; a hold derived from what is left of the
   * limit is read first and, if another open took some of it meanwhile, asked again for what
   * the refusal says is left.
   */
  private async insertOpening(request: OpenRequest, service: ServiceRecord, sessionId: string, createdAt: number) {
    const derived = request.maxChargeMicros === null;
    let available = derived ? await availableHeadroom(this.deps.sql, request.accountId) : 0n;
    for (let attempt = 1; ; attempt++) {
      if (available === null) throw errors.unauthenticated();
      const availableMicros = available;
      const holdMicros = proposedHold({
        availableMicros,
        maxChargeMicros: request.maxChargeMicros,
        maxMs: request.maxMs,
        pricePerMinuteMicros: service.pricePerMinuteMicros,
      });
      if (holdMicros < MICROS_PER_CENT) throw limitReached(holdMicros, availableMicros);
      const input: SessionInput = {
        sessionId,
        accountId: request.accountId,
        serviceId: service.id,
        serverId: service.serverId,
        currency: service.currency,
        pricePerMinuteMicros: service.pricePerMinuteMicros.toString(),
        maxChargeMicros: holdMicros.toString(),
        maxMs: request.maxMs,
        createdAt,
        retry: this.deps.retry,
        ...this.deps.policy,
      };
      // Created, not started: its initial snapshot is what is stored, and it starts once stored.
      const actor = this.create(sessionId, { input });
      const outcome = await insertOpening(this.deps.sql, {
        context: actor.getSnapshot().context,
        snapshot: actor.getPersistedSnapshot(),
        machineVersion: SESSION_MACHINE_VERSION,
        service,
        server: { name: service.serverName },
      });
      switch (outcome.kind) {
        case 'opened':
          return { actor, customer: outcome.customer };
        case 'no_account':
          throw errors.unauthenticated();
        case 'currency_mismatch':
          throw errors.currencyMismatch();
        case 'limit_reached':
          // What the locked row said is left: the next attempt asks for that (or its time's cost).
          if (derived && attempt < 10 && outcome.availableMicros >= MICROS_PER_CENT) {
            available = outcome.availableMicros;
            continue;
          }
          throw limitReached(holdMicros, outcome.availableMicros);
      }
    }
  }

  /** Ends a customer's session; `settled` is false when the charge slip is still pending. */
  async logoff(accountId: string, sessionId: string): Promise<{ view: SessionView; settled: boolean }> {
    const actor = this.ownedActor(accountId, sessionId);
    if (!actor) {
      const view = await this.get(accountId, sessionId);
      if (!view) throw errors.sessionNotFound();
      // A repeated logoff of a settled session answers as the first did.
      if (view.state === 'settled' && view.endReason === 'logoff') return { view, settled: true };
      throw errors.sessionNotActive(view.state);
    }
    const before = stateNameOf(actor.getSnapshot());
    if (before !== 'active') throw errors.sessionNotActive(before);
    this.send(actor, { type: 'LOGOFF', at: this.deps.clock.now() });
    const snapshot = await this.settle(actor, (s) => s.status === 'done', this.deps.logoffWaitMs);
    const state = stateNameOf(snapshot);
    return { view: viewOf(state, snapshot.context, this.deps.clock.now()), settled: state === 'settled' };
  }

  /**
   * Raises a running session's charge limit by an incremental authorization. The extra hold is
   * reserved against the outstanding limit first, and given back if the card company says no.
   */
  async extend(accountId: string, sessionId: string, maxChargeMicros: bigint): Promise<SessionView> {
    const actor = this.ownedActor(accountId, sessionId);
    if (!actor) {
      if (!(await this.get(accountId, sessionId))) throw errors.sessionNotFound();
      throw errors.sessionNotActive('ended');
    }
    const before = actor.getSnapshot();
    const extendable =
      (stateNameOf(before) === 'active' && subStateOf(before) === 'running') ||
      (stateNameOf(before) === 'over_limit' && subStateOf(before) === 'grace');
    if (!extendable) throw errors.sessionNotActive(stateNameOf(before));
    const current = BigInt(before.context.maxChargeMicros);
    if (maxChargeMicros <= current) throw errors.validation('maxCharge must be above the session’s current limit.');
    const terms = termsOf(before.context);
    if (cutoffOf({ ...terms, maxChargeMicros }).afterMs <= cutoffOf(terms).afterMs) throw errors.timeLimitBinds();
    await transaction(this.deps.sql, (tx) => reserveExtension(tx, { accountId, sessionId, deltaMicros: maxChargeMicros - current }));
    const attempt = before.context.extensions;
    this.send(actor, { type: 'EXTEND', at: this.deps.clock.now(), maxChargeMicros: maxChargeMicros.toString() });
    const snapshot = await this.settle(
      actor,
      (s) => s.context.extensions > attempt || s.status === 'done',
      this.deps.openWaitMs,
    );
    const extension = snapshot.context.extension;
    if (extension?.outcome === 'declined') {
      if (extension.reason === 'card_network_unavailable') throw errors.cardNetworkUnavailable();
      throw errors.cardDeclined(extension.reason ?? 'generic_decline');
    }
    return viewOf(stateNameOf(snapshot), snapshot.context, this.deps.clock.now());
  }

  async get(accountId: string | null, sessionId: string): Promise<SessionView | null> {
    const actor = this.actors.get(sessionId);
    const now = this.deps.clock.now();
    if (actor) {
      const snapshot = actor.getSnapshot();
      if (accountId !== null && snapshot.context.accountId !== accountId) return null;
      return viewOf(stateNameOf(snapshot), snapshot.context, now);
    }
    const stored = await findSession(this.deps.sql, sessionId, accountId ?? undefined);
    return stored ? viewOf(stored.state, stored.snapshot.context, now) : null;
  }

  async list(accountId: string): Promise<SessionView[]> {
    const now = this.deps.clock.now();
    return (await listSessions(this.deps.sql, accountId)).map((stored) => {
      const live = this.actors.get(stored.snapshot.context.sessionId)?.getSnapshot();
      return live ? viewOf(stateNameOf(live), live.context, now) : viewOf(stored.state, stored.snapshot.context, now);
    });
  }

  /** Operators' view of one session, live or stored. */
  async opsView(sessionId: string): Promise<OpsSessionView | null> {
    const actor = this.actors.get(sessionId);
    if (actor) return this.opsViewOf(actor.getSnapshot());
    const stored = await findSession(this.deps.sql, sessionId);
    return stored ? this.opsViewOf(stored.snapshot) : null;
  }

  opsViewOf(snapshot: { value: unknown; context: SessionContext }): OpsSessionView {
    const now = this.deps.clock.now();
    const state = stateNameOf(snapshot);
    const { context } = snapshot;
    const stuckReason = stuckReasonOf(state, context, now, this.deps.stuck);
    return {
      ...viewOf(state, context, now),
      accountId: context.accountId,
      subState: subStateOf(snapshot),
      stuck: stuckReason !== null,
      stuckReason,
      closeAttempts: context.closeAttempts,
      lastError: context.lastError,
    };
  }

  /** Every live session that is past the deadline of the state it waits in. */
  stuckSessions(): OpsSessionView[] {
    const stuck: OpsSessionView[] = [];
    for (const actor of this.actors.values()) {
      const view = this.opsViewOf(actor.getSnapshot());
      if (view.stuck) stuck.push(view);
    }
    return stuck.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Live sessions by state (and how many are stuck), for the metrics. */
  countLive(): { byState: Record<string, number>; stuck: number } {
    const byState: Record<string, number> = {};
    let stuck = 0;
    const now = this.deps.clock.now();
    for (const actor of this.actors.values()) {
      const snapshot = actor.getSnapshot();
      const state = stateNameOf(snapshot);
      byState[state] = (byState[state] ?? 0) + 1;
      if (stuckReasonOf(state, snapshot.context, now, this.deps.stuck)) stuck++;
    }
    return { byState, stuck };
  }

  /**
   * An operator's action, sent to the session's machine like any event: terminate (ends a
   * running session, or gives up on an authorization), retry (the card company call it waits
   * to retry, now), void (forgive a charge that cannot be captured; the hold is voided).
   */
  async opsAction(sessionId: string, action: OpsAction): Promise<OpsSessionView> {
    const actor = this.actors.get(sessionId);
    if (!actor) {
      const view = await this.opsView(sessionId);
      if (!view) throw errors.sessionNotFound();
      throw errors.actionNotAllowed(action, view.state);
    }
    const event = { type: OPS_ACTIONS[action], at: this.deps.clock.now() };
    const before = actor.getSnapshot();
    if (!before.can(event)) throw errors.actionNotAllowed(action, `${stateNameOf(before)}.${subStateOf(before) ?? ''}`);
    this.send(actor, event);
    // Answer once no call to the card company is in flight any more: ended, running, or waiting to retry.
    const resting = (s: SessionSnapshot) => s.status === 'done' || ['running', 'grace', 'waiting'].includes(subStateOf(s) ?? '');
    const snapshot = await this.settle(actor, resting, this.deps.logoffWaitMs);
    return this.opsViewOf(snapshot);
  }

  /**
   * Stops taking new sessions; requests already running finish, except those queued for a seat,
   * which are answered SHUTTING_DOWN at once rather than holding the shutdown for their wait.
   */
  beginShutdown(): void {
    this.accepting = false;
    this.deps.admission.withdrawWaiting();
  }

  /** Stops taking new sessions, waits for pending writes, stops every actor; restore carries on. */
  async stop(): Promise<void> {
    this.accepting = false;
    this.scheduler.close();
    await this.batcher.idle();
    for (const actor of this.actors.values()) actor.stop();
    this.actors.clear();
    await this.batcher.idle();
  }

  /** Resolves once the latest transition of the session is committed. */
  async durable(sessionId: string): Promise<void> {
    // Observers of a transition run in the same tick as the child actors it starts: yielding
    // once lets the transition's write be queued before we wait for it.
    await null;
    await this.lastWrite.get(sessionId);
  }

  private ownedActor(accountId: string, sessionId: string): SessionActor | undefined {
    const actor = this.actors.get(sessionId);
    return actor && actor.getSnapshot().context.accountId === accountId ? actor : undefined;
  }

  private send(actor: SessionActor, event: SessionEvent): void {
    actor.send(sessionEventSchema.parse(event));
  }

  private onDeadline(sessionId: string): void {
    const actor = this.actors.get(sessionId);
    if (!actor) return;
    const deadline = deadlineOf(actor.getSnapshot());
    if (deadline) this.send(actor, { type: deadline.event, at: this.deps.clock.now() });
  }

  /** Waits until `done(snapshot)` (or the timeout), then until that state is committed. */
  private async settle(
    actor: SessionActor,
    done: (snapshot: SessionSnapshot) => boolean,
    timeoutMs: number,
  ): Promise<SessionSnapshot> {
    await waitFor(actor, done, { timeout: timeoutMs }).catch(() => undefined);
    const snapshot = actor.getSnapshot();
    await this.durable(snapshot.context.sessionId);
    return snapshot;
  }

  /** A session actor wired to persist its transitions; it does nothing until `start`. */
  private create(
    sessionId: string,
    options: { snapshot: SessionSnapshot } | { input: SessionInput },
  ): SessionActor {
    const { log } = this.deps;
    let previous: { path: string; context: SessionContext } | null = null;
    let actor: SessionActor;
    // The inspector hears of an actor when it starts: an actor made for an open that is then
    // refused (limit reached) never shows there.
    const inspect = this.deps.inspect;
    let held: InspectionEvent[] | null = inspect ? [] : null;
    actor = createActor(this.machine, {
      // A restored actor ignores its input; the stored context is a complete one.
      ...('snapshot' in options ? { snapshot: options.snapshot, input: options.snapshot.context } : options),
      inspect: (event) => {
        if (held) held.push(event);
        else inspect?.(event);
        if (event.type !== '@xstate.snapshot' || event.actorRef !== actor) return;
        const snapshot = event.snapshot as SessionSnapshot;
        const path = pathOf(snapshot.value);
        if (previous === null || event.event.type === 'xstate.init') {
          previous = { path, context: snapshot.context };
          return;
        }
        if (previous.path === path && previous.context === snapshot.context) return;
        this.persist(actor, snapshot, previous, eventLabel(event.event.type));
        previous = { path, context: snapshot.context };
      },
    });
    actor.subscribe({
      error: (error) => log.error({ sessionId, err: String(error) }, 'session actor failed'),
    });
    if (inspect) {
      this.heldInspection.set(actor, () => {
        const events = held ?? [];
        held = null;
        for (const event of events) inspect(event);
      });
    }
    return actor;
  }

  private start(sessionId: string, actor: SessionActor): void {
    this.heldInspection.get(actor)?.();
    this.heldInspection.delete(actor);
    this.actors.set(sessionId, actor);
    actor.start();
    this.arm(sessionId, actor.getSnapshot());
  }

  private persist(
    actor: SessionActor,
    snapshot: SessionSnapshot,
    previous: { path: string; context: SessionContext },
    eventType: string,
  ): void {
    const { context } = snapshot;
    const sessionId = context.sessionId;
    const state = stateNameOf(snapshot);
    if (!holdsSeat(snapshot)) this.deps.admission.release(sessionId);
    const transition = {
      from: previous.path,
      to: pathOf(snapshot.value),
      state,
      event: eventType,
      at: this.deps.clock.now(),
      context,
      previousContext: previous.context,
      snapshot: actor.getPersistedSnapshot(),
      machineVersion: SESSION_MACHINE_VERSION,
    };
    const write = this.batcher.enqueue(sessionId, (tx) => writeTransition(tx, transition));
    const tracked = write.catch((error) => {
      this.deps.log.error({ sessionId, err: String(error), to: transition.to }, 'could not persist transition');
    });
    this.lastWrite.set(sessionId, tracked);
    this.arm(sessionId, snapshot);
    void tracked.then(() => {
      // Committed: nothing left to wait for, and a running session holds no promise meanwhile.
      if (this.lastWrite.get(sessionId) === tracked) this.lastWrite.delete(sessionId);
      if (snapshot.status === 'done') {
        this.actors.delete(sessionId);
        actor.stop();
      }
    });
  }

  private arm(sessionId: string, snapshot: SessionSnapshot): void {
    const deadline = deadlineOf(snapshot);
    if (deadline) this.scheduler.schedule(sessionId, deadline.at);
    else this.scheduler.cancel(sessionId);
  }
}
