import { randomUUID } from 'node:crypto';
import { waitFor } from 'xstate';
import {
  extensionRefusal,
  SESSION_MACHINE_VERSION,
  stateNameOf,
  statePathOf,
  type RetryPolicy,
  type SessionEvent,
  type SessionInput,
  type SessionSnapshot,
} from '../../machines/session/index.js';
import { availableHeadroom, limitReached, proposedHold } from '../accounts/headroom.js';
import { type Admission, ClientGoneError } from '../admission/admission.js';
import { MICROS_PER_CENT, formatAmount } from '../billing/money.js';
import type { ServiceRecord } from '../catalogue/catalogue.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import { AppError, errors } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../observability/metrics.js';
import { JournalWriteError, type Journal } from './journal.js';
import { insertOpening, type OpenedCustomer, type OpeningOutcome } from './opening-sql.js';
import type { SessionQueries } from './queries.js';
import { authorizingSince, findSession } from './session-rows.js';
import { type SessionView, viewOf } from './session-view.js';
import type { Supervisor } from './supervisor.js';

export interface CommandDeps {
  sql: Sql;
  journal: Journal;
  supervisor: Supervisor;
  queries: SessionQueries;
  admission: Admission;
  catalogue: { service(id: string): ServiceRecord | undefined };
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  retry: RetryPolicy;
  /** Grace over the limit and hold renewal lead time, given to every new session. */
  policy: { graceMs: number; renewBeforeMs: number };
  openWaitMs: number;
  logoffWaitMs: number;
  /** An `authorizing` row nobody hosts, last written this long ago, is an orphan. */
  orphanAfterMs: number;
}

export interface OpenRequest {
  accountId: string;
  serviceId: string;
  maxMs: number | null;
  maxChargeMicros: bigint | null;
  /** How long to queue for a seat when the service or its server is full. */
  waitMs: number;
  /** Set by an Idempotency-Key: the session this open is (or was) making. */
  sessionId?: string | undefined;
  /** Aborted when the client goes away before it is answered. */
  signal?: AbortSignal | undefined;
  /** The client can get the answer later (an Idempotency-Key): a session it does not wait for still runs. */
  answerKept?: boolean;
}

const OPS_EVENTS = { terminate: 'TERMINATE', retry: 'RETRY', void: 'VOID' } as const;
export type OpsAction = keyof typeof OPS_EVENTS;

/**
 * What customers and operators ask of sessions. Each command sends one event to one actor,
 * accepted when the actor's snapshot can take it (DESIGN rule 12), waits until the session is
 * at rest and that state is committed, and answers with its view.
 */
export class SessionCommands {
  private accepting = true;

  constructor(private readonly deps: CommandDeps) {}

  async open(request: OpenRequest): Promise<{ view: SessionView; pending: boolean }> {
    try {
      const answer = await this.openSession(request);
      this.deps.metrics.admissions.inc();
      return answer;
    } catch (error) {
      this.deps.metrics.rejections.inc({ code: error instanceof AppError ? error.code : error instanceof ClientGoneError ? 'CLIENT_GONE' : 'INTERNAL_ERROR' });
      throw error;
    }
  }

  /** Ends a customer's session; `settled` is false when the charge slip is still pending. */
  async logoff(accountId: string, sessionId: string): Promise<{ view: SessionView; settled: boolean }> {
    const snapshot = this.owned(accountId, sessionId);
    const event: SessionEvent = { type: 'LOGOFF', at: this.deps.clock.now() };
    if (!snapshot || !snapshot.can(event)) {
      const view = snapshot ? this.viewOf(snapshot) : await this.deps.queries.view(accountId, sessionId);
      if (!view) throw errors.sessionNotFound();
      // A repeated logoff of a session that ended by logoff answers as the first did.
      if (view.endReason === 'logoff') return { view, settled: view.state === 'settled' };
      throw errors.sessionNotActive(view.state);
    }
    this.deps.supervisor.send(sessionId, event);
    const after = await this.untilResting(sessionId, this.deps.logoffWaitMs);
    return { view: this.viewOf(after), settled: after.status === 'done' };
  }

