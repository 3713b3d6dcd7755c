/**
 * Types of the session machine. Money in context is a string of integer micro-units: a
 * snapshot goes through JSON, which has no bigint (DESIGN rule 4 still holds: never a float).
 */
export type MicrosText = string;

export type EndReason = 'logoff' | 'charge_limit' | 'time_limit' | 'ops_terminated' | 'declined';

export interface HoldInfo {
  holdId: string;
  authorizationNumber: string;
  amountMicros: MicrosText;
  /** Epoch ms after which the card company lets the hold lapse. */
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
}

export interface SessionContext extends SessionInput {
  hold: HoldInfo | null;
  startedAt: number | null;
  cutoffAt: number | null;
  cutoffReason: 'charge_limit' | 'time_limit' | null;
  endedAt: number | null;
  endReason: EndReason | null;
  chargeMicros: MicrosText | null;
  chargeSlip: ChargeSlipInfo | null;
  declineReason: string | null;
  /** Failed calls to the card company while closing; reset when one succeeds. */
  closeAttempts: number;
  lastError: string | null;
  /** When the next capture (or void) attempt is due, while waiting to retry. */
  retryAt: number | null;
}

/** Events from outside carry the instant they happened: the machine never reads a clock. */
export type SessionEvent =
  | { type: 'LOGOFF'; at: number }
  | { type: 'CUTOFF'; at: number }
  | { type: 'TERMINATE'; at: number }
  | { type: 'RETRY_CLOSE'; at: number };

export interface AuthorizeInput {
  sessionId: string;
  accountId: string;
  amountMicros: MicrosText;
  currency: string;
}

export type AuthorizeOutcome =
  | { ok: true; hold: HoldInfo; at: number }
  | { ok: false; declined: true; reason: string; at: number }
  | { ok: false; declined: false; detail: string; at: number };

export interface CaptureInput {
  sessionId: string;
  holdId: string;
  amountMicros: MicrosText;
}

export type CaptureOutcome = { ok: true; slip: ChargeSlipInfo; at: number } | { ok: false; detail: string; at: number };

export interface VoidInput {
  sessionId: string;
  holdId: string;
}

export type VoidOutcome = { ok: true; at: number } | { ok: false; detail: string; at: number };

export interface InterruptInput {
  sessionId: string;
  serviceId: string;
}
