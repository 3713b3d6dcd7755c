import { stateNameOf, usesLeave, type SessionEvent, type SessionSnapshot } from '../../machines/session/index.js';
import { formatAmount } from '../billing/money.js';
import { errors } from '../errors.js';
import type { CommandDeps } from './command-deps.js';
import type { SessionWaits } from './session-waits.js';

/** What the metering API answers: where the session's uses and limit stand. */
export interface UseAnswer {
  sessionId: string;
  /** The reservation made (for a query), or the one committed or released. */
  reservationId: string | null;
  state: string;
  usedUnits: number;
  used: string;
  reserved: string;
  cutoffAt: string | null;
  /** False when the reservation had already been committed or released: nothing was done again. */
  applied: boolean;
}

/**
 * Uses priced per use (the IMS metering API's query / commit / release, for services that tollgate
 * does not proxy; the edge meters the ones it does): each is one event to the session's machine,
 * which refuses a use that would pass the limit and cuts the session at exactly its limit.
 */
export class Metering {
  constructor(
    private readonly deps: CommandDeps,
    private readonly waits: SessionWaits,
  ) {}

  /** May this session use `units` now? If so they are reserved, and held back from what time may spend. */
  async reserve(serviceId: string, sessionId: string, units: number): Promise<UseAnswer> {
    await this.metered(serviceId, sessionId);
    // Read again with nothing awaited before the send: another request may have reserved meanwhile.
    const current = this.deps.supervisor.snapshotOf(sessionId);
    const event: SessionEvent = { type: 'RESERVE_USE', at: this.deps.clock.now(), units };
    if (!current || !current.can(event)) throw errors.useLimitReached(units);
    const reservationId = `r${current.context.uses.next}`;
    this.deps.supervisor.send(sessionId, event);
    if (!this.deps.supervisor.snapshotOf(sessionId)?.context.uses.open[reservationId]) throw errors.useLimitReached(units);
    return this.answer(sessionId, reservationId, true);
  }

  /** `units` used at once, without a reservation first: charged in one step, or refused whole. */
  async use(serviceId: string, sessionId: string, units: number): Promise<UseAnswer> {
    await this.metered(serviceId, sessionId);
    const current = this.deps.supervisor.snapshotOf(sessionId);
    const event: SessionEvent = { type: 'USE', at: this.deps.clock.now(), units };
    if (!current || !current.can(event)) throw errors.useLimitReached(units);
    this.deps.supervisor.send(sessionId, event);
    return this.answer(sessionId, null, true);
  }

  /** Whether the session's requests through the edge are charged one by one (its tariff says, for the session's life). */
  async chargesPerRequest(sessionId: string): Promise<boolean> {
    const snapshot = await this.deps.supervisor.awake(sessionId);
    if (snapshot) return snapshot.context.tariff.perUse?.unit === 'request';
    const [row] = await this.deps.sql<{ unit: string | null }[]>`
      select snapshot->'context'->'tariff'->'perUse'->>'unit' as unit from sessions where id = ${sessionId}`;
    return row?.unit === 'request';
  }

  /**
   * One request (or WebSocket) through the edge to a service priced per request: one unit is
   * reserved before it is let through (written before the answer), or it is refused with 402 when
   * it would pass the limit; `settleRequest` commits the unit once the service answered, or gives
   * it back when it never did (unreachable, refused, cut first). False when the service is not
   * priced per request (nothing to charge); 'elsewhere' when it is but another node runs the
   * session (woken only where it is held): only the node running it can charge it.
   */
  async reserveRequest(sessionId: string, options: { stream?: boolean } = {}): Promise<string | false | 'elsewhere'> {
    const snapshot = await this.deps.supervisor.awake(sessionId);
    if (!snapshot) {
      const [row] = await this.deps.sql<{ unit: string | null }[]>`
        select snapshot->'context'->'tariff'->'perUse'->>'unit' as unit from sessions where id = ${sessionId}`;
      return row?.unit === 'request' ? 'elsewhere' : false;
    }
    if (snapshot.context.tariff.perUse?.unit !== 'request') return false;
    const current = this.deps.supervisor.snapshotOf(sessionId);
    const event: SessionEvent = { type: 'RESERVE_USE', at: this.deps.clock.now(), units: 1, edge: true };
    if (!current || !current.can(event)) throw errors.useLimitReached(1);
    // A stream (a WebSocket) is never served past the end its own unit would cause: it needs room
    // left after it, or it is refused without ending the session.
    if (options.stream && (usesLeave(current.context, event.at, 1) ?? 0n) <= 0n) throw errors.useLimitReached(1);
    const reservationId = `r${current.context.uses.next}`;
    this.deps.supervisor.send(sessionId, event);
    if (!this.deps.supervisor.snapshotOf(sessionId)?.context.uses.open[reservationId]) throw errors.useLimitReached(1);
    this.deps.supervisor.edgeInFlight.add(`${sessionId} ${reservationId}`);
    try {
      await this.waits.untilResting(sessionId, this.deps.openWaitMs);
      await this.deps.journal.committed(sessionId);
    } catch (error) {
      // Not recorded: the request does not go, and its unit goes back.
      await this.settleRequest(sessionId, reservationId, false);
      throw error;
    }
    return reservationId;
  }

