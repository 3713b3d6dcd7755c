import type { TransactionSql } from '../db/sql.js';
import type { StoredEvent } from '../events/event-store.js';
import { WEBHOOK_EVENT_TYPES } from './webhook-events.js';

const subscribable = new Set<string>(WEBHOOK_EVENT_TYPES);

/** An event some endpoint may be subscribed to: the others never wake the consumer. */
export const mayBeDelivered = (event: StoredEvent): boolean => subscribable.has(event.type);

/**
 * The durable consumer's handler (src/events/event-consumer.ts): each event a live endpoint is
 * subscribed to becomes one pending delivery, written in the transaction that moves the
 * consumer's position, so each is queued exactly once however often the batch is read.
 */
export function queueDeliveries(now: () => number) {
  return async (events: readonly StoredEvent[], tx: TransactionSql): Promise<void> => {
    if (events.length === 0) return;
    const at = new Date(now());
    await tx`
      insert into webhook_deliveries (endpoint_id, event_position, event_type, state, next_attempt_at, created_at)
      select w.id, e.position, e.type, 'pending', ${at}, ${at}
      from webhook_endpoints w
      join unnest(${events.map((e) => e.position.toString())}::bigint[], ${events.map((e) => e.type)}::text[]) as e(position, type)
        on e.type = any(w.event_types)
      where w.disabled_at is null
      on conflict (endpoint_id, event_position) do nothing`;
  };
}