  /**
   * Raises a running session's charge limit: the session reserves the extra share of the
   * outstanding limit, then asks the card company to raise its hold. One at a time.
   */
  async extend(accountId: string, sessionId: string, maxChargeMicros: bigint): Promise<SessionView> {
    const snapshot = this.owned(accountId, sessionId);
    if (!snapshot) {
      const view = await this.deps.queries.view(accountId, sessionId);
      if (!view) throw errors.sessionNotFound();
      throw errors.sessionNotActive(view.state);
    }
    const { context } = snapshot;
    if (snapshot.hasTag('extending')) throw errors.extensionInProgress();
    const refusal = extensionRefusal(context, maxChargeMicros.toString());
    // The same extension asked again (a retry whose answer was lost) answers as the first did.
    if (refusal === 'not_higher' && context.extension?.outcome === 'approved' && BigInt(context.extension.toMicros) === maxChargeMicros) {
      return this.viewOf(snapshot);
    }
    if (!snapshot.hasTag('extendable')) throw errors.sessionNotActive(stateNameOf(snapshot));
    if (refusal === 'not_higher') throw errors.validation('maxCharge must be above the session’s current limit.');
    if (refusal === 'time_limit_binds') throw errors.timeLimitBinds();
    const event: SessionEvent = { type: 'EXTEND', at: this.deps.clock.now(), maxChargeMicros: maxChargeMicros.toString() };
    if (!snapshot.can(event)) throw errors.sessionNotActive(stateNameOf(snapshot));
    const attempt = context.extensions;
    this.deps.supervisor.send(sessionId, event);
    const after = await this.until(sessionId, (s) => s.context.extensions > attempt || s.status === 'done', this.deps.openWaitMs);
    const extension = after.context.extension;
    if (after.context.extensions > attempt && extension?.outcome === 'declined') {
      if (extension.reason === 'outstanding_limit_reached') {
        const available = (await availableHeadroom(this.deps.sql, accountId)) ?? 0n;
        throw errors.outstandingLimitReached(
          formatAmount(available),
          `Raising the limit needs ${formatAmount(maxChargeMicros - BigInt(extension.fromMicros))} more but only ${formatAmount(available)} of the outstanding limit is free.`,
        );
      }
      if (extension.reason === 'card_network_unavailable') throw errors.cardNetworkUnavailable();
      throw errors.cardDeclined(extension.reason ?? 'generic_decline');
    }
    return this.viewOf(after);
  }

  /**
   * An operator's action, sent to the session's machine like any event: terminate (ends a
   * running session, or gives up on an authorization), retry (the call it waits on, now; for a
   * session held by this process, run it again), void (forgive a charge that cannot be captured).
   */
  async opsAction(sessionId: string, action: OpsAction): Promise<void> {
    const { supervisor, journal } = this.deps;
    const held = supervisor.heldOf(sessionId);
    if (held) {
      if (action !== 'retry') throw errors.actionNotAllowed(action, `held (${held.reason}); retry runs it again`);
      try {
        await supervisor.resume(sessionId);
      } catch (error) {
        throw errors.actionNotAllowed(action, `held (${error instanceof Error ? error.message : String(error)})`);
      }
      return;
    }
    const snapshot = supervisor.snapshotOf(sessionId);
    if (!snapshot) {
      const view = await this.deps.queries.opsView(sessionId);
      if (!view) throw errors.sessionNotFound();
      throw errors.actionNotAllowed(action, view.state);
    }
    const writesFailing = journal.stuckReason(sessionId) !== null;
    if (action === 'retry' && writesFailing) journal.retryNow(sessionId);
    const event: SessionEvent = { type: OPS_EVENTS[action], at: this.deps.clock.now() };
    if (!snapshot.can(event)) {
      if (action === 'retry' && writesFailing) return;
      throw errors.actionNotAllowed(action, statePathOf(snapshot.value));
    }
    supervisor.send(sessionId, event);
    await this.untilResting(sessionId, this.deps.logoffWaitMs).catch((error: unknown) => {
      if (!(error instanceof AppError && error.code === 'NOT_RECORDED')) throw error;
    });
  }

