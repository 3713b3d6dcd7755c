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
  InterruptInput,
  ReleaseInput,
  RenewInput,
  RenewOutcome,
  VoidInput,
  VoidOutcome,
} from '../../machines/session/index.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import { CardDeclinedError, CardNetworkUnavailableError, type CardGateway, type Hold } from '../payments/gateway.js';
import type { Logger } from '../logger.js';

export interface EffectDeps {
  sql: Sql;
  gateway: CardGateway;
  clock: Clock;
  log: Logger;
  /** Resolves once the session's latest state is committed: the intent is written first (DESIGN rule 3). */
  durable(sessionId: string): Promise<void>;
  /** The card token read when the session opened, if this process still has it. */
  takeCardToken(sessionId: string): string | undefined;
}

/**
 * Idempotency keys are derived from the session and the operation (DESIGN rule 3), so a call
 * re-driven after a crash or a lost answer is answered by the card company, not repeated.
 */
export const idempotencyKeys = {
  authorize: (sessionId: string, attempt: number) =>
    attempt === 0 ? `${sessionId}:authorize` : `${sessionId}:authorize:${attempt}`,
  extend: (sessionId: string, attempt: number) => `${sessionId}:extend:${attempt}`,
  capture: (sessionId: string) => `${sessionId}:capture`,
  void: (sessionId: string, holdId: string) => `${sessionId}:void:${holdId}`,
};

const describe = (error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}` : String(error));

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
    const [account] = await sql<{ cardToken: string }[]>`
      select card_token as "cardToken" from accounts where id = ${input.accountId}`;
    if (!account) throw new Error(`account ${input.accountId} not found`);
    return account.cardToken;
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

  async function authorizeOutcome(input: AuthorizeInput): Promise<AuthorizeOutcome> {
    try {
      return { ok: true, hold: holdInfo(await authorize(input)), at: clock.now() };
    } catch (error) {
      if (error instanceof CardDeclinedError) return { ok: false, declined: true, reason: error.reason, at: clock.now() };
      log.warn({ sessionId: input.sessionId, err: describe(error) }, 'authorization failed');
      // Unreachable (every connection refused): no hold can exist, so there is nothing to release.
      if (error instanceof CardNetworkUnavailableError && !error.mayHaveCommitted) {
        return { ok: false, declined: true, reason: 'card_network_unavailable', at: clock.now() };
      }
      return { ok: false, declined: false, detail: describe(error), at: clock.now() };
    }
  }

  /** Voids the holds a session leaves behind (replaced by a renewal); each void is idempotent. */
  async function voidAll(sessionId: string, holdIds: string[]): Promise<void> {
    for (const holdId of holdIds) await gateway.void({ holdId, idempotencyKey: idempotencyKeys.void(sessionId, holdId) });
  }

  return {
    authorizeHold: fromPromise<AuthorizeOutcome, AuthorizeInput>(async ({ input }) => {
      await deps.durable(input.sessionId);
      return authorizeOutcome(input);
    }),

    // The first answer was lost: replaying the authorization with its key returns the hold if
    // it was placed (or places it now); voiding that leaves nothing held either way.
    releaseAuthorization: fromPromise<CallOutcome, ReleaseInput>(async ({ input }) => {
      await deps.durable(input.sessionId);
      try {
        const hold = await authorize(input);
        await voidAll(input.sessionId, [hold.holdId]);
        return { ok: true, at: clock.now() };
      } catch (error) {
        if (error instanceof CardDeclinedError) return { ok: true, at: clock.now() };
        log.warn({ sessionId: input.sessionId, err: describe(error) }, 'releasing an unanswered authorization failed');
        return { ok: false, detail: describe(error), at: clock.now() };
      }
    }),

    // A new hold before the old one lapses; the old one is voided now, or before settling.
    renewHold: fromPromise<RenewOutcome, RenewInput>(async ({ input }) => {
      await deps.durable(input.sessionId);
      const outcome = await authorizeOutcome(input);
      if (!outcome.ok) return outcome;
      try {
        await voidAll(input.sessionId, [input.previousHoldId]);
        return outcome;
      } catch (error) {
        log.warn({ sessionId: input.sessionId, err: describe(error) }, 'voiding a renewed hold failed; voided at settlement');
        return { ...outcome, staleHoldId: input.previousHoldId };
      }
    }),

    incrementHold: fromPromise<IncrementOutcome, IncrementInput>(async ({ input }) => {
      await deps.durable(input.sessionId);
      try {
        const hold = await gateway.increment({
          holdId: input.holdId,
          amountMicros: BigInt(input.amountMicros),
          idempotencyKey: idempotencyKeys.extend(input.sessionId, input.attempt),
        });
        return { ok: true, hold: holdInfo(hold), at: clock.now() };
      } catch (error) {
        if (error instanceof CardDeclinedError) return { ok: false, declined: true, reason: error.reason, at: clock.now() };
        log.warn({ sessionId: input.sessionId, err: describe(error) }, 'incremental authorization failed');
        return { ok: false, declined: false, reason: 'card_network_unavailable', at: clock.now() };
      }
    }),

    // tollgate does not proxy the upstream yet: access is revoked by the session leaving `active`.
    interruptService: fromPromise<void, InterruptInput>(async ({ input }) => {
      log.info({ sessionId: input.sessionId, serviceId: input.serviceId }, 'service interrupted at limit');
    }),

    captureCharge: fromPromise<CaptureOutcome, CaptureInput>(async ({ input }) => {
      await deps.durable(input.sessionId);
      try {
        await voidAll(input.sessionId, input.staleHoldIds);
        const capture = await gateway.capture({
          holdId: input.holdId,
          amountMicros: BigInt(input.amountMicros),
          idempotencyKey: idempotencyKeys.capture(input.sessionId),
        });
        return {
          ok: true,
          slip: {
            id: capture.captureId,
            authorizationNumber: capture.authorizationNumber,
            amountMicros: capture.amountMicros.toString(),
          },
          at: clock.now(),
        };
      } catch (error) {
        log.warn({ sessionId: input.sessionId, err: describe(error) }, 'capture failed');
        return { ok: false, detail: describe(error), at: clock.now() };
      }
    }),

    voidHold: fromPromise<VoidOutcome, VoidInput>(async ({ input }) => {
      await deps.durable(input.sessionId);
      try {
        await voidAll(input.sessionId, [...input.staleHoldIds, input.holdId]);
        return { ok: true, at: clock.now() };
      } catch (error) {
        log.warn({ sessionId: input.sessionId, err: describe(error) }, 'void failed');
        return { ok: false, detail: describe(error), at: clock.now() };
      }
    }),
  };
}
