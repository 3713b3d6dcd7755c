import type { SessionContext, SessionStateName } from '../../machines/session/index.js';
import type { Queryable } from '../db/sql.js';

/** A session's row as stored: its snapshot is of the version it was written with. */
export interface StoredSession {
  state: SessionStateName;
  seq: number;
  machineVersion: number;
  snapshot: { value: unknown; context: SessionContext } & Record<string, unknown>;
}

export interface Quarantine {
  kind: 'write_failed' | 'unreadable';
  reason: string;
  pendingSnapshot: StoredSession['snapshot'] | null;
  pendingVersion: number | null;
}

export interface UnsettledSession extends StoredSession {
  id: string;
  serverId: string;
  customer: { accountId: string; estimatedStorageGb: number; estimatedProcessingHours: number };
  quarantine: Quarantine | null;
}

export async function findSession(db: Queryable, id: string, accountId?: string): Promise<StoredSession | null> {
  const rows = await db<StoredSession[]>`
    select state, seq, machine_version as "machineVersion", snapshot from sessions
    where id = ${id} ${accountId ? db`and account_id = ${accountId}` : db``}`;
  return rows[0] ?? null;
}

export async function listSessions(db: Queryable, accountId: string, limit = 200): Promise<StoredSession[]> {
  return db<StoredSession[]>`
    select state, seq, machine_version as "machineVersion", snapshot from sessions
    where account_id = ${accountId} order by created_at desc limit ${limit}`;
}

type UnsettledRow = StoredSession & {
  id: string;
  serverId: string;
  accountId: string;
  storage: string;
  processing: string;
  quarantineKind: Quarantine['kind'] | null;
  quarantineReason: string | null;
  pendingSnapshot: Quarantine['pendingSnapshot'];
  pendingVersion: number | null;
};

/**
 * Every session not yet settled or declined (or only those given), in batches of `batch` rows,
 * with why this process may not run it (its quarantine), if it may not. Each batch is a query of
 * its own, the next ids after the last batch's (the partial index sessions_unsettled is by id):
 * a cursor would hold one statement open for the whole restore, which a million rows take longer
 * than statement_timeout allows, and an order by creation would sort them all before the first.
 */
export async function* loadUnsettled(db: Queryable, options: { batch?: number; ids?: string[]; servers?: string[] } = {}): AsyncGenerator<UnsettledSession[]> {
  const batch = options.batch ?? 2000;
  let after: string | null = null;
  for (;;) {
    const rows: UnsettledRow[] = await db<UnsettledRow[]>`
      select s.id, s.server_id as "serverId", s.state, s.seq, s.machine_version as "machineVersion", s.snapshot, a.id as "accountId",
        a.estimated_storage_gb::text as storage, a.estimated_processing_hours::text as processing,
        q.kind as "quarantineKind", q.reason as "quarantineReason", q.pending_snapshot as "pendingSnapshot",
        q.pending_version as "pendingVersion"
      from sessions s join accounts a on a.id = s.account_id left join session_quarantine q on q.session_id = s.id
      where s.state not in ('settled', 'declined') ${options.ids ? db`and s.id = any(${options.ids}::uuid[])` : db``}
        ${options.servers ? db`and s.server_id = any(${options.servers}::uuid[])` : db``}
        ${after === null ? db`` : db`and s.id > ${after}::uuid`}
      order by s.id
      limit ${batch}`;
    if (rows.length === 0) return;
    yield rows.map(unsettledFromRow);
    if (rows.length < batch) return;
    after = rows.at(-1)!.id;
  }
}

/** Written out field by field: a million rows with rest and spread copies cost seconds of a restore. */
function unsettledFromRow(row: UnsettledRow): UnsettledSession {
  return {
    id: row.id,
    serverId: row.serverId,
    state: row.state,
    seq: row.seq,
    machineVersion: row.machineVersion,
    snapshot: row.snapshot,
    customer: { accountId: row.accountId, estimatedStorageGb: Number(row.storage), estimatedProcessingHours: Number(row.processing) },
    quarantine: row.quarantineKind
      ? { kind: row.quarantineKind, reason: row.quarantineReason ?? '', pendingSnapshot: row.pendingSnapshot, pendingVersion: row.pendingVersion }
      : null,
  };
}

/** Unsettled sessions still authorizing, last written before `before`: candidates for the orphan sweep. */
export async function authorizingSince(db: Queryable, before: number): Promise<string[]> {
  const rows = await db<{ id: string }[]>`
    select id from sessions where state = 'authorizing' and updated_at < ${new Date(before)} order by updated_at limit 500`;
  return rows.map((r) => r.id);
}

export async function quarantine(
  db: Queryable,
  record: { sessionId: string; kind: Quarantine['kind']; reason: string; pendingSnapshot: unknown; pendingVersion: number | null; at: number },
): Promise<void> {
  await db`
    insert into session_quarantine (session_id, kind, reason, pending_snapshot, pending_version, since)
    values (${record.sessionId}, ${record.kind}, ${record.reason}, ${record.pendingSnapshot === null ? null : db.json(record.pendingSnapshot as never)},
      ${record.pendingVersion}, ${new Date(record.at)})
    on conflict (session_id) do update set reason = excluded.reason, pending_snapshot = excluded.pending_snapshot,
      pending_version = excluded.pending_version`;
}

export async function releaseQuarantine(db: Queryable, sessionId: string): Promise<void> {
  await db`delete from session_quarantine where session_id = ${sessionId}`;
}

/** The ids of an account's sessions that have not ended (settled or declined). */
/** Sessions of a service that run (or wait at a limit): those a lost upstream ends. */
export async function runningOfService(db: Queryable, serviceId: string): Promise<string[]> {
  const rows = await db<{ id: string }[]>`
    select id from sessions where service_id = ${serviceId} and state in ('active', 'over_limit') limit 100000`;
  return rows.map((row) => row.id);
}

export async function unsettledOf(db: Queryable, accountId: string): Promise<string[]> {
  const rows = await db<{ id: string }[]>`
    select id from sessions where account_id = ${accountId} and state not in ('settled', 'declined') limit 100000`;
  return rows.map((row) => row.id);
}
