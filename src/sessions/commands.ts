import {
  extensionRefusal,
  stateNameOf,
  statePathOf,
  type SessionEvent,
} from '../../machines/session/index.js';
import { availableHeadroom } from '../accounts/headroom.js';
import { recordAudit } from '../audit/audit-log.js';
import type { ChangedBy } from '../catalogue/catalogue-service.js';
import { formatAmount } from '../billing/money.js';
import { AppError, errors } from '../errors.js';
import type { CommandDeps } from './command-deps.js';
import { OpenCommand, type OpenRequest } from './open-command.js';
import { authorizingSince, runningOfService, unsettledOf } from './session-rows.js';
import type { SessionView } from './session-view.js';
import { Metering } from './metering.js';
import { SessionWaits } from './session-waits.js';

export type { CommandDeps } from './command-deps.js';
export type { OpenRequest } from './open-command.js';



const OPS_EVENTS = { terminate: 'TERMINATE', retry: 'RETRY', void: 'VOID' } as const;
export type OpsAction = keyof typeof OPS_EVENTS;

/**
 * What customers and operators ask of sessions. Each command sends one event to one actor,
 * accepted when the actor's snapshot can take it (DESIGN rule 12), waits until the session is
 * at rest and that state is committed, and answers with its view.
 */
export class SessionCommands {
  private accepting = true;
  private readonly waits: SessionWaits;
  /** Uses priced per use, reported by the service itself (the metering API). */
  readonly metering: Metering;
  private readonly opener: OpenCommand;

  constructor(private readonly deps: CommandDeps) {
    this.waits = new SessionWaits(deps);
    this.opener = new OpenCommand(deps, this.waits);
    this.metering = new Metering(deps, this.waits);
  }

  /** Opens a session: seats, the intent written, the card authorized (src/sessions/open-command.ts). */
  open(request: OpenRequest): Promise<{ view: SessionView; pending: boolean }> {
    return this.opener.open(request, this.accepting);
  }

  /** Ends a customer's session; `settled` is false when the charge slip is still pending. */
  async logoff(accountId: string, sessionId: string): Promise<{ view: SessionView; settled: boolean }> {
    const snapshot = await this.waits.owned(accountId, sessionId);
    const event: SessionEvent = { type: 'LOGOFF', at: this.deps.clock.now() };
    if (!snapshot || !snapshot.can(event)) {
      const view = snapshot ? this.waits.viewOf(snapshot) : await this.deps.queries.view(accountId, sessionId);
      if (!view) throw errors.sessionNotFound();
      if (view.endReason !== 'logoff') throw errors.sessionNotActive(view.state);
      // A repeated logoff of a session that ended by logoff answers as the first did, once the
      // first's outcome is recorded (a double click sent both at once: the second had answered
      // from a session still on its way, its page then showing it running).
      if (!snapshot) return { view, settled: view.state === 'settled' };
      const after = await this.waits.untilResting(sessionId, this.deps.logoffWaitMs);
      return { view: this.waits.viewOf(after), settled: after.status === 'done' };
    }
    this.deps.supervisor.send(sessionId, event);
    const after = await this.waits.untilResting(sessionId, this.deps.logoffWaitMs);
    return { view: this.waits.viewOf(after), settled: after.status === 'done' };
  }

