import { formatAmount, type Micros } from '../billing/money.js';
import type { Sql, TransactionSql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';
import { KIND_CODE, QUARTER_MS, sealPeaks } from './usage-peaks.js';

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
  /** Now, by the clock: a session still running counts its minutes up to here, and runs on no later. */
  asOf: Date;
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

/**
 * Memory for the report's sorts and hashes, each: the peaks sort every start and end in the window
 * (two million rows for a million sessions), which PostgreSQL's default of 4 MB sent to disk.
 */
const REPORT_WORK_MEM = '256MB';

/** The most a report keeps of the quarters settled since the last were kept (the rest is housekeeping's, or the next report's). */
const REPORT_KEEPS_UP_TO_MS = 86_400_000;

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
 * Sums are taken per customer first, then per key: distinct customers are the first sums' rows,
 * counted from a hash table instead of sorting every session as count(distinct) does.
 *
 * A session counts (sessions, minutes, uses, revenue, customers) in the period it started in.
 * The peak counts every session running during the period, those started before it included.
 * The peaks of quarters no session can change any more are kept (usage-peaks.ts): the window's
 * whole quarters up to there are read from them. The rest of the window (the part of a quarter
 * before its first whole one, and everything after the kept quarters: mostly the last minutes)
 * is counted from the sessions: each session is a +1 at its start (or at the window's) and a -1
 * at its end, and each period that has a session running gets a 0 at its start; the running
 * sum, ends before marks before starts at one instant, read at the marks and starts is the
 * number running, and its maximum per period the peak. Period starts are found by truncating
 * instants every 15 minutes across the window, so zones whose hours start at a quarter past UTC,
 * and days that are 23 or 25 hours long, are cut where the zone cuts them.
 */
export async function usageReport(db: Sql, query: UsageQuery, options: { keptPeaks?: boolean } = {}): Promise<UsageRow[]> {
  // Without the kept peaks (keptPeaks: false, for tests), every peak is counted from the sessions.
  // The quarters settled since the last are kept first, in a transaction of their own (its lock
  // is not held while the report runs).
  const kept =
    options.keptPeaks !== false && keptPeaksFor(query)
      ? await transaction(db, async (sql) => {
          await sql`select set_config('work_mem', ${REPORT_WORK_MEM}, true)`;
          return sealPeaks(sql, query.asOf, { maxSpanMs: REPORT_KEEPS_UP_TO_MS });
        })
      : null;
  const rows = await transaction(db, async (sql) => {
    // set_config(…, true) holds for this transaction only, on this one connection.
    await sql`select set_config('work_mem', ${REPORT_WORK_MEM}, true)`;
    return usageRows(sql, query, kept);
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

/**
 * Whether the kept peaks answer this report: they count all of a service's (or an account's)
 * sessions, so not a report per service of one account's sessions, or per customer of one service's.
 */
const keptPeaksFor = (query: UsageQuery) => (query.by === 'service' ? query.accountId === undefined : query.serviceId === undefined);

function usageRows(sql: TransactionSql, query: UsageQuery, keptUpto: number | null) {
  const { period, by, from, to, timeZone } = query;
  // Where a running session stops counting: now, or the window's end if that comes first.
  const runningTo = new Date(Math.min(to.getTime(), query.asOf.getTime()));
  const keyColumn = by === 'service' ? sql`s.service_id` : sql`s.account_id`;
  const names = by === 'service' ? sql`select id, name from services` : sql`select id, name from accounts`;
  const filters = sql`${query.serviceId ? sql`and s.service_id = ${query.serviceId}` : sql``} ${query.accountId ? sql`and s.account_id = ${query.accountId}` : sql``}`;
  // The kept quarters inside the window, [keptFrom, keptTo); the rest of it is counted from the sessions.
  const keptFrom = Math.ceil(from.getTime() / QUARTER_MS) * QUARTER_MS;
  const keptTo = keptUpto === null ? keptFrom : Math.min(keptUpto, Math.floor(to.getTime() / QUARTER_MS) * QUARTER_MS);
  const counted: [Date, Date][] = keptTo > keptFrom ? [] : [[from, to]];
  if (keptTo > keptFrom) {
    if (from.getTime() < keptFrom) counted.push([from, new Date(keptFrom)]);
    if (keptTo < to.getTime()) counted.push([new Date(keptTo), to]);
  }
  // Each counted part's sessions: those running at some instant of it (a running one has no end
  // yet, and only sessions not settled run: their index finds them, as the one on ends finds the rest).
  const parts = counted.map(
    ([a, b], w) => sql`${sql(`part${w}`)} as (
      select ${keyColumn} as key, s.started_at, coalesce(s.ended_at, greatest(s.started_at, ${runningTo}::timestamptz)) as ended_at
      from sessions s
      where s.started_at is not null and s.started_at < ${b}
        and (s.ended_at > ${a} or (s.ended_at is null and s.state not in ('settled', 'declined'))) ${filters}
    ),`,
  );
  const events = counted.map(
    ([a, b], w) => sql`
      select ${w}::int as w, key, greatest(started_at, ${a}::timestamptz) as at, 1 as d from ${sql(`part${w}`)} where ended_at > ${a}
      union all
      select ${w}, key, ended_at, -1 from ${sql(`part${w}`)} where ended_at > ${a} and ended_at < ${b}
      union all
      select ${w}, k.key, greatest(p.period, ${a}::timestamptz), 0
      from (select distinct key from ${sql(`part${w}`)} where ended_at > ${a}) k cross join starts p
      where greatest(p.period, ${a}::timestamptz) < ${b}`,
  );
  const countedEvents = events.length > 0 ? events.reduce((all, one) => sql`${all} union all ${one}`) : sql`select 0 as w, null::uuid as key, null::timestamptz as at, 0 as d where false`;
  const keyFilter = by === 'service' ? query.serviceId : query.accountId;
  const kept =
    keptTo > keptFrom
      ? sql`
        union all
        select date_trunc(${period}, quarter, ${timeZone}), key, peak from usage_peaks
        where kind = ${KIND_CODE[by === 'service' ? 'service' : 'account']} and quarter >= ${new Date(keptFrom)} and quarter < ${new Date(keptTo)}
          ${keyFilter ? sql`and key = ${keyFilter}` : sql``}`
      : sql``;
  return sql<Raw[]>`
    with ${parts.reduce((all, one) => sql`${all} ${one}`, sql``)}
    per_customer as (
      select date_trunc(${period}, s.started_at, ${timeZone}) as period, ${keyColumn} as key, s.account_id, count(*) as sessions,
             -- Each session's whole seconds, as statements and the session log count its minutes; a
             -- running one's so far (its billable time is written when it ends), as its uses so far count.
             sum(coalesce(s.billable_ms, (extract(epoch from greatest(${runningTo}::timestamptz - s.started_at, interval '0')) * 1000)::int8) / 1000 * 1000) as billable_ms,
             sum(s.uses_units) as uses, sum(s.charge_micros) filter (where s.state = 'settled') as revenue
      from sessions s where s.started_at >= ${from} and s.started_at < ${to} ${filters}
      group by 1, 2, 3
    ),
    started as (
      select period, key, sum(sessions)::int as sessions, coalesce(sum(billable_ms), 0)::text as billable_ms,
             coalesce(sum(uses), 0)::float8 as uses, coalesce(sum(revenue), 0)::text as revenue, count(*)::int as customers
      from per_customer group by 1, 2
    ),
    starts as (
      select distinct date_trunc(${period}, t, ${timeZone}) as period
      -- From the quarter the window begins in: a period beginning in its last quarter is one too.
      from generate_series(date_bin('15 minutes', ${from}::timestamptz, timestamptz 'epoch'), ${to}::timestamptz - interval '1 microsecond', interval '15 minutes') as t
    ),
    events as (${countedEvents}),
    running as (
      select key, at, d, sum(d) over (partition by w, key order by at, d rows unbounded preceding) as n from events
    ),
    peaks as (
      select period, key, max(peak)::int as peak from (
        select date_trunc(${period}, at, ${timeZone}) as period, key, n as peak from running where d >= 0
        ${kept}
      ) every_peak group by 1, 2
    )
    -- A period of sessions that ran no instant (started and ended at once) has no peak, and still its sessions.
    select coalesce(p.period, st.period) as period, coalesce(p.key, st.key) as key, coalesce(n.name, '') as name,
           coalesce(st.sessions, 0) as sessions, coalesce(st.billable_ms, '0') as billable_ms, coalesce(st.uses, 0) as uses,
           coalesce(st.revenue, '0') as revenue, coalesce(st.customers, 0) as customers, coalesce(p.peak, 0) as peak
    from peaks p
    full join started st on st.period = p.period and st.key = p.key
    left join (${names}) n on n.id = coalesce(p.key, st.key)
    where p.peak > 0 or st.sessions > 0
    order by 1, 3, 2`;
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
