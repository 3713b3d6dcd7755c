import type { Resume } from '../../src/billing/charge.js';
import type { TariffSpec } from '../../src/billing/tariff.js';

/**
 * Types of the session machine. Money in context is a string of integer micro-units: a
 * snapshot goes through JSON, which has no bigint (DESIGN rule 4 still holds: never a float).
 */
export type MicrosText = string;
export type { Resume, TariffSpec };

/** Why a session ended; the console's filter offers each. */
export const END_REASONS = [
  'logoff',
  'charge_limit',
  'time_limit',
  'ops_terminated',
  'declined',
  /** The hold neared its expiry and the card company declined a new one. */
  'reauthorization_declined',
  /** The client went away before it saw the open answered: nothing it never saw is charged. */
  'abandoned',
  /** The service's upstream stopped taking connections: charged up to the last moment it did. */
  'service_unreachable',
] as const;
export type EndReason = (typeof END_REASONS)[number];

export type LimitReason = 'charge_limit' | 'time_limit';

export interface HoldInfo {
  holdId: string;
  authorizationNumber: string;
  amountMicros: MicrosText;
  /** Epoch ms when the card company granted it, and after which it lets it lapse. */
  authorizedAt: number;
  expiresAt: number;
}

export interface ChargeSlipInfo {
  id: string;
  authorizationNumber: string;
  amountMicros: MicrosText;
}

export interface RetryPolicy {
  baseMs: number;
  maxMs: number;
}

/** When the customer is warned before the cutoff: at a share of the limit, or this long before it. */
export interface WarningPolicy {
  /** In basis points of the charge limit (8000: at 80 %), or null. */
  shareBasisPoints: number | null;
  secondsBefore: number | null;
}

/** A price agreed before use (a quote): the session runs on its tariff, and its charge is checked against it. */
export interface AgreedPrice {
  quoteId: string;
  /** What the quote said the agreed use costs at most. */
  totalMicros: MicrosText;
  /**
   * The quote's start: its tariff's hours are read as from then, however late within its validity
   * the session opened (left out by sessions opened before this was kept: read from their start).
   */
  startAt?: number;
  /**
   * The session holds a cent more than the total so that the agreed time binds, not its last
   * increment's start (agreedHold); a use may not spend that cent (limitWith).
   */
  holdsCent?: boolean;
}

export interface SessionInput {
  sessionId: string;
  accountId: string;
  serviceId: string;
  serverId: string;
  currency: string;
  /** The service's prices when the session opened (or as a quote agreed them): later changes do not apply. */
  tariff: TariffSpec;
  maxChargeMicros: MicrosText;
  maxMs: number | null;
  createdAt: number;
  retry: RetryPolicy;
  /** How long a session over its limit may still be extended before it closes (0: no grace). */
  graceMs: number;
  /** How long before a hold's expiry a running session asks for a new one. */
  renewBeforeMs: number;
  warnings: WarningPolicy;
  quote: AgreedPrice | null;
}

/** Uses priced per use (a request, or units the service reports): reserved first, then committed. */
export interface UseState {
  usedUnits: number;
  usedMicros: MicrosText;
  /** Reserved and not yet committed nor released: held back from what time may spend. */
  reservedMicros: MicrosText;
  /** `edge`: reserved by a process's edge for a request in flight, which dies with that process. */
  open: Record<string, { units: number; micros: MicrosText; edge?: true }>;
  /** The next reservation's number: a commit of an earlier one no longer open is a repeat. */
  next: number;
}

export interface Extension {
  fromMicros: MicrosText;
  toMicros: MicrosText;
  requestedAt: number;
  /** reserving: against the outstanding limit; pending: reserved, asked of the card company. */
  outcome: 'reserving' | 'pending' | 'approved' | 'declined';
  reason: string | null;
  /**
   * An increment to this amount went unanswered (this extension's or an earlier one's): the hold
   * at the card company may be that large, so the session's share of the outstanding limit stays
   * at least that, and a later increment the card company finds below the hold takes it as raised.
   */
  unconfirmedMicros?: MicrosText;
}

/** A call to the card company that cannot succeed by being retried (a permanent answer). */
export interface Blocked {
  operation: CardOperation;
  detail: string;
  at: number;
}

export type CardOperation = 'authorize' | 'release' | 'renew' | 'increment' | 'capture' | 'void' | 'reserve';

