import { formatAmount, type Micros } from '../billing/money.js';
import type { Sql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';

export const PERIODS = ['hour', 'day', 'week', 'month'] as const;
export type Period = (typeof PERIODS)[number];

export interface UsageQuery {
  period: Period;
  by: 'service' | 'customer';
  from: Date;
  to: Date;
  timeZone: string;
  serviceId?: string | undefined;
  accountId?: string | undefined;
}

export interface UsageRow {
  /** Start of the period, in UTC (the period itself is cut in the query's time zone). */
  period: string;
  key: string;
  name: string;
  sessions: number;
  minutes: number;
  uses: number;
  revenue: string;
  customers: number;
  peakConcurrent: number;
}

/** Lanes end before the year 290000 (PostgreSQL's timestamps end in 294276), in Unix seconds; a test may set it lower to take the fallback. */
const LANES_END_EPOCH = 9_089_000_000_000;

interface Raw {
  period: Date;
  key: string;
  name: string;
  sessions: number;
  billable_ms: string;
  uses: number;
  revenue: string;
  customers: number;
  peak: number;
}

/**
 * Usage per period and service (or customer), computed by PostgreSQL over the session rows.
 *
 * A session counts (sessions, minutes, uses, revenue, customers) in the period it started in;
 * customers are counted by grouping per customer first, then per period (a hash aggregate twice,
 * where `count(distinct ...)` would sort every session).
 *
 * The peak counts every session running during the period, those started before it included:
 * each session is a +1 at its start (or at `from`) and a -1 at its end (or at `to`), and each
 * period gets a 0 mark at its start; the running sum, ends before marks before starts at one
 * instant, read at the marks and starts is the number running, and its maximum per period the
 * peak. Period starts are found by truncating instants every 15 minutes across the window, so
 * zones whose hours start at a quarter past UTC, and days that are 23 or 25 hours long, are cut
 * where the zone cuts them.
 *
 * The running sum is the expensive part (two events per session, sorted). Sorting them by key and
 * then instant compares two columns for nearly every pair; instead each key gets its own lane of
 * time, its instants shifted by `rank × (window + 1 s)` (a plain microsecond shift, no calendar
 * arithmetic), so one timestamp orders every event and PostgreSQL's single-integer sort applies.
 * Every key's events sum to zero (each session ends by `to`), so one running sum over all lanes
 * reads each key's own count. Should the lanes not fit in the timestamp range (hundreds of
 * thousands of keys over a long window), the shift is null and the sort falls back to key, then
 * instant: slower, same answer.
 */
export async function usageReport(sql: Sql, query: UsageQuery, lanes: { endEpochSeconds?: number } = {}): Promise<UsageRow[]> {
  const { period, by, from, to, timeZone } = query;
  const laneRoomSeconds = (lanes.endEpochSeconds ?? LANES_END_EPOCH) - to.getTime() / 1000;
  const keyColumn = by === 'service' ? sql`s.service_id` : sql`s.account_id`;
  const names = by === 'service' ? sql`select id, name from services` : sql`select id, name from accounts`;
  const rows = await transaction(sql, async (tx) => {
    // For this query only: its sorts and hashes stay in memory at a million sessions, and JIT
    // compilation (which PostgreSQL would choose from the estimated cost) costs more than it saves.
    await tx`set local work_mem = '64MB'`;
    await tx`set local jit = off`;
    return tx<Raw[]>`
    with s as not materialized (
      select ${keyColumn} as key, s.account_id, s.state, s.started_at, s.ended_at, s.billable_ms, s.uses_units, s.charge_micros
      from sessions s
      where s.started_at is not null and s.started_at < ${to} and (s.ended_at is null or s.ended_at > ${from})
        ${query.serviceId ? sql`and s.service_id = ${query.serviceId}` : sql``}
        ${query.accountId ? sql`and s.account_id = ${query.accountId}` : sql``}
    ),
    per_customer as (
      select date_trunc(${period}, started_at, ${timeZone}) as period, key, account_id, count(*) as sessions,
             sum(billable_ms) as billable_ms, sum(uses_units) as uses, sum(charge_micros) filter (where state = 'settled') as revenue
      from s where started_at >= ${from}
      group by 1, 2, 3
    ),
    started as (
      select period, key, sum(sessions)::int as sessions, coalesce(sum(billable_ms), 0)::text as billable_ms,
             coalesce(sum(uses), 0)::int as uses, coalesce(sum(revenue), 0)::text as revenue, count(*)::int as customers
      from per_customer group by 1, 2
    ),
    starts as (
      select distinct date_trunc(${period}, t, ${timeZone}) as period
      from generate_series(${from}::timestamptz, ${to}::timestamptz - interval '1 microsecond', interval '15 minutes') as t
    ),
    keys as materialized (
      select key, rank,
             case when count(*) over () * lane_seconds < ${laneRoomSeconds}::numeric
                  then make_interval(secs => (rank - 1) * lane_seconds) end as shift
      from (select key, row_number() over () as rank, extract(epoch from ${to}::timestamptz - ${from}::timestamptz) + 1 as lane_seconds
            from (select distinct key from s) k) k
    ),
    events as (
      select k.rank, greatest(s.started_at, ${from}::timestamptz) as at, 2 as kind,
             date_trunc(${period}, greatest(s.started_at, ${from}::timestamptz), ${timeZone}) as period,
             greatest(s.started_at, ${from}::timestamptz) + k.shift as lane
      from s join keys k on k.key = s.key
      union all
      select k.rank, least(s.ended_at, ${to}::timestamptz), 0, null, least(s.ended_at, ${to}::timestamptz) + k.shift
      from s join keys k on k.key = s.key
      union all
      select k.rank, greatest(p.period, ${from}::timestamptz), 1, p.period, greatest(p.period, ${from}::timestamptz) + k.shift
      from keys k cross join starts p
    ),
    running as (
      select rank, period, kind, sum(kind - 1) over (order by lane, rank, at, kind rows unbounded preceding) as n from events
    ),
    peaks as (
      select r.period, k.key, r.peak
      from (select period, rank, max(n)::int as peak from running where kind > 0 group by 1, 2) r join keys k using (rank)
    )
    select p.period, p.key, coalesce(n.name, '') as name, coalesce(st.sessions, 0) as sessions,
           coalesce(st.billable_ms, '0') as billable_ms, coalesce(st.uses, 0) as uses, coalesce(st.revenue, '0') as revenue,
           coalesce(st.customers, 0) as customers, p.peak
    from peaks p
    left join started st on st.period = p.period and st.key = p.key
    left join (${names}) n on n.id = p.key
    where p.peak > 0 or st.sessions > 0
    order by p.period, name, p.key`;
  });
  return rows.map((row) => ({
    period: row.period.toISOString(),
    key: row.key,
    name: row.name,
    sessions: row.sessions,
    minutes: Math.round(Number(row.billable_ms) / 60) / 1000,
    uses: row.uses,
    revenue: formatAmount(BigInt(row.revenue) as Micros),
    customers: row.customers,
    peakConcurrent: row.peak,
  }));
}

const CSV_COLUMNS = ['period', 'key', 'name', 'sessions', 'minutes', 'uses', 'revenue', 'customers', 'peakConcurrent'] as const;

/** RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled; a leading = + - @ is defused for spreadsheets. */
function csvField(value: string | number): string {
  let text = String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function usageCsv(rows: readonly UsageRow[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const row of rows) lines.push(CSV_COLUMNS.map((column) => csvField(row[column])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
