import { fromPromise } from 'xstate';
import type {
  AuthorizeInput,
  AuthorizeOutcome,
  CallOutcome,
  CaptureInput,
  CaptureOutcome,
  HoldInfo,
  IncrementInput,
  IncrementOutcome,
  ReleaseInput,
  RenewInput,
  RenewOutcome,
  ReserveInput,
  ReserveOutcome,
  VoidInput,
} from '../../machines/session/index.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';
import { reserveShare } from './reservations-sql.js';
import { CardNetworkRequestError } from '../payments/card-network-client.js';
import { CardDeclinedError, CardNetworkUnavailableError, type CardGateway, type Hold } from '../payments/gateway.js';
import type { Logger } from '../logger.js';
import { paymentToken, type PaymentMode } from '../payments/balance-gateway.js';

export interface EffectDeps {
  sql: Sql;
  gateway: CardGateway;
  clock: Clock;
  log: Logger;
  /**
   * Resolves once the session's latest transition is committed, however long that takes: the
   * intent is written before anything goes out (DESIGN rules 3 and 13).
   */
  durable(sessionId: string): Promise<void>;
  /** The fencing token of the session's writes (null: not fenced; see src/cluster/ownership.ts). */
  epochOf(sessionId: string): bigint | null;
  /** The card token read when the session opened, if this process still has it. */
  takeCardToken(sessionId: string): string | undefined;
  /**
   * Whether the session, run here, has moved on from renewing its hold (a logoff, the cutoff).
   * False while it renews, and when it no longer runs here (let go, shutting down): its next run
   * replays the renewal by its key and must find the hold it placed.
   */
  leftRenewing(sessionId: string): boolean;
}

/**
 * Idempotency keys are derived from the session and the operation (DESIGN rule 3), so a call
 * re-driven after a crash or a lost answer is answered by the card company, not repeated.
 */
export const idempotencyKeys = {
  authorize: (sessionId: string, attempt: number) => (attempt === 0 ? `${sessionId}:authorize` : `${sessionId}:authorize:${attempt}`),
  extend: (sessionId: string, attempt: number) => `${sessionId}:extend:${attempt}`,
  capture: (sessionId: string) => `${sessionId}:capture`,
  void: (sessionId: string, holdId: string) => `${sessionId}:void:${holdId}`,
};

