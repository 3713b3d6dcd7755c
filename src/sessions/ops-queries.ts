import type { Queryable } from '../db/sql.js';
import { errors } from '../errors.js';

export interface HistoryLine {
  event: string;
  from: string | null;
  to: string;
  at: string;
  detail: unknown;
}

export async function sessionHistory(db: Queryable, sessionId: string): Promise<HistoryLine[]> {
  const rows = await db<{ event: string; from: string | null; to: string; at: Date; detail: unknown }[]>`
    select event, from_state as "from", to_state as "to", at, detail from session_events
    where session_id = ${sessionId} order by id`;
  return rows.map((row) => ({ ...row, at: row.at.toISOString() }));
}

export interface SessionFilter {
  state?: string | undefined;
  serverId?: string | undefined;
  serviceId?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

/**
 * A page of session ids, newest first, with a keyset cursor (created_at and id), so paging
 * stays exact while sessions keep arriving.
 */
export async function sessionIdsPage(db: Queryable, filter: SessionFilter): Promise<{ ids: string[]; nextCursor: string | null }> {
  const after = decodeCursor(filter.cursor);
  const rows = await db<{ id: string; createdAt: Date }[]>`
    select id, created_at as "createdAt" from sessions
    where true
      ${filter.state ? db`and state = ${filter.state}` : db``}
      ${filter.serverId ? db`and server_id = ${filter.serverId}` : db``}
      ${filter.serviceId ? db`and service_id = ${filter.serviceId}` : db``}
      ${after ? db`and (created_at, id) < (${after.createdAt}, ${after.id})` : db``}
    order by created_at desc, id desc
    limit ${filter.limit + 1}`;
  const page = rows.slice(0, filter.limit);
  const last = page.at(-1);
  return {
    ids: page.map((r) => r.id),
    nextCursor: rows.length > filter.limit && last ? encodeCursor(last.createdAt, last.id) : null,
  };
}

/**
 * A page of the sessions that need an operator, oldest first: held by a process (writes that
 * kept failing, an unreadable snapshot), blocked on a call refused for good, or past the
 * deadline of the state they wait in. Read from PostgreSQL, so a session without an actor shows.
 */
export async function stuckIdsPage(
  db: Queryable,
  filter: SessionFilter,
  deadlines: { authorizingBefore: number; closingBefore: number; closeAttempts: number },
): Promise<{ ids: string[]; nextCursor: string | null }> {
  const after = decodeCursor(filter.cursor);
  const rows = await db<{ id: string; createdAt: Date }[]>`
    select s.id, s.created_at as "createdAt" from sessions s
    where s.state not in ('settled', 'declined')
      and (
        exists (select 1 from session_quarantine q where q.session_id = s.id)
        or s.stuck_reason is not null
        or (s.state = 'authorizing' and s.created_at < ${new Date(deadlines.authorizingBefore)})
        or (s.state = 'closing' and (s.closing_since < ${new Date(deadlines.closingBefore)} or s.close_attempts >= ${deadlines.closeAttempts}))
      )
      ${filter.state ? db`and s.state = ${filter.state}` : db``}
      ${filter.serverId ? db`and s.server_id = ${filter.serverId}` : db``}
      ${filter.serviceId ? db`and s.service_id = ${filter.serviceId}` : db``}
      ${after ? db`and (s.created_at, s.id) > (${after.createdAt}, ${after.id})` : db``}
    order by s.created_at, s.id
    limit ${filter.limit + 1}`;
  const page = rows.slice(0, filter.limit);
  const last = page.at(-1);
  return {
    ids: page.map((r) => r.id),
    nextCursor: rows.length > filter.limit && last ? encodeCursor(last.createdAt, last.id) : null,
  };
}

const encodeCursor = (createdAt: Date, id: string) =>
  Buffer.from(JSON.stringify([createdAt.toISOString(), id])).toString('base64url');

function decodeCursor(cursor: string | undefined): { createdAt: Date; id: string } | null {
  if (!cursor) return null;
  try {
    const [at, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as [string, string];
    const createdAt = new Date(at);
    if (!Number.isNaN(createdAt.getTime()) && /^[0-9a-f-]{36}$/i.test(id)) return { createdAt, id };
  } catch {
    // falls through to the refusal
  }
  throw errors.validation('cursor is not one this API gave out.');
}
