/**
 * Types of the session machine. Money in context is a string of integer micro-units: a
 * snapshot goes through JSON, which has no bigint (DESIGN rule 4 still holds: never a float).
 */
export type MicrosText = string;

export type EndReason =
  | 'logoff'
  | 'charge_limit'
  | 'time_limit'
  | 'ops_terminated'
  | 'declined'
  /** The hold neared its expiry and the card company declined a new one. */
  | 'reauthorization_declined';

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

export interface SessionInput {
  sessionId: string;
  accountId: string;
  serviceId: string;
  serverId: string;
  currency: string;
  pricePerMinuteMicros: MicrosText;
  maxChargeMicros: MicrosText;
  maxMs: number | null;
  createdAt: number;
  retry: RetryPolicy;
  /** How long a session over its limit may still be extended before it closes (0: no grace). */
  graceMs: number;
  /** How long before a hold's expiry a running session asks for a new one. */
  renewBeforeMs: number;
}

export interface Extension {
  fromMicros: MicrosText;
  toMicros: MicrosText;
  requestedAt: number;
  outcome: 'pending' | 'approved' | 'declined';
  reason: string | null;
}

export interface SessionContext extends SessionInput {
  hold: HoldInfo | null;
  startedAt: number | null;
  cutoffAt: number | null;
  cutoffReason: 'charge_limit' | 'time_limit' | null;
  /** Time spent interrupted over the limit before an extension resumed the session: not billed. */
  pausedMs: number;
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
}

/** Events from outside carry the instant they happened: the machine never reads a clock. */
export type SessionEvent =
  | { type: 'LOGOFF'; at: number }
  | { type: 'CUTOFF'; at: number }
  | { type: 'TERMINATE'; at: number }
  | { type: 'RETRY'; at: number }
  | { type: 'RENEW_HOLD'; at: number }
  | { type: 'GRACE_OVER'; at: number }
  | { type: 'VOID'; at: number }
  | { type: 'EXTEND'; at: number; maxChargeMicros: MicrosText };

export interface AuthorizeInput {
  sessionId: string;
  accountId: string;
  amountMicros: MicrosText;
  currency: string;
  /** 0 for the first hold, n for the n-th renewal: part of the idempotency key. */
  attempt: number;
}

export type AuthorizeOutcome =
  | { ok: true; hold: HoldInfo; at: number }
  | { ok: false; declined: true; reason: string; at: number }
  | { ok: false; declined: false; detail: string; at: number };

export interface ReleaseInput extends AuthorizeInput {}

export type CallOutcome = { ok: true; at: number } | { ok: false; detail: string; at: number };

export interface RenewInput extends AuthorizeInput {
  previousHoldId: string;
}

export type RenewOutcome = AuthorizeOutcome & { staleHoldId?: string };

export interface IncrementInput {
  sessionId: string;
  holdId: string;
  amountMicros: MicrosText;
  /** The n-th extension: part of the idempotency key. */
  attempt: number;
}

export type IncrementOutcome =
  | { ok: true; hold: HoldInfo; at: number }
  | { ok: false; declined: boolean; reason: string; at: number };

export interface CaptureInput {
  sessionId: string;
  holdId: string;
  amountMicros: MicrosText;
  staleHoldIds: string[];
}

export type CaptureOutcome = { ok: true; slip: ChargeSlipInfo; at: number } | { ok: false; detail: string; at: number };

export interface VoidInput {
  sessionId: string;
  holdId: string;
  staleHoldIds: string[];
}

export type VoidOutcome = CallOutcome;

export interface InterruptInput {
  sessionId: string;
  serviceId: string;
}