  /**
   * Raises a running session's charge limit: the session reserves the extra share of the
   * outstanding limit, then asks the card company to raise its hold. One at a time.
   */
  async extend(accountId: string, sessionId: string, maxChargeMicros: bigint): Promise<SessionView> {
    const snapshot = await this.waits.owned(accountId, sessionId);
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
      return this.waits.viewOf(snapshot);
    }
    if (!snapshot.hasTag('extendable')) throw errors.sessionNotActive(stateNameOf(snapshot));
    // More time on a service nobody can reach is not sold (its session ends once the service is lost).
    const unreachable = this.deps.unreachable?.(context.serviceId);
    if (unreachable) throw errors.serviceUnreachable(unreachable.detail, 'the limit was not raised');
    if (refusal === 'not_higher') throw errors.validation('maxCharge must be above the session’s current limit.');
    if (refusal === 'time_limit_binds') throw errors.timeLimitBinds();
    const event: SessionEvent = { type: 'EXTEND', at: this.deps.clock.now(), maxChargeMicros: maxChargeMicros.toString() };
    if (!snapshot.can(event)) throw errors.sessionNotActive(stateNameOf(snapshot));
    const attempt = context.extensions;
    this.deps.supervisor.send(sessionId, event);
    const after = await this.waits.until(sessionId, (s) => s.context.extensions > attempt || s.status === 'done', this.deps.openWaitMs);
    const extension = after.context.extension;
    // The session ended (a logoff, a suspension, its limit) before the extension was decided: it did not happen.
    if (after.context.extensions === attempt && !after.hasTag('extending')) {
      // Asked while it ran, overtaken by its own cutoff (a slow card): said as such, not as a session that was not active.
      const reason = after.context.endReason;
      if (reason === 'charge_limit' || reason === 'time_limit') throw errors.extensionTooLate(stateNameOf(after), reason);
      throw errors.sessionNotActive(stateNameOf(after));
    }
    if (after.context.extensions > attempt && extension?.outcome === 'declined') {
      if (extension.reason === 'outstanding_limit_reached') {
        // Never less than nothing: postpaid sessions of the account may hold past its limit.
        const headroom = (await availableHeadroom(this.deps.sql, accountId)) ?? 0n;
        const available = headroom < 0n ? 0n : headroom;
        throw errors.outstandingLimitReached(
          formatAmount(available),
          `Raising the limit needs ${formatAmount(maxChargeMicros - BigInt(extension.fromMicros))} more but only ${formatAmount(available)} of the outstanding limit is free.`,
        );
      }
      if (extension.reason === 'card_network_unavailable') throw errors.cardNetworkUnavailable();
      throw errors.cardDeclined(extension.reason ?? 'generic_decline');
    }
    return this.waits.viewOf(after);
  }

  /**
   * An operator's action, sent to the session's machine like any event: terminate (ends a
   * running session, or gives up on an authorization), retry (the call it waits on, now; for a
   * session held by this process, run it again), void (forgive a charge that cannot be captured; not while its capture is on its way).
   */
  async opsAction(sessionId: string, action: OpsAction, by: ChangedBy): Promise<void> {
    const before = await this.deps.queries.opsView(sessionId);
    if (!before) throw errors.sessionNotFound();
    await this.applyOpsAction(sessionId, action);
    // The session's machine writes through the journal, not through a transaction of ours: the
    // entry follows the action it records, with the session as it was and as it is.
    const after = await this.deps.queries.opsView(sessionId);
    const brief = (view: typeof before | null) =>
      view && { state: view.state, path: view.path, stuck: view.stuck, stuckReason: view.stuckReason, held: view.held, charge: view.charge, endReason: view.endReason };
    await recordAudit(this.deps.sql, {
      ...by,
      action: `session.${action}`,
      targetType: 'session',
      targetId: sessionId,
      before: brief(before),
      after: brief(after),
      at: this.deps.clock.now(),
    });
  }

  private async applyOpsAction(sessionId: string, action: OpsAction): Promise<void> {
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
    const snapshot = await supervisor.awake(sessionId);
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
    await this.waits.untilResting(sessionId, this.deps.logoffWaitMs).catch((error: unknown) => {
      if (!(error instanceof AppError && error.code === 'NOT_RECORDED')) throw error;
    });
  }

  /**
   * Ends every unsettled session of an account whose state ends sessions (suspended, closed):
   * each is sent TERMINATE when its machine can take it, as an operator's terminate is, and is
   * waited for until it rests, so its capture has been asked for. A session held by this process
   * or stuck stays as it is, for an operator.
   */
  async endAccountSessions(accountId: string): Promise<void> {
    const ids = await unsettledOf(this.deps.sql, accountId);
    await this.endEach(ids, () => ({ type: 'TERMINATE', at: this.deps.clock.now() }), { accountId }, 'a session of a suspended account is still ending');
  }

  /**
   * Sends each session this process runs (and does not hold) the event, where its machine can take
   * it, and waits until each rests, so its capture has been asked for. Answers how many took it.
   */
  private async endEach(ids: string[], eventOf: () => SessionEvent, about: object, stillEnding: string): Promise<number> {
    const { supervisor } = this.deps;
    let ended = 0;
    await Promise.all(
      ids.map(async (sessionId) => {
        if (supervisor.heldOf(sessionId)) return;
        const snapshot = await supervisor.awake(sessionId);
        const event = eventOf();
        if (!snapshot?.can(event)) return;
        supervisor.send(sessionId, event);
        ended++;
        await this.waits.untilResting(sessionId, this.deps.logoffWaitMs).catch((error: unknown) => {
          this.deps.log.warn({ sessionId, ...about, err: String(error) }, stillEnding);
        });
      }),
    );
    return ended;
  }

  /**
   * Ends the running sessions of a service whose upstream takes no connections
   * (src/edge/upstream-health.ts): each is sent SERVICE_LOST, charged up to `since`, and waited for
   * as a terminate is. Only sessions this node hosts: in a cluster each node ends its own.
   */
  async endServiceSessions(serviceId: string, since: number): Promise<number> {
    const ids = await runningOfService(this.deps.sql, serviceId);
    const ended = await this.endEach(ids, () => ({ type: 'SERVICE_LOST', at: this.deps.clock.now(), since }), { serviceId }, 'a session of a lost service is still ending');
    if (ended > 0) this.deps.log.warn({ serviceId, ended, since: new Date(since).toISOString() }, 'sessions of a service whose upstream is lost ended');
    return ended;
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


}