  /**
   * Orphans: `authorizing` rows that no one hosts (an open whose commit's answer was lost, whose
   * client was told it failed). They are adopted and abandoned: any hold is voided, and they end
   * declined, never left for a restart to authorize and charge.
   */
  async abandonOrphans(): Promise<number> {
    const { supervisor, clock } = this.deps;
    const ids = (await authorizingSince(this.deps.sql, clock.now() - this.deps.orphanAfterMs)).filter((id) => !supervisor.has(id));
    if (ids.length === 0) return 0;
    await supervisor.restore(ids);
    let abandoned = 0;
    for (const id of ids) {
      const snapshot = supervisor.snapshotOf(id);
      const event: SessionEvent = { type: 'ABANDON', at: clock.now() };
      if (snapshot?.hasTag('opening') && snapshot.can(event)) {
        supervisor.send(id, event);
        abandoned++;
      }
    }
    if (abandoned > 0) this.deps.log.warn({ abandoned }, 'orphaned opens abandoned');
    return abandoned;
  }

  /**
   * Stops taking new sessions; requests already running finish, except those queued for a seat,
   * which are answered SHUTTING_DOWN at once rather than holding the shutdown for their wait.
   */
  beginShutdown(): void {
    this.accepting = false;
    this.deps.admission.withdrawWaiting();
  }

  private async openSession(request: OpenRequest): Promise<{ view: SessionView; pending: boolean }> {
    if (!this.accepting) throw errors.shuttingDown();
    const { admission, supervisor, clock } = this.deps;
    const service = this.deps.catalogue.service(request.serviceId);
    if (!service) throw errors.serviceNotFound();
    if (request.sessionId) {
      // A retry of an open that made its session already answers from that session.
      const existing = await this.existingOpen(request.accountId, request.sessionId);
      if (existing) return existing;
    }
    const sessionId = request.sessionId ?? randomUUID();
    // Seats first: no hold is placed at the card company for a session that cannot run.
    await admission.admit({ sessionId, serviceId: service.id, serverId: service.serverId, waitMs: request.waitMs, signal: request.signal });
    let customer: OpenedCustomer;
    try {
      if (request.signal?.aborted && !request.answerKept) throw new ClientGoneError();
      customer = await this.writeOpening(request, service, sessionId, clock.now());
    } catch (error) {
      admission.release(sessionId);
      throw error;
    }
    admission.connect(sessionId, {
      accountId: request.accountId,
      estimatedStorageGb: Number(customer.estimatedStorageGb),
      estimatedProcessingHours: Number(customer.estimatedProcessingHours),
    });
    supervisor.start(sessionId);
    // A client that goes away while its card is being checked is not charged for what it never saw.
    const abandon = () => {
      const snapshot = supervisor.snapshotOf(sessionId);
      const event: SessionEvent = { type: 'ABANDON', at: clock.now() };
      if (snapshot?.can(event)) supervisor.send(sessionId, event);
    };
    const watched = request.answerKept ? undefined : request.signal;
    watched?.addEventListener('abort', abandon, { once: true });
    let snapshot: SessionSnapshot;
    try {
      snapshot = await this.until(sessionId, (s) => !s.hasTag('opening'), this.deps.openWaitMs);
    } catch (error) {
      // The session could not be recorded: nobody will be told it runs, so it must not.
      abandon();
      throw error;
    } finally {
      watched?.removeEventListener('abort', abandon);
    }
    if (watched?.aborted) {
      abandon();
      throw new ClientGoneError();
    }
    return this.openAnswer(snapshot);
  }

  /** What an open answers for its session's state: 201 running, 202 still authorizing, or why not. */
  private openAnswer(snapshot: SessionSnapshot): { view: SessionView; pending: boolean } {
    const { context } = snapshot;
    const reason = context.declineReason;
    if (reason === 'card_network_unavailable' || reason === 'internal_error') throw errors.cardNetworkUnavailable();
    if (stateNameOf(snapshot) === 'declined' || reason !== null) throw errors.cardDeclined(reason ?? 'generic_decline');
    return { view: this.viewOf(snapshot), pending: snapshot.hasTag('opening') };
  }

  private async existingOpen(accountId: string, sessionId: string): Promise<{ view: SessionView; pending: boolean } | null> {
    const live = this.owned(accountId, sessionId);
    if (live) return this.openAnswer(live);
    if (!(await findSession(this.deps.sql, sessionId, accountId))) return null;
    await this.deps.supervisor.restore([sessionId]);
    const restored = this.owned(accountId, sessionId);
    if (restored) return this.openAnswer(await this.until(sessionId, (s) => !s.hasTag('opening'), this.deps.openWaitMs));
    const view = await this.deps.queries.view(accountId, sessionId);
    if (!view) return null;
    if (view.state === 'declined') throw errors.cardDeclined(view.declineReason ?? 'generic_decline');
    return { view, pending: false };
  }