const describe = (error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}` : String(error));

/**
 * A failure is retryable when no answer came (timeouts, 5xx, connection errors, after the
 * client's own retries), or when the card company declined a capture or a void (its processing
 * failed: a decline of a call on a hold already granted is the network's, not the card's). Any
 * other answer (a reused key, a hold that is no longer open, a body that makes no sense) will be
 * the same next time: it is permanent, and an operator decides.
 */
function failure(error: unknown, at: number): { kind: 'unanswered' | 'refused'; detail: string; at: number } {
  const retryable = error instanceof CardNetworkUnavailableError || error instanceof CardDeclinedError;
  return { kind: retryable ? 'unanswered' : 'refused', detail: describe(error), at };
}

/** The session machine's effects, as the named actors it declares; failures come back as data. */
export function sessionEffects(deps: EffectDeps) {
  const { sql, gateway, clock, log } = deps;

  const holdInfo = (hold: Hold): HoldInfo => ({
    holdId: hold.holdId,
    authorizationNumber: hold.authorizationNumber,
    amountMicros: hold.amountMicros.toString(),
    authorizedAt: clock.now(),
    expiresAt: hold.expiresAt,
  });

  async function cardToken(input: AuthorizeInput): Promise<string> {
    const known = deps.takeCardToken(input.sessionId);
    if (known) return known;
    const [account] = await sql<{ cardToken: string; paymentMode: PaymentMode }[]>`
      select card_token as "cardToken", payment_mode as "paymentMode" from accounts where id = ${input.accountId}`;
    if (!account) throw new Error(`account ${input.accountId} not found`);
    return paymentToken({ accountId: input.accountId, ...account });
  }

  async function authorize(input: AuthorizeInput): Promise<Hold> {
    return gateway.authorize({
      token: await cardToken(input),
      amountMicros: BigInt(input.amountMicros),
      currency: input.currency,
      reference: input.sessionId,
      idempotencyKey: idempotencyKeys.authorize(input.sessionId, input.attempt),
    });
  }

  /**
   * The card company finds the amount asked below the hold: an earlier increment whose answer was
   * lost did raise it (to `mayHoldMicros`, what that one asked). Asked for exactly that, it answers
   * with the hold as it is, which then covers the limit asked now. Null when that is not the case.
   */
  async function raisedEarlier(input: IncrementInput, error: unknown): Promise<Hold | null> {
    if (!(error instanceof CardNetworkRequestError && error.code === 'amount_below_hold') || input.mayHoldMicros == null) return null;
    if (BigInt(input.mayHoldMicros) <= BigInt(input.amountMicros)) return null;
    try {
      return await gateway.increment({
        holdId: input.holdId,
        amountMicros: BigInt(input.mayHoldMicros),
        idempotencyKey: `${idempotencyKeys.extend(input.sessionId, input.attempt)}:held`,
      });
    } catch {
      return null;
    }
  }

  /** Replays an unanswered authorization by its key and voids what it placed; what fails is left to the reconciler. */
  async function releaseQuietly(input: AuthorizeInput): Promise<void> {
    try {
      await voidAll(input.sessionId, [(await authorize(input)).holdId]);
    } catch (error) {
      if (!(error instanceof CardDeclinedError)) log.warn({ sessionId: input.sessionId, err: describe(error) }, 'letting go of an unanswered renewal failed; the reconciler voids any hold it placed');
    }
  }

  async function authorizeOutcome(input: AuthorizeInput): Promise<AuthorizeOutcome> {
    try {
      return { kind: 'held', hold: holdInfo(await authorize(input)), at: clock.now() };
    } catch (error) {
      if (error instanceof CardDeclinedError) return { kind: 'declined', reason: error.reason, at: clock.now() };
      log.warn({ sessionId: input.sessionId, err: describe(error) }, 'authorization failed');
      // Unreachable (every connection refused): no hold can exist, so there is nothing to release.
      if (error instanceof CardNetworkUnavailableError && !error.mayHaveCommitted) {
        return { kind: 'declined', reason: 'card_network_unavailable', at: clock.now() };
      }
      return failure(error, clock.now());
    }
  }

  /**
   * Waits until what the session is about to do is committed (DESIGN rules 3 and 13). An actor
   * stopped meanwhile (its server's lease lost, or handed over) calls out nothing: its promise
   * runs on after the stop, but the node that now runs the session drives the call from its row.
   */
  async function intentWritten(sessionId: string, signal: AbortSignal): Promise<void> {
    await deps.durable(sessionId);
    if (signal.aborted) throw new Error(`session ${sessionId} no longer runs here`);
  }

  /** Voids the holds a session leaves behind (replaced by a renewal); each void is idempotent. */
  async function voidAll(sessionId: string, holdIds: string[]): Promise<void> {
    for (const holdId of holdIds) await gateway.void({ holdId, idempotencyKey: idempotencyKeys.void(sessionId, holdId) });
  }

  return {
    authorizeHold: fromPromise<AuthorizeOutcome, AuthorizeInput>(async ({ input, signal }) => {
      await intentWritten(input.sessionId, signal);
      return authorizeOutcome(input);
    }),

    // The first answer was lost: replaying the authorization with its key returns the hold if
    // it was placed (or places it now); voiding that leaves nothing held either way. Only the
    // authorization's decline means no hold: a void declined on the line leaves the hold open,
    // and is tried again (CI's card-faults-load, 2026-12-01: two holds left open that way).
    releaseAuthorization: fromPromise<CallOutcome, ReleaseInput>(async ({ input, signal }) => {
      await intentWritten(input.sessionId, signal);
      const failed = (error: unknown) => {
        log.warn({ sessionId: input.sessionId, err: describe(error) }, 'releasing an unanswered authorization failed');
        return failure(error, clock.now());
      };
      let hold: Hold;
      try {
        hold = await authorize(input);
      } catch (error) {
        if (error instanceof CardDeclinedError) return { kind: 'done', at: clock.now() };
        return failed(error);
      }
      try {
        await voidAll(input.sessionId, [hold.holdId]);
        return { kind: 'done', at: clock.now() };
      } catch (error) {
        return failed(error);
      }
    }),

    // A new hold before the old one lapses; the old one is voided now, or before settling.
    renewHold: fromPromise<RenewOutcome, RenewInput>(async ({ input, signal }) => {
      await intentWritten(input.sessionId, signal);
      const outcome = await authorizeOutcome(input);
      if (outcome.kind === 'unanswered' && input.lastTry && !signal.aborted) {
        // The session ends on its old hold: a new one this try may have placed is let go of now
        // (replayed by its key, then voided), not left for the reconciler's next round.
        await releaseQuietly(input);
        return outcome;
      }
      if (outcome.kind !== 'held') return outcome;
      if (signal.aborted) {
        // The session left renewing meanwhile (a logoff, the cutoff) and closes on the old hold: the
        // new one is nobody's, and the old one must not be voided under its capture (review). Let go
        // of or stopped while renewing, it voids nothing: its next run replays this renewal.
        if (deps.leftRenewing(input.sessionId)) {
          await voidAll(input.sessionId, [outcome.hold.holdId]).catch((error: unknown) =>
            log.warn({ sessionId: input.sessionId, err: describe(error) }, 'voiding a renewal nobody waits for failed; the reconciler voids it'),
          );
        }
        return { ...outcome, staleHoldId: null };
      }
      try {
        await voidAll(input.sessionId, [input.previousHoldId]);
        return { ...outcome, staleHoldId: null };
      } catch (error) {
        log.warn({ sessionId: input.sessionId, err: describe(error) }, 'voiding a renewed hold failed; voided at settlement');
        return { ...outcome, staleHoldId: input.previousHoldId };
      }
    }),

    reserveExtension: fromPromise<ReserveOutcome, ReserveInput>(async ({ input, signal }) => {
      await intentWritten(input.sessionId, signal);
      try {
        const reserved = await transaction(sql, (tx) => reserveShare(tx, input, deps.epochOf(input.sessionId)));
        return reserved ? { kind: 'reserved', at: clock.now() } : { kind: 'declined', reason: 'outstanding_limit_reached', at: clock.now() };
      } catch (error) {
        log.warn({ sessionId: input.sessionId, err: describe(error) }, 'reserving an extension failed');
        return { kind: 'unanswered', detail: describe(error), at: clock.now() };
      }
    }),

    incrementHold: fromPromise<IncrementOutcome, IncrementInput>(async ({ input, signal }) => {
      await intentWritten(input.sessionId, signal);
      try {
        const hold = await gateway.increment({
          holdId: input.holdId,
          amountMicros: BigInt(input.amountMicros),
          idempotencyKey: idempotencyKeys.extend(input.sessionId, input.attempt),
        });
        return { kind: 'raised', hold: holdInfo(hold), at: clock.now() };
      } catch (error) {
        if (error instanceof CardDeclinedError) return { kind: 'declined', reason: error.reason, at: clock.now() };
        const raised = await raisedEarlier(input, error);
        if (raised) return { kind: 'raised', hold: holdInfo(raised), at: clock.now() };
        log.warn({ sessionId: input.sessionId, err: describe(error) }, 'incremental authorization failed');
        return failure(error, clock.now());
      }
    }),

    captureCharge: fromPromise<CaptureOutcome, CaptureInput>(async ({ input, signal }) => {
      await intentWritten(input.sessionId, signal);
      try {
        await voidAll(input.sessionId, input.staleHoldIds);
        const capture = await gateway.capture({
          holdId: input.holdId,
          amountMicros: BigInt(input.amountMicros),
          idempotencyKey: idempotencyKeys.capture(input.sessionId),
        });
        return {
          kind: 'captured',
          slip: { id: capture.captureId, authorizationNumber: capture.authorizationNumber, amountMicros: capture.amountMicros.toString() },
          at: clock.now(),
        };
      } catch (error) {
        log.warn({ sessionId: input.sessionId, err: describe(error) }, 'capture failed');
        return failure(error, clock.now());
      }
    }),

    voidHold: fromPromise<CallOutcome, VoidInput>(async ({ input, signal }) => {
      await intentWritten(input.sessionId, signal);
      try {
        await voidAll(input.sessionId, [...input.staleHoldIds, input.holdId]);
        return { kind: 'done', at: clock.now() };
      } catch (error) {
        log.warn({ sessionId: input.sessionId, err: describe(error) }, 'void failed');
        return failure(error, clock.now());
      }
    }),
  };
}
