import { fromPromise } from 'xstate';
import type {
  AuthorizeInput,
  AuthorizeOutcome,
  CaptureInput,
  CaptureOutcome,
  InterruptInput,
  VoidInput,
  VoidOutcome,
} from '../../machines/session/index.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import { CardDeclinedError, type CardGateway } from '../payments/gateway.js';
import type { Logger } from '../logger.js';

export interface EffectDeps {
  sql: Sql;
  gateway: CardGateway;
  clock: Clock;
  log: Logger;
  /** Resolves once the session's latest state is committed: the intent is written first (DESIGN rule 3). */
  durable(sessionId: string): Promise<void>;
}

/** Idempotency keys are derived from the session and the operation, so a re-driven call is answered, not repeated. */
export const idempotencyKey = (sessionId: string, operation: 'authorize' | 'capture' | 'void') =>
  `${sessionId}:${operation}`;

const describe = (error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}` : String(error));

/** The session machine's effects, as the named actors it declares; failures come back as data. */
export function sessionEffects(deps: EffectDeps) {
  const { sql, gateway, clock, log } = deps;
  return {
    authorizeHold: fromPromise<AuthorizeOutcome, AuthorizeInput>(async ({ input }) => {
      await deps.durable(input.sessionId);
      try {
        const [account] = await sql<{ cardToken: string }[]>`
          select card_token as "cardToken" from accounts where id = ${input.accountId}`;
        if (!account) throw new Error(`account ${input.accountId} not found`);
        const hold = await gateway.authorize({
          token: account.cardToken,
          amountMicros: BigInt(input.amountMicros),
          currency: input.currency,
          idempotencyKey: idempotencyKey(input.sessionId, 'authorize'),
        });
        return {
          ok: true,
          hold: {
            holdId: hold.holdId,
            authorizationNumber: hold.authorizationNumber,
            amountMicros: hold.amountMicros.toString(),
            expiresAt: hold.expiresAt,
          },
          at: clock.now(),
        };
      } catch (error) {
        if (error instanceof CardDeclinedError) return { ok: false, declined: true, reason: error.reason, at: clock.now() };
        log.warn({ sessionId: input.sessionId, err: describe(error) }, 'authorization failed');
        return { ok: false, declined: false, detail: describe(error), at: clock.now() };
      }
    }),

    // tollgate does not proxy the upstream yet: access is revoked by the session leaving `active`.
    interruptService: fromPromise<void, InterruptInput>(async ({ input }) => {
      log.info({ sessionId: input.sessionId, serviceId: input.serviceId }, 'service interrupted at limit');
    }),

    captureCharge: fromPromise<CaptureOutcome, CaptureInput>(async ({ input }) => {
      await deps.durable(input.sessionId);
      try {
        const capture = await gateway.capture({
          holdId: input.holdId,
          amountMicros: BigInt(input.amountMicros),
          idempotencyKey: idempotencyKey(input.sessionId, 'capture'),
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
        await gateway.void({ holdId: input.holdId, idempotencyKey: idempotencyKey(input.sessionId, 'void') });
        return { ok: true, at: clock.now() };
      } catch (error) {
        log.warn({ sessionId: input.sessionId, err: describe(error) }, 'void failed');
        return { ok: false, detail: describe(error), at: clock.now() };
      }
    }),
  };
}
