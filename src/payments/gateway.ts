import type { Micros } from '../billing/money.js';

/**
 * What tollgate needs from a card company. The sandbox client and the Stripe adapter
 * implement it; the session machine reaches it only through actors the supervisor provides.
 * Every mutating call carries an idempotency key derived from the session id and the
 * operation (DESIGN rule 3), so a call re-driven after a crash is answered, not repeated.
 */
export interface CardDetails {
  number: string;
  expMonth: number;
  expYear: number;
  cvc: string;
}

export interface TokenizedCard {
  token: string;
  brand: string;
  last4: string;
  expMonth: number;
  expYear: number;
}

export interface Hold {
  holdId: string;
  /** What tollgate attached at authorization (the session id), for reconciliation. */
  reference: string | null;
  authorizationNumber: string;
  amountMicros: Micros;
  /** Epoch milliseconds after which the card company lets the hold lapse. */
  expiresAt: number;
}

export interface Capture {
  /** The charge slip's id at the card company. */
  captureId: string;
  authorizationNumber: string;
  amountMicros: Micros;
}

/** Money sent back to the card against a capture. */
export interface Refund {
  /** The refund's id at the card company. */
  refundId: string;
  captureId: string;
  amountMicros: Micros;
}

export const DECLINE_REASONS = [
  'generic_decline',
  'insufficient_funds',
  'expired_card',
  'lost_card',
  'stolen_card',
  'processing_error',
  /** Not a card's: a prepaid account's balance does not cover the hold (src/payments/balance-gateway.ts). */
  'balance_too_low',
] as const;
export type DeclineReason = (typeof DECLINE_REASONS)[number];

/** The card company answered no. Final: retrying with the same key gives the same answer. */
export class CardDeclinedError extends Error {
  constructor(readonly reason: DeclineReason) {
    super(`card declined: ${reason}`);
    this.name = 'CardDeclinedError';
  }
}

/** The card details were refused at tokenization (bad number, expiry or CVC). */
export class CardInvalidError extends Error {
  constructor(
    readonly field: 'number' | 'expiry' | 'cvc',
    detail: string,
  ) {
    super(detail);
    this.name = 'CardInvalidError';
  }
}

/** No answer could be had (timeouts, 5xx, connection refused) after the retry budget. */
export class CardNetworkUnavailableError extends Error {
  /** False only when no attempt reached the card company (every connection refused): nothing can have been done. */
  readonly mayHaveCommitted: boolean;
  constructor(detail: string, options?: { cause?: unknown; mayHaveCommitted?: boolean }) {
    super(detail, { cause: options?.cause });
    this.name = 'CardNetworkUnavailableError';
    this.mayHaveCommitted = options?.mayHaveCommitted ?? true;
  }
}

export interface CardGateway {
  tokenize(card: CardDetails, idempotencyKey: string): Promise<TokenizedCard>;
  /** Places a hold; `reference` (the session id) is kept with it for reconciliation. */
  authorize(request: {
    token: string;
    amountMicros: Micros;
    currency: string;
    reference: string;
    idempotencyKey: string;
  }): Promise<Hold>;
  /** Incremental authorization: raises an open hold to `amountMicros` in total. Throws CardDeclinedError. */
  increment(request: { holdId: string; amountMicros: Micros; idempotencyKey: string }): Promise<Hold>;
  /** Captures up to the held amount; the rest of the hold is released. */
  capture(request: { holdId: string; amountMicros: Micros; idempotencyKey: string }): Promise<Capture>;
  void(request: { holdId: string; idempotencyKey: string }): Promise<void>;
  /**
   * Sends `amountMicros` of a capture back to its card; never more than the capture has left
   * unrefunded (the card company refuses that). `reference` (tollgate's refund id) is kept with it.
   */
  refund(request: { captureId: string; amountMicros: Micros; currency: string; reference: string; idempotencyKey: string }): Promise<Refund>;
  /** Every hold still open at the card company, for reconciliation at start-up. */
  listOpenHolds(): Promise<Hold[]>;
}
