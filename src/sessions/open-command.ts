import { randomUUID } from 'node:crypto';
import { SESSION_MACHINE_VERSION, stateNameOf, statePathOf, type AgreedPrice, type SessionEvent, type SessionInput, type SessionSnapshot } from '../../machines/session/index.js';
import { derivedHoldRefusal, holdNeeded, limitReached, openingHeadroom, proposedHold } from '../accounts/headroom.js';
import { ClientGoneError } from '../admission/admission.js';
import { formatAmount, MICROS_PER_CENT } from '../billing/money.js';
import { minimumChargeOf } from '../billing/charge.js';
import type { ServiceRecord } from '../catalogue/catalogue.js';
import { AppError, errors } from '../errors.js';
import type { CommandDeps } from './command-deps.js';
import { JournalWriteError } from './journal.js';
import { insertOpening, type OpenedCustomer, type OpeningOutcome } from './opening-sql.js';
import { findSession } from './session-rows.js';
import { paymentToken } from '../payments/balance-gateway.js';
import { agreedHold, findQuote, usableQuote } from '../quotes/quotes.js';
import { noDearer, type TariffSpec } from '../billing/tariff.js';
import type { SessionView } from './session-view.js';
import type { SessionWaits } from './session-waits.js';

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
  /** A price agreed before (a quote): its tariff, time and total replace the service's and the request's. */
  quoteId?: string | undefined;
}

/** What a new session runs on: the service's tariff and the request's limits, or what a quote agreed. */
interface OpenTerms {
  tariff: TariffSpec;
  maxMs: number | null;
  maxChargeMicros: bigint | null;
  quote: AgreedPrice | null;
}

/**
 * Opening a session: seats first (no hold for a session that cannot run), then the intent
 * written with its share of the outstanding limit, then the card authorized by the session's
 * own machine. A client that goes away is not charged for what it never saw; one that gave an
 * Idempotency-Key gets, on retry, the session its first attempt made.
 */
export class OpenCommand {
  constructor(
    private readonly deps: CommandDeps,
    private readonly waits: SessionWaits,
  ) {}

  async open(request: OpenRequest, accepting: boolean): Promise<{ view: SessionView; pending: boolean }> {
    try {
      const answer = await this.openSession(request, accepting);
      this.deps.metrics.admissions.inc();
      return answer;
    } catch (error) {
      this.deps.metrics.rejections.inc({ code: error instanceof AppError ? error.code : error instanceof ClientGoneError ? 'CLIENT_GONE' : 'INTERNAL_ERROR' });
      throw error;
    }
  }

