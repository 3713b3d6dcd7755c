import type { Queryable } from '../db/sql.js';

/** A delivery taken to be sent now, with what sending it needs. */
export interface DueDelivery {
  id: bigint;
  attempts: number;
  url: string;
  secret: string;
  position: bigint;
  type: string;
  at: Date;
  payload: Record<string, unknown>;
}

/**
 * Takes up to `limit` deliveries that are due, for `leaseMs`: their next attempt moves past the
 * lease, so another sender (or this one after a crash) takes them again only if this attempt was
 * never recorded. That is what makes delivery at least once, never at most once.
 */
export async function claimDue(db: Queryable, now: number, leaseMs: number, limit: number): Promise<DueDelivery[]> {
  return db<DueDelivery[]>`
    with due as (
      select d.id from webhook_deliveries d join webhook_endpoints w on w.id = d.endpoint_id
      where d.state = 'pending' and d.next_attempt_at <= ${new Date(now)} and w.disabled_at is null
      order by d.next_attempt_at, d.id
      limit ${limit}
      for update of d skip locked
    ), claimed as (
      update webhook_deliveries d set next_attempt_at = ${new Date(now + leaseMs)}
      from due where d.id = due.id
      returning d.id, d.attempts, d.endpoint_id, d.event_position
    )
    select c.id, c.attempts, w.url, w.secret, e.position, e.type, e.at, e.payload
    from claimed c join webhook_endpoints w on w.id = c.endpoint_id join domain_events e on e.position = c.event_position
    order by e.position`;
}

/** One attempt, in the log and on its delivery: delivered, to be retried at `retryAt`, or failed for good when `retryAt` is null. */
export async function recordAttempt(
  db: Queryable,
  attempt: { deliveryId: bigint; attempt: number; at: number; statusCode: number | null; error: string | null; durationMs: number; delivered: boolean; retryAt: number | null },
): Promise<void> {
  const state = attempt.delivered ? 'delivered' : attempt.retryAt === null ? 'failed' : 'pending';
  await db`
    with logged as (
      insert into webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms)
      values (${attempt.deliveryId}, ${attempt.attempt}, ${new Date(attempt.at)}, ${attempt.statusCode}, ${attempt.error}, ${attempt.durationMs})
    )
    update webhook_deliveries set attempts = ${attempt.attempt},
      -- An attempt that was in flight when its endpoint was disabled: delivered is the truth; anything else stays cancelled.
      state = case when state = 'cancelled' and ${state}::text <> 'delivered' then 'cancelled' else ${state}::text end,
      delivered_at = ${attempt.delivered ? new Date(attempt.at) : null},
      next_attempt_at = ${new Date(attempt.retryAt ?? attempt.at)}
    where id = ${attempt.deliveryId}`;
}

export interface DeliveryView {
  id: string;
  eventId: string;
  eventType: string;
  state: 'pending' | 'delivered' | 'failed' | 'cancelled';
  attempts: number;
  createdAt: string;
  nextAttemptAt: string | null;
  deliveredAt: string | null;
  log: { attempt: number; at: string; statusCode: number | null; error: string | null; durationMs: number }[];
}

/** The delivery log of one endpoint, newest first, each delivery with its attempts; null when there is no such endpoint. */
export async function deliveryLog(
  db: Queryable,
  filter: { endpointId: string; state?: DeliveryView['state'] | undefined; limit: number },
): Promise<DeliveryView[] | null> {
  const [endpoint] = await db`select 1 from webhook_endpoints where id = ${filter.endpointId}`;
  if (!endpoint) return null;
  const rows = await db<
    { id: bigint; position: bigint; type: string; state: DeliveryView['state']; attempts: number; createdAt: Date; nextAttemptAt: Date; deliveredAt: Date | null; log: { attempt: number; at: string; statusCode: number | null; error: string | null; durationMs: number }[] }[]
  >`
    select d.id, d.event_position as position, d.event_type as type, d.state, d.attempts, d.created_at as "createdAt",
      d.next_attempt_at as "nextAttemptAt", d.delivered_at as "deliveredAt",
      coalesce((select json_agg(json_build_object('attempt', a.attempt, 'at', a.at, 'statusCode', a.status_code, 'error', a.error,
        'durationMs', a.duration_ms) order by a.id) from webhook_attempts a where a.delivery_id = d.id), '[]') as log
    from webhook_deliveries d
    where d.endpoint_id = ${filter.endpointId} ${filter.state ? db`and d.state = ${filter.state}` : db``}
    order by d.id desc
    limit ${filter.limit}`;
  return rows.map((r) => ({
    id: r.id.toString(),
    eventId: `evt_${r.position}`,
    eventType: r.type,
    state: r.state,
    attempts: r.attempts,
    createdAt: r.createdAt.toISOString(),
    nextAttemptAt: r.state === 'pending' ? r.nextAttemptAt.toISOString() : null,
    deliveredAt: r.deliveredAt?.toISOString() ?? null,
    log: r.log.map((a) => ({ ...a, at: new Date(a.at).toISOString() })),
  }));
}