export interface SessionContext extends SessionInput {
  hold: HoldInfo | null;
  startedAt: number | null;
  cutoffAt: number | null;
  cutoffReason: LimitReason | null;
  /** Where billable time went on after each pause over the limit (paused time is not billed). */
  resumes: Resume[];
  uses: UseState;
  /** When the customer is warned that the cutoff nears, and when they were. */
  warnAt: number | null;
  warnedAt: number | null;
  graceUntil: number | null;
  endedAt: number | null;
  endReason: EndReason | null;
  chargeMicros: MicrosText | null;
  chargeSlip: ChargeSlipInfo | null;
  declineReason: string | null;
  extension: Extension | null;
  extensions: number;
  /** When the running session next renews its hold. */
  renewAt: number | null;
  reauthorizations: number;
  /** Holds replaced by a renewal that still have to be voided before the session settles. */
  staleHoldIds: string[];
  closingSince: number | null;
  /** Failed calls to the card company while closing or releasing; reset when one succeeds. */
  closeAttempts: number;
  lastError: string | null;
  /** When the next attempt is due, while waiting to retry. */
  retryAt: number | null;
  /** Set while a call was refused for good: the session waits for an operator. */
  blocked: Blocked | null;
}

/** Events from outside carry the instant they happened: the machine never reads a clock. */
export type SessionEvent =
  | { type: 'LOGOFF'; at: number }
  | { type: 'CUTOFF'; at: number }
  | { type: 'TERMINATE'; at: number }
  | { type: 'ABANDON'; at: number }
  /** The service's upstream has taken no connection since `since` (src/edge/upstream-health.ts). */
  | { type: 'SERVICE_LOST'; at: number; since: number }
  | { type: 'RETRY'; at: number }
  | { type: 'RENEW_HOLD'; at: number }
  | { type: 'GRACE_OVER'; at: number }
  | { type: 'USES_OVER'; at: number }
  | { type: 'VOID'; at: number }
  | { type: 'WARN'; at: number }
  | { type: 'EXTEND'; at: number; maxChargeMicros: MicrosText }
  | { type: 'RESERVE_USE'; at: number; units: number; edge?: true }
  | { type: 'COMMIT_USE'; at: number; reservationId: string; units: number }
  | { type: 'RELEASE_USE'; at: number; reservationId: string }
  /** Uses reported after the fact, without a reservation: charged at once if they fit. */
  | { type: 'USE'; at: number; units: number };

export interface AuthorizeInput {
  sessionId: string;
  accountId: string;
  amountMicros: MicrosText;
  currency: string;
  /** 0 for the first hold, n for the n-th renewal: part of the idempotency key. */
  attempt: number;
}

/**
 * What a call to the card company came to. `unanswered`: no answer after the client's own
 * retries (something may have been done); `refused`: a permanent answer (a reused key, a hold
 * that is no longer open) that no retry will change.
 */
export type Unanswered = { kind: 'unanswered'; detail: string; at: number };
export type Refused = { kind: 'refused'; detail: string; at: number };
export type Declined = { kind: 'declined'; reason: string; at: number };

export type AuthorizeOutcome = { kind: 'held'; hold: HoldInfo; at: number } | Declined | Unanswered | Refused;

export type ReleaseInput = AuthorizeInput;

export type CallOutcome = { kind: 'done'; at: number } | Unanswered | Refused;

export interface RenewInput extends AuthorizeInput {
  previousHoldId: string;
  /** The last try before the hold lapses: unanswered, any hold it may have placed is let go of at once. */
  lastTry?: boolean;
}

/** A renewal that placed its new hold but could not void the old one says which to void later. */
export type RenewOutcome = { kind: 'held'; hold: HoldInfo; staleHoldId: string | null; at: number } | Declined | Unanswered | Refused;

export interface ReserveInput {
  sessionId: string;
  accountId: string;
  /** The session's whole share of the outstanding limit once the extension is reserved. */
  toMicros: MicrosText;
  /** The n-th extension: part of the reservation's key. */
  attempt: number;
}

export type ReserveOutcome = { kind: 'reserved'; at: number } | { kind: 'declined'; reason: string; at: number } | Unanswered;

export interface IncrementInput {
  sessionId: string;
  holdId: string;
  amountMicros: MicrosText;
  /** The n-th extension: part of the idempotency key. */
  attempt: number;
  /**
   * What an earlier unanswered increment may have raised the hold to (Extension.unconfirmedMicros).
   * Undefined in an increment restored from a snapshot written before it was kept.
   */
  mayHoldMicros?: MicrosText | null;
}

export type IncrementOutcome = { kind: 'raised'; hold: HoldInfo; at: number } | Declined | Unanswered | Refused;

export interface CaptureInput {
  sessionId: string;
  holdId: string;
  amountMicros: MicrosText;
  staleHoldIds: string[];
}

export type CaptureOutcome = { kind: 'captured'; slip: ChargeSlipInfo; at: number } | Unanswered | Refused;

export interface VoidInput {
  sessionId: string;
  holdId: string;
  staleHoldIds: string[];
}

export interface InterruptInput {
  sessionId: string;
  serviceId: string;
}