  /**
   * Writes the new session with its hold reserved against the account's outstanding limit. A
   * hold given as maxCharge either fits or is refused; a hold derived from what is left of the
   * limit is read first and, if another open took some of it meanwhile, asked again for what
   * the refusal says is left.
   */
  private async writeOpening(request: OpenRequest, service: ServiceRecord, sessionId: string, createdAt: number): Promise<OpenedCustomer> {
    const { supervisor, journal } = this.deps;
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
      const initial = supervisor.create(input);
      let outcome: OpeningOutcome = { kind: 'no_account' };
      try {
        await journal.append({
          sessionId,
          retry: false,
          write: async (tx) => {
            outcome = await insertOpening(tx, {
              context: initial.context,
              path: statePathOf(initial.value),
              snapshot: supervisor.persistedInitial(sessionId),
              machineVersion: SESSION_MACHINE_VERSION,
              service,
              server: { name: service.serverName },
            });
            return outcome.kind === 'opened' ? outcome.events : [];
          },
        });
      } catch (error) {
        outcome = await this.afterFailedOpening(sessionId, error);
      }
      if (outcome.kind === 'opened') {
        supervisor.rememberCardToken(sessionId, outcome.customer.cardToken);
        return outcome.customer;
      }
      supervisor.discard(sessionId);
      switch (outcome.kind) {
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

  /**
   * The opening statement failed, or its answer was lost after it committed: the row says which.
   * If even that cannot be read, the open fails; a row that was written after all is an orphan,
   * which the sweep abandons.
   */
  private async afterFailedOpening(sessionId: string, error: unknown): Promise<OpeningOutcome> {
    const detail = error instanceof JournalWriteError ? error.reason : String(error);
    const row = await findSession(this.deps.sql, sessionId).catch(() => null);
    if (!row) {
      this.deps.supervisor.discard(sessionId);
      throw errors.notRecorded(detail);
    }
    const [customer] = await this.deps.sql<OpenedCustomer[]>`
      select name, email, currency, card_token as "cardToken", estimated_storage_gb::text as "estimatedStorageGb",
        estimated_processing_hours::text as "estimatedProcessingHours"
      from accounts where id = ${row.snapshot.context.accountId}`;
    if (!customer) throw errors.notRecorded(detail);
    this.deps.log.warn({ sessionId, err: detail }, 'the opening was written though its answer was lost');
    return { kind: 'opened', customer, events: [] };
  }

  private owned(accountId: string, sessionId: string): SessionSnapshot | null {
    const snapshot = this.deps.supervisor.snapshotOf(sessionId);
    return snapshot && snapshot.context.accountId === accountId ? snapshot : null;
  }

  private viewOf(snapshot: SessionSnapshot): SessionView {
    return viewOf(stateNameOf(snapshot), snapshot.context, this.deps.clock.now());
  }

  /** Until the session rests (no call in flight) or ends. */
  private untilResting(sessionId: string, timeoutMs: number): Promise<SessionSnapshot> {
    return this.until(sessionId, (s) => s.status === 'done' || s.hasTag('resting'), timeoutMs);
  }

  /**
   * Waits until `done(snapshot)` (or the timeout), then until that state is committed: an answer
   * never tells of a state that a crash could take back. A session whose writes keep failing
   * answers NOT_RECORDED.
   */
  private async until(sessionId: string, done: (snapshot: SessionSnapshot) => boolean, timeoutMs: number): Promise<SessionSnapshot> {
    const { supervisor, journal } = this.deps;
    const actor = supervisor.actorOf(sessionId);
    if (actor) await waitFor(actor, done, { timeout: timeoutMs }).catch(() => undefined);
    const snapshot = supervisor.snapshotOf(sessionId) ?? actor?.getSnapshot();
    if (!snapshot) throw errors.sessionNotFound();
    try {
      await journal.committed(sessionId);
    } catch (error) {
      if (error instanceof JournalWriteError) throw errors.notRecorded(error.reason);
      throw error;
    }
    return snapshot;
  }
}
