/** Who changed an account: the customer, an operator (as they were named then), or tollgate itself. */
export interface AccountChanger {
  kind: 'customer' | 'operator' | 'system';
  /** The account's or the operator's id; null for tollgate itself. */
  id: string | null;
  name: string;
}

/** Every change says who asked and why, and when (the host's clock: machines read no clock). */
interface Change {
  at: number;
  by: AccountChanger;
  reason: string;
}

export type AccountEvent =
  /** The card was checked at the card company: the account may open sessions. */
  | ({ type: 'CARD_VERIFIED' } & Change)
  /** No new sessions; running ones are ended. `until`: the instant it resumes by itself (null: an operator resumes it). */
  | ({ type: 'SUSPEND'; until: number | null } & Change)
  | ({ type: 'RESUME' } & Change)
  /** `unsettledSessions`: counted by the host under the account's row lock; closing needs none. */
  | ({ type: 'CLOSE'; unsettledSessions: number } & Change);

export type AccountEventType = AccountEvent['type'];

export interface AccountInput {
  accountId: string;
  createdAt: number;
}

export interface AccountContext {
  accountId: string;
  createdAt: number;
  /** When the account entered the state it is in. */
  since: number;
  /** The change that brought it there (null: as made). */
  lastChange: ({ event: AccountEventType } & Change) | null;
  /** A suspension's end, when it has one: a deadline as data, armed by the host (DESIGN rule 5). */
  resumesAt: number | null;
  closedAt: number | null;
}

/**
 * Facts about an account's state that hosts may ask (DESIGN rule 12):
 * - opens: new sessions may open
 * - ends_sessions: running sessions are to be ended and settled
 * - self_service: the customer may change the card, the limit and the password
 */
export type AccountTag = 'opens' | 'ends_sessions' | 'self_service';

export type AccountStateName = 'new' | 'active' | 'suspended' | 'closed';
