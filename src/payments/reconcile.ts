import type { Sql } from '../db/sql.js';
import type { Logger } from '../logger.js';
import type { CardGateway } from './gateway.js';

/**
 * Voids the holds at the card company that no running session owns: an authorization whose
 * answer was lost and whose session is gone or ended, a renewed-away hold, a hold placed for a
 * session that was never written. A session that is still open keeps its hold: it settles it.
 */
export async function voidOrphanHolds(deps: { sql: Sql; gateway: CardGateway; log: Logger }): Promise<number> {
  const open = await deps.gateway.listOpenHolds();
  if (open.length === 0) return 0;
  // A shared card network may hold references that are not tollgate session ids.
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const references = [...new Set(open.map((h) => h.reference).filter((r): r is string => r !== null && uuid.test(r)))];
  const rows = await deps.sql<{ id: string; state: string; holdId: string | null }[]>`
    select id, state, snapshot #>> '{context,hold,holdId}' as "holdId" from sessions
    where id = any(${references}::uuid[])`;
  const byId = new Map(rows.map((r) => [r.id, r]));
  let voided = 0;
  for (const hold of open) {
    // Only holds tollgate placed are its to void; another client's holds are left alone.
    if (!hold.reference || !uuid.test(hold.reference)) continue;
    const session = byId.get(hold.reference);
    const final = session && (session.state === 'settled' || session.state === 'declined');
    if (session && !final) continue;
    try {
      await deps.gateway.void({ holdId: hold.holdId, idempotencyKey: `reconcile:void:${hold.holdId}` });
      deps.log.warn({ holdId: hold.holdId, sessionId: hold.reference }, 'voided a hold no running session owns');
      voided++;
    } catch (error) {
      // Captured or voided since the listing, or the network is down: the next start tries again.
      deps.log.warn({ holdId: hold.holdId, err: String(error) }, 'could not void an orphan hold');
    }
  }
  return voided;
}
