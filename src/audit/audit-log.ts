import type { Queryable, Sql } from '../db/sql.js';
import type { Actor } from '../operators/roles.js';

/** One operator action: who, what, to what, when, and the state before and after. */
export interface AuditRecord {
  /** An operator, the bootstrap token, or tollgate itself (no operator id). */
  actor: Pick<Actor, 'operatorId' | 'name'>;
  action: string;
  targetType: string;
  targetId: string | null;
  before: unknown;
  after: unknown;
  at: number;
  requestId?: string | undefined;
}

export interface AuditEntry {
  id: string;
  at: string;
  operatorId: string | null;
  operatorName: string;
  action: string;
  targetType: string;
  targetId: string | null;
  before: unknown;
  after: unknown;
  requestId: string | null;
}

export interface AuditFilter {
  operatorId?: string | undefined;
  action?: string | undefined;
  targetType?: string | undefined;
  targetId?: string | undefined;
  since?: number | undefined;
  until?: number | undefined;
  /** Entries older than this id (the previous page's nextCursor). */
  before?: bigint | undefined;
  limit: number;
}

/**
 * Appends to the audit log, through the caller's transaction when the change it records has one,
 * so the entry commits with the change or not at all. Nothing in tollgate updates or deletes an
 * entry, and the table's triggers refuse it (migration 0004).
 */
export async function recordAudit(db: Queryable, record: AuditRecord): Promise<void> {
  await db`
    insert into audit_log (at, operator_id, operator_name, action, target_type, target_id, before, after, request_id)
    values (${new Date(record.at)}, ${record.actor.operatorId}, ${record.actor.name}, ${record.action}, ${record.targetType},
      ${record.targetId}, ${record.before === undefined ? null : db.json(record.before as never)},
      ${record.after === undefined ? null : db.json(record.after as never)}, ${record.requestId ?? null})`;
}

/** Newest first, with a cursor for the next page. */
export async function listAudit(sql: Sql, filter: AuditFilter): Promise<{ entries: AuditEntry[]; nextCursor: string | null }> {
  const rows = await sql<(Omit<AuditEntry, 'at' | 'id'> & { id: bigint; at: Date })[]>`
    select id, at, operator_id as "operatorId", operator_name as "operatorName", action, target_type as "targetType",
      target_id as "targetId", before, after, request_id as "requestId"
    from audit_log
    where true
      ${filter.operatorId ? sql`and operator_id = ${filter.operatorId}` : sql``}
      ${filter.action ? sql`and action = ${filter.action}` : sql``}
      ${filter.targetType ? sql`and target_type = ${filter.targetType}` : sql``}
      ${filter.targetId ? sql`and target_id = ${filter.targetId}` : sql``}
      ${filter.since !== undefined ? sql`and at >= ${new Date(filter.since)}` : sql``}
      ${filter.until !== undefined ? sql`and at < ${new Date(filter.until)}` : sql``}
      ${filter.before !== undefined ? sql`and id < ${filter.before}` : sql``}
    order by id desc
    limit ${filter.limit + 1}`;
  const page = rows.slice(0, filter.limit);
  return {
    entries: page.map((row) => ({ ...row, id: String(row.id), at: row.at.toISOString() })),
    nextCursor: rows.length > filter.limit ? String(page[page.length - 1]!.id) : null,
  };
}