  /**
   * The request reserved by `reserveRequest` was answered by the service (`used`: its unit is
   * charged) or never reached it (given back). The session is woken if it went cold meanwhile (a
   * slow answer). True when it was applied; false when the session could no longer take it: closed
   * (by a logoff, an operator, the window for late uses), which gave the unit back already, or run
   * by another node now (logged; the unit goes back when the session ends there).
   */
  async settleRequest(sessionId: string, reservationId: string, used: boolean): Promise<boolean> {
    this.deps.supervisor.edgeInFlight.delete(`${sessionId} ${reservationId}`);
    const current = (await this.deps.supervisor.awake(sessionId).catch(() => null)) && this.deps.supervisor.snapshotOf(sessionId);
    const at = this.deps.clock.now();
    const event: SessionEvent = used ? { type: 'COMMIT_USE', at, reservationId, units: 1 } : { type: 'RELEASE_USE', at, reservationId };
    if (current && current.can(event)) {
      this.deps.supervisor.send(sessionId, event);
      return true;
    }
    this.deps.log.info({ sessionId, reservationId, used, here: Boolean(current) }, 'a request\'s reservation could not be settled: the session no longer takes it');
    return false;
  }

  /** `units` of a reservation were used (at most what it reserved); the rest goes back. Safe to repeat. */
  async commit(serviceId: string, sessionId: string, reservationId: string, units: number): Promise<UseAnswer> {
    const snapshot = this.now(sessionId, await this.metered(serviceId, sessionId, { endedIsAnswer: true }));
    const open = snapshot.context.uses.open[reservationId];
    if (!open) return this.repeated(snapshot, reservationId);
    if (units > open.units) throw errors.validation(`The reservation holds ${open.units} units; ${units} cannot be committed.`);
    // A session that left `active` (closing, its charge on its way to the card company) takes no
    // more uses: said so, never answered "applied" for a use nobody will be charged for.
    this.sendOrRefuse(snapshot, sessionId, { type: 'COMMIT_USE', at: this.deps.clock.now(), reservationId, units });
    return this.answer(sessionId, reservationId, true);
  }

  /** A reservation not used at all goes back. Safe to repeat. */
  async release(serviceId: string, sessionId: string, reservationId: string): Promise<UseAnswer> {
    const snapshot = this.now(sessionId, await this.metered(serviceId, sessionId, { endedIsAnswer: true }));
    if (!snapshot.context.uses.open[reservationId]) return this.repeated(snapshot, reservationId);
    this.sendOrRefuse(snapshot, sessionId, { type: 'RELEASE_USE', at: this.deps.clock.now(), reservationId });
    return this.answer(sessionId, reservationId, true);
  }

  /** The session as it is now: another call woken with this one may have changed it since. */
  private now(sessionId: string, woken: SessionSnapshot): SessionSnapshot {
    return this.deps.supervisor.snapshotOf(sessionId) ?? woken;
  }

  /** Sends what the session (as it is now: nothing awaited since `now`) takes; 409 SESSION_NOT_ACTIVE when it no longer would. */
  private sendOrRefuse(current: SessionSnapshot, sessionId: string, event: SessionEvent): void {
    if (!current.can(event)) throw errors.sessionNotActive(stateNameOf(current));
    this.deps.supervisor.send(sessionId, event);
  }

  /** The session running here for this service, priced per use; a repeat may find it ended. */
  private async metered(serviceId: string, sessionId: string, options: { endedIsAnswer?: boolean } = {}): Promise<SessionSnapshot> {
    const snapshot = await this.deps.supervisor.awake(sessionId);
    if (!snapshot) {
      // Not running here: ended (its uses can no longer change), or not this service's.
      const [row] = await this.deps.sql<{ state: string }[]>`select state from sessions where id = ${sessionId} and service_id = ${serviceId}`;
      throw row ? errors.sessionNotActive(row.state) : errors.sessionNotFound();
    }
    if (snapshot.context.serviceId !== serviceId) throw errors.sessionNotFound();
    if (!snapshot.context.tariff.perUse) throw errors.notPricedPerUse();
    // Its requests are counted at the edge, and their reservations are the edge's to settle.
    if (snapshot.context.tariff.perUse.unit === 'request') throw errors.meteredAtTheEdge();
    if (!snapshot.hasTag('billable') && !options.endedIsAnswer) throw errors.sessionNotActive(stateNameOf(snapshot));
    return snapshot;
  }

  /**
   * A reservation that is not open was committed or released before (or never made). Once the
   * session takes no more uses, nothing tells a commit made before from a reservation its close
   * gave back: it has ended (409), never "applied before".
   */
  private repeated(snapshot: SessionSnapshot, reservationId: string): UseAnswer {
    if (!snapshot.hasTag('billable') && !snapshot.matches({ over_limit: 'awaiting_uses' })) throw errors.sessionNotActive(stateNameOf(snapshot));
    const number = Number(reservationId.slice(1));
    if (!(number >= 1 && number < snapshot.context.uses.next)) throw errors.reservationNotFound();
    return { ...this.usesOf(snapshot), reservationId, applied: false };
  }

  private async answer(sessionId: string, reservationId: string | null, applied: boolean): Promise<UseAnswer> {
    const after = await this.waits.untilResting(sessionId, this.deps.openWaitMs);
    return { ...this.usesOf(after), reservationId, applied };
  }

  private usesOf(snapshot: SessionSnapshot): Omit<UseAnswer, 'reservationId' | 'applied'> {
    const { context } = snapshot;
    return {
      sessionId: context.sessionId,
      state: stateNameOf(snapshot),
      usedUnits: context.uses.usedUnits,
      used: formatAmount(BigInt(context.uses.usedMicros)),
      reserved: formatAmount(BigInt(context.uses.reservedMicros)),
      cutoffAt: context.cutoffAt === null ? null : new Date(context.cutoffAt).toISOString(),
    };
  }
}
