/** The domain events operators may subscribe an endpoint to (issue 14). */
export const WEBHOOK_EVENT_TYPES = [
  'session.activated',
  'session.warning',
  'session.interrupted',
  'session.settled',
  'account.suspended',
  // A closed account's balance back on the card, or refused by the card company (an operator's to settle).
  'account.refunded',
  'account.refund_refused',
  'statement.ready',
  // What a postpaid account owes, declined by the card company: the account is suspended on it.
  'statement.charge_declined',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** What an endpoint receives: the domain event, named by its position (the same on every retry, so receivers can drop repeats). */
export interface WebhookBody {
  id: string;
  type: string;
  createdAt: string;
  data: Record<string, unknown>;
}

export const webhookEventId = (position: bigint) => `evt_${position}`;