  private async openSession(request: OpenRequest, accepting: boolean): Promise<{ view: SessionView; pending: boolean }> {
    if (!accepting) throw errors.shuttingDown();
    const { admission, supervisor, clock } = this.deps;
    const service = this.deps.catalogue.service(request.serviceId);
    if (!service) throw errors.serviceNotFound();
    // Only the node that owns a server admits to it: its gates hold the seats (DESIGN rule 8).
    if (!supervisor.ownership.serves(service.serverId)) throw errors.serverMoving();
    if (request.sessionId) {
      // A retry of an open that made its session already answers from that session.
      const existing = await this.existingOpen(request.accountId, request.sessionId);
      if (existing) return existing;
    }
    // Nobody is charged by the minute for a service nobody can reach: refused before any seat or
    // hold (a retry of an open that made its session was answered above, from that session).
    const unreachable = this.deps.unreachable?.(service.id);
    if (unreachable) throw errors.serviceUnreachable(unreachable.detail);
    const terms = await this.termsOf(request, service);
    const sessionId = request.sessionId ?? randomUUID();
    // Seats first: no hold is placed at the card company for a session that cannot run.
    await admission.admit({
      sessionId,
      accountId: request.accountId,
      serviceId: service.id,
      serverId: service.serverId,
      waitMs: request.waitMs,
      signal: request.signal,
    });
    let customer: OpenedCustomer;
    try {
      if (request.signal?.aborted && !request.answerKept) throw new ClientGoneError();
      // A wait for a seat can outlast the service: a seat freed because its upstream was lost is no
      // reason to place a hold for a session of that service.
      const lostMeanwhile = this.deps.unreachable?.(service.id);
      if (lostMeanwhile) throw errors.serviceUnreachable(lostMeanwhile.detail);
      // Opened now, at the service as it is now: a price an operator lowered while this open waited
      // for its seat is the price (an outside probe's queued open was charged 60.00 a minute after
      // the price became 0.60); one raised, or changed otherwise, is not taken without asking (a
      // hold for its maxMinutes could be a hundred times what was asked for). A quote's price stays.
      const current = this.deps.catalogue.service(service.id);
      if (!current) throw errors.serviceNotFound();
      if (!request.quoteId && !noDearer(current.tariff, terms.tariff)) throw errors.priceChanged(formatAmount(BigInt(current.tariff.pricePerMinuteMicros)));
      const now = request.quoteId ? terms : { ...terms, tariff: current.tariff };
      customer = await this.writeOpening(request, now, current, sessionId, clock.now());
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
      snapshot = await this.waits.until(sessionId, (s) => !s.hasTag('opening'), this.deps.openWaitMs);
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

  private async termsOf(request: OpenRequest, service: ServiceRecord): Promise<OpenTerms> {
    if (!request.quoteId) return { tariff: service.tariff, maxMs: request.maxMs, maxChargeMicros: request.maxChargeMicros, quote: null };
    const now = this.deps.clock.now();
    const quote = usableQuote(await findQuote(this.deps.sql, request.quoteId, request.accountId), service.id, now);
    const hold = agreedHold(quote, quote.startAt);
    return {
      tariff: quote.tariff,
      maxMs: quote.maxMs,
      maxChargeMicros: hold,
      quote: { quoteId: quote.id, totalMicros: quote.totalMicros.toString(), startAt: quote.startAt, holdsCent: hold > quote.totalMicros },
    };
  }

  /** What an open answers for its session's state: 201 running, 202 still authorizing, or why not. */
  private openAnswer(snapshot: SessionSnapshot): { view: SessionView; pending: boolean } {
    const { context } = snapshot;
    const reason = context.declineReason;
    if (reason === 'card_network_unavailable' || reason === 'internal_error') throw errors.cardNetworkUnavailable();
    if (reason === 'ops_terminated') throw errors.openCancelled();
    if (stateNameOf(snapshot) === 'declined' || reason !== null) throw errors.cardDeclined(reason ?? 'generic_decline');
    return { view: this.waits.viewOf(snapshot), pending: snapshot.hasTag('opening') };
  }

  private async existingOpen(accountId: string, sessionId: string): Promise<{ view: SessionView; pending: boolean } | null> {
    const live = await this.waits.owned(accountId, sessionId);
    if (live) return this.openAnswer(live);
    if (!(await findSession(this.deps.sql, sessionId, accountId))) return null;
    await this.deps.supervisor.restore([sessionId]);
    const restored = await this.waits.owned(accountId, sessionId);
    if (restored) return this.openAnswer(await this.waits.until(sessionId, (s) => !s.hasTag('opening'), this.deps.openWaitMs));
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
  private async writeOpening(request: OpenRequest, agreed: OpenTerms, service: ServiceRecord, sessionId: string, createdAt: number): Promise<OpenedCustomer> {
    let terms = agreed;
    const { supervisor, journal } = this.deps;
    const derived = terms.maxChargeMicros === null;
    let available = derived ? await openingHeadroom(this.deps.sql, request.accountId, this.deps.postpaidCeilingMicros) : 0n;
    for (let attempt = 1; ; attempt++) {
      if (available === null) throw errors.unauthenticated();
      const availableMicros = available;
      const holdMicros = proposedHold({
        availableMicros,
        maxChargeMicros: terms.maxChargeMicros,
        maxMs: terms.maxMs,
        tariff: terms.tariff,
        at: createdAt,
      });
      if (holdMicros < MICROS_PER_CENT) {
        // Nothing (or under a cent) is free: the refusal names the least this open could hold.
        const needed = holdNeeded({ maxChargeMicros: terms.maxChargeMicros, maxMs: terms.maxMs, tariff: terms.tariff, at: createdAt });
        throw derived ? await derivedHoldRefusal(this.deps.sql, request.accountId, needed, availableMicros) : limitReached(needed, availableMicros);
      }
      // A session that ran at all is charged at least the minimum: a hold below it buys no time.
      const minimum = minimumChargeOf(terms.tariff);
      if (holdMicros < minimum) {
        if (!derived) throw errors.limitBelowMinimum(formatAmount(minimum));
        throw await derivedHoldRefusal(this.deps.sql, request.accountId, minimum, availableMicros);
      }
      const input: SessionInput = {
        sessionId,
        accountId: request.accountId,
        serviceId: service.id,
        serverId: service.serverId,
        currency: service.currency,
        tariff: terms.tariff,
        maxChargeMicros: holdMicros.toString(),
        maxMs: terms.maxMs,
        createdAt,
        retry: this.deps.retry,
        ...this.deps.policy,
        quote: terms.quote,
      };
      // Created, not started: its initial snapshot is what is stored, and it starts once stored.
      const initial = supervisor.create(input);
      let outcome: OpeningOutcome = { kind: 'no_account' };
      try {
        await journal.append({
          sessionId,
          lockKey: request.accountId,
          retry: false,
          write: async (tx) => {
            outcome = await insertOpening(tx, {
              context: initial.context,
              path: statePathOf(initial.value),
              snapshot: supervisor.persistedInitial(sessionId),
              machineVersion: SESSION_MACHINE_VERSION,
              service,
              server: { name: service.serverName },
              maxOpenSessions: this.deps.maxOpenSessionsPerAccount,
              ownerEpoch: supervisor.ownership.epochOf(service.serverId),
            });
            return outcome.kind === 'opened' ? outcome.events : [];
          },
        });
      } catch (error) {
        outcome = await this.afterFailedOpening(sessionId, error);
      }
      if (outcome.kind === 'opened') {
        supervisor.rememberCardToken(sessionId, paymentToken({ accountId: request.accountId, ...outcome.customer }));
        return outcome.customer;
      }
      supervisor.discard(sessionId);
      switch (outcome.kind) {
        case 'no_account':
          throw errors.unauthenticated();
        case 'account_not_open':
          throw errors.accountNotActive(outcome.state);
        case 'currency_mismatch':
          throw errors.currencyMismatch();
        case 'quote_used':
          throw errors.quoteUsed();
        case 'session_quota':
          throw errors.sessionQuotaReached(this.deps.maxOpenSessionsPerAccount);
        case 'limit_reached':
          // What the locked row said is left: the next attempt asks for that (or its time's cost).
          if (derived && attempt < 10 && outcome.availableMicros >= MICROS_PER_CENT) {
            available = outcome.availableMicros;
            continue;
          }
          // A quote's extra cent (agreedHold) does not fit, its total does: the agreed total is
          // held, and, its charge rounded to cents, its time may end a little before the time agreed.
          if (terms.quote && holdMicros > BigInt(terms.quote.totalMicros) && outcome.availableMicros >= BigInt(terms.quote.totalMicros)) {
            terms = { ...terms, maxChargeMicros: BigInt(terms.quote.totalMicros), quote: { ...terms.quote, holdsCent: false } };
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
      select name, email, currency, card_token as "cardToken", payment_mode as "paymentMode", estimated_storage_gb::text as "estimatedStorageGb",
        estimated_processing_hours::text as "estimatedProcessingHours"
      from accounts where id = ${row.snapshot.context.accountId}`;
    if (!customer) throw errors.notRecorded(detail);
    this.deps.log.warn({ sessionId, err: detail }, 'the opening was written though its answer was lost');
    return { kind: 'opened', customer, events: [] };
  }
}
