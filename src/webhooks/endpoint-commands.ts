import { recordAudit } from '../audit/audit-log.js';
import type { Queryable } from '../db/sql.js';
import type { Actor } from '../operators/roles.js';
import { createEndpoint, disableEndpoint, type EndpointView } from './endpoints.js';
import type { WebhookEventType } from './webhook-events.js';

/** Who asks, for the audit log. */
interface By {
  actor: Actor;
  requestId?: string | undefined;
}

/** An operator registers an endpoint: the row, then its audit entry (the operator API and the console both come here). */
export async function registerEndpoint(
  db: Queryable,
  request: { id?: string; url: string; eventTypes: WebhookEventType[] },
  by: By,
  at: number,
): Promise<{ endpoint: EndpointView; secret: string }> {
  const { endpoint, secret, created } = await createEndpoint(db, { ...request, createdBy: by.actor.operatorId, at });
  // A form sent twice made one endpoint: it is audited once.
  if (created) await recordAudit(db, { ...by, action: 'webhook.create', targetType: 'webhook', targetId: endpoint.id, before: null, after: endpoint, at });
  return { endpoint, secret };
}

/** An operator stops an endpoint's deliveries; null when there is no such endpoint. */
export async function disableEndpointBy(db: Queryable, id: string, by: By, at: number): Promise<EndpointView | null> {
  const disabled = await disableEndpoint(db, id, at);
  if (!disabled) return null;
  const { endpoint, disabledNow } = disabled;
  // Disabled by this call (not before it): recorded once.
  if (disabledNow) await recordAudit(db, { ...by, action: 'webhook.disable', targetType: 'webhook', targetId: endpoint.id, before: { ...endpoint, disabledAt: null }, after: endpoint, at });
  return endpoint;
}
