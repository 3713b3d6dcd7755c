import { stringify } from 'csv-stringify/sync';
import { formatAmount } from '../billing/money.js';
import type { Queryable } from '../db/sql.js';

/** One row of the marketing log: the customer as they were when the session opened. */
export interface SessionLogRow {
  sessionId: string;
  accountId: string;
  customerName: string;
  customerEmail: string;
  estimatedStorageGb: number;
  estimatedProcessingHours: number;
  serviceId: string;
  serviceName: string;
  serverId: string;
  serverName: string;
  openedAt: string;
  startedAt: string | null;
  endedAt: string | null;
  minutes: number | null;
  charge: string | null;
  currency: string;
  endReason: string | null;
  /** What the session did through the edge (0 for a session that never used it). */
  requests: number;
  bytesIn: number;
  bytesOut: number;
  connectionsCut: number;
}

/** Which rows of the log to read: all by default; the console filters by service, end reason and when the session opened. */
export interface SessionLogFilter {
  limit: number;
  offset: number;
  serviceId?: string | undefined;
  endReason?: string | undefined;
  openedFrom?: Date | undefined;
  openedTo?: Date | undefined;
}

export async function sessionLog(db: Queryable, options: SessionLogFilter): Promise<SessionLogRow[]> {
  const rows = await db<
    (Omit<SessionLogRow, 'openedAt' | 'startedAt' | 'endedAt' | 'charge' | 'estimatedStorageGb' | 'estimatedProcessingHours'> & {
      openedAt: Date;
      startedAt: Date | null;
      endedAt: Date | null;
      chargeMicros: bigint | null;
      storage: string;
      processing: string;
      requests: string;
      bytesIn: string;
      bytesOut: string;
    })[]
  >`
    select session_id as "sessionId", account_id as "accountId", customer_name as "customerName",
      customer_email as "customerEmail", estimated_storage_gb::text as storage,
      estimated_processing_hours::text as processing, service_id as "serviceId", service_name as "serviceName",
      server_id as "serverId", server_name as "serverName", opened_at as "openedAt", started_at as "startedAt",
      ended_at as "endedAt", charge_micros as "chargeMicros", currency, end_reason as "endReason",
      coalesce(t.requests, 0)::text as requests, coalesce(t.bytes_in, 0)::text as "bytesIn",
      coalesce(t.bytes_out, 0)::text as "bytesOut", coalesce(t.connections_cut, 0) as "connectionsCut",
      -- Minutes of use in whole seconds, as they are billed (paused time left out), as statements show them.
      case when session_log.started_at is null or session_log.ended_at is null then null
        else (select round((coalesce(s.billable_ms, 0) / 1000) / 60.0, 3)::float8 from sessions s where s.id = session_log.session_id) end as minutes
    from session_log left join session_traffic t using (session_id)
    where true
      ${options.serviceId ? db`and session_log.service_id = ${options.serviceId}` : db``}
      ${options.endReason ? db`and session_log.end_reason = ${options.endReason}` : db``}
      ${options.openedFrom ? db`and session_log.opened_at >= ${options.openedFrom}` : db``}
      ${options.openedTo ? db`and session_log.opened_at < ${options.openedTo}` : db``}
    order by opened_at, session_id limit ${options.limit} offset ${options.offset}`;
  return rows.map(({ chargeMicros, storage, processing, openedAt, startedAt, endedAt, requests, bytesIn, bytesOut, ...row }) => ({
    ...row,
    requests: Number(requests),
    bytesIn: Number(bytesIn),
    bytesOut: Number(bytesOut),
    estimatedStorageGb: Number(storage),
    estimatedProcessingHours: Number(processing),
    openedAt: openedAt.toISOString(),
    startedAt: startedAt?.toISOString() ?? null,
    endedAt: endedAt?.toISOString() ?? null,
    charge: chargeMicros === null ? null : formatAmount(chargeMicros),
  }));
}

const COLUMNS: (keyof SessionLogRow)[] = [
  'sessionId', 'accountId', 'customerName', 'customerEmail', 'estimatedStorageGb', 'estimatedProcessingHours',
  'serviceId', 'serviceName', 'serverId', 'serverName', 'openedAt', 'startedAt', 'endedAt', 'minutes', 'charge',
  'currency', 'endReason', 'requests', 'bytesIn', 'bytesOut', 'connectionsCut',
];

export function sessionLogCsv(rows: SessionLogRow[]): string {
  // A cell a spreadsheet would run as a formula (=, +, -, @, tab, carriage return first) is
  // written with a leading quote (OWASP's CSV injection advice); csv-stringify does that.
  return stringify(rows, { header: true, columns: COLUMNS, cast: { number: (n) => String(n) }, escape_formulas: true });
}
