import { randomBytes, randomUUID } from 'node:crypto';
import type { Queryable } from '../db/sql.js';
import { errors } from '../errors.js';
import type { WebhookEventType } from './webhook-events.js';

export interface EndpointView {
  id: string;
  url: string;
  eventTypes: string[];
  createdAt: string;
  disabledAt: string | null;
}

type Row = { id: string; url: string; eventTypes: string[]; createdAt: Date; disabledAt: Date | null };
const view = (row: Row): EndpointView => ({
  id: row.id,
  url: row.url,
  eventTypes: row.eventTypes,
  createdAt: row.createdAt.toISOString(),
  disabledAt: row.disabledAt?.toISOString() ?? null,
});

/** How long after it registered an endpoint a form sent again gets the same answer. */
const RESEND_WITHIN_MS = 10 * 60_000;

/**
 * Registers an endpoint; its signing secret is answered once, here. With `id` (the console's form
 * carries one), the same form sent again by the same operator for the same endpoint within
 * RESEND_WITHIN_MS, while the endpoint is enabled, answers the endpoint it made, secret included
 * (the browser shows only the last answer of a double click), and makes no second one: `created`
 * says which. The id reused for anything else, or later, is WEBHOOK_ALREADY_SENT.
 */
export async function createEndpoint(
  db: Queryable,
  request: { id?: string | undefined; url: string; eventTypes: WebhookEventType[]; createdBy: string | null; at: number },
): Promise<{ endpoint: EndpointView; secret: string; created: boolean }> {
  const secret = `whsec_${randomBytes(32).toString('base64url')}`;
  const eventTypes = [...new Set(request.eventTypes)];
  const [row] = await db<Row[]>`
    insert into webhook_endpoints (id, url, event_types, secret, created_at, created_by)
    values (${request.id ?? randomUUID()}, ${request.url}, ${eventTypes}, ${secret}, ${new Date(request.at)}, ${request.createdBy})
    on conflict (id) do nothing
    returning id, url, event_types as "eventTypes", created_at as "createdAt", disabled_at as "disabledAt"`;
  if (row) return { endpoint: view(row), secret, created: true };
  const [earlier] = await db<(Row & { secret: string; createdBy: string | null })[]>`
    select id, url, event_types as "eventTypes", created_at as "createdAt", disabled_at as "disabledAt", secret, created_by as "createdBy"
    from webhook_endpoints where id = ${request.id!}`;
  // Only the form's own resend, while it is one: the secret is not to be had again later, or once disabled.
  const same =
    earlier !== undefined &&
    earlier.createdBy === request.createdBy &&
    earlier.url === request.url &&
    [...earlier.eventTypes].sort().join() === [...eventTypes].sort().join() &&
    earlier.disabledAt === null &&
    request.at - earlier.createdAt.getTime() <= RESEND_WITHIN_MS;
  if (!same) throw errors.webhookAlreadySent();
  return { endpoint: view(earlier), secret: earlier.secret, created: false };
}

export async function listEndpoints(db: Queryable): Promise<EndpointView[]> {
  const rows = await db<Row[]>`
    select id, url, event_types as "eventTypes", created_at as "createdAt", disabled_at as "disabledAt"
    from webhook_endpoints order by created_at, id limit 1000`;
  return rows.map(view);
}

/** Stops deliveries to the endpoint (those pending are cancelled, never sent); its log stays. Null when there is no such endpoint. */
export async function disableEndpoint(db: Queryable, id: string, at: number): Promise<{ endpoint: EndpointView; disabledNow: boolean } | null> {
  // Disabled by this call, or before it (then nothing changes, and nothing is cancelled again).
  const [disabled] = await db<Row[]>`
    with disabled as (
      update webhook_endpoints set disabled_at = ${new Date(at)} where id = ${id} and disabled_at is null
      returning id, url, event_types as "eventTypes", created_at as "createdAt", disabled_at as "disabledAt"
    ), cancelled as (
      update webhook_deliveries set state = 'cancelled' where endpoint_id in (select id from disabled) and state = 'pending'
    )
    select * from disabled`;
  if (disabled) return { endpoint: view(disabled), disabledNow: true };
  const [before] = await db<Row[]>`
    select id, url, event_types as "eventTypes", created_at as "createdAt", disabled_at as "disabledAt" from webhook_endpoints where id = ${id}`;
  return before ? { endpoint: view(before), disabledNow: false } : null;
}
