import { hashToken, newSecret } from '../accounts/credentials.js';
import { recordAudit } from '../audit/audit-log.js';
import type { Queryable, Sql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';
import { errors } from '../errors.js';
import type { Actor } from '../operators/roles.js';

/**
 * A new credential for a service, for its calls to the metering API; the previous one stops
 * working at once. Only its SHA-256 is kept: the operator sees the secret this once.
 */
export async function issueServiceCredential(sql: Sql, serviceId: string, by: { actor: Actor; requestId?: string }, at: number): Promise<string> {
  const { secret, secretHash } = newSecret('tgm');
  return transaction(sql, async (tx) => {
    const [service] = await tx<{ id: string }[]>`select id from services where id = ${serviceId} for update`;
    if (!service) throw errors.serviceNotFound();
    await tx`
      insert into service_credentials (service_id, secret_hash, created_at, created_by)
      values (${serviceId}, ${secretHash}, ${new Date(at)}, ${by.actor.operatorId})
      on conflict (service_id) do update set secret_hash = excluded.secret_hash, created_at = excluded.created_at, created_by = excluded.created_by`;
    await recordAudit(tx, {
      actor: by.actor,
      action: 'service.new_credential',
      targetType: 'service',
      targetId: serviceId,
      before: null,
      after: null,
      at,
      requestId: by.requestId,
    });
    return secret;
  });
}

/** The service a metering credential belongs to, or null. */
export async function serviceForCredential(db: Queryable, secret: string): Promise<string | null> {
  if (!secret.startsWith('tgm_')) return null;
  const [row] = await db<{ service_id: string }[]>`select service_id from service_credentials where secret_hash = ${hashToken(secret)}`;
  return row?.service_id ?? null;
}
