import type { Sql, TransactionSql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';

/** Peaks are kept per quarter of an hour: every time zone's hours and days begin on one. */
export const QUARTER_MS = 15 * 60_000;
/**
 * How far behind the clock the kept quarters stay: a session's start is written a moment after
 * its instant (a batch of writes), and the clocks of several nodes differ a little.
 */
const SETTLE_MS = 5 * 60_000;

export type PeakKind = 'service' | 'account';
export const KIND_CODE: Record<PeakKind, number> = { service: 0, account: 1 };

/**
 * Keeps the peaks of every quarter no session can change any more, and answers up to where
 * they are kept (null: nothing kept yet). A quarter is settled once it lies before every session
 * not yet settled began to be opened (its row is written before its card is asked, so it starts,
 * and ends, later than that) and a few minutes before now. Sessions are never written into the
 * past otherwise: the kept quarters are history.
 *
 * Each call adds the quarters settled since the last, unless another call is doing so (then it
 * answers what is kept so far, at once); with `maxSpanMs`, at most that span of them: a report
 * keeps the last minutes (and a long backlog a day at a time), housekeeping (keepUsagePeaks) all,
 * a day per transaction, the whole history at its first run.
 */
export async function sealPeaks(sql: TransactionSql, asOf: Date, options: { maxSpanMs?: number } = {}): Promise<number | null> {
  const [lock] = await sql<{ locked: boolean }[]>`select pg_try_advisory_xact_lock(hashtext('tollgate.usage_peaks')) as locked`;
  const [state] = await sql<{ upto: Date | null; settled: Date | null; first: Date | null }[]>`
    select (select upto from usage_peaks_sealed) as upto,
           least(${new Date(asOf.getTime() - SETTLE_MS)}::timestamptz,
                 (select min(created_at) from sessions where state not in ('settled', 'declined'))) as settled,
           case when not exists (select from usage_peaks_sealed) then (select min(started_at) from sessions) end as first`;
  const kept = state!.upto?.getTime() ?? null;
  const from = state!.upto ?? state!.first;
  if (!lock!.locked || from === null) return kept;
  const settledTo = Math.floor(state!.settled!.getTime() / QUARTER_MS) * QUARTER_MS;
  const start = Math.floor(from.getTime() / QUARTER_MS) * QUARTER_MS;
  if (settledTo <= start) return kept;
  const upto = options.maxSpanMs === undefined ? settledTo : Math.min(settledTo, start + Math.floor(options.maxSpanMs / QUARTER_MS) * QUARTER_MS);
  for (const kind of ['service', 'account'] as const) await keepPeaks(sql, kind, new Date(start), new Date(upto));
  await sql`
    insert into usage_peaks_sealed (upto) values (${new Date(upto)})
    on conflict (id) do update set upto = excluded.upto`;
  return upto;
}

/**
 * Housekeeping's turn: keeps every settled quarter, however many, a day of them per transaction.
 * Domain events are read only below the oldest transaction running (src/events): one transaction
 * over a long history (half a minute for a million sessions) would hold every subscriber back
 * that long.
 */
export async function keepUsagePeaks(db: Sql, asOf: Date): Promise<void> {
  let first: number | null | undefined;
  let last: number | null = null;
  for (;;) {
    const step = await transaction(db, async (sql) => {
      await sql`select set_config('statement_timeout', '0', true), set_config('work_mem', '256MB', true)`;
      const before = (await sql<{ upto: Date | null }[]>`select upto from usage_peaks_sealed`)[0]?.upto?.getTime() ?? null;
      return { before, after: await sealPeaks(sql, asOf, { maxSpanMs: KEEP_STEP_MS }) };
    });
    if (first === undefined) first = step.before;
    if (step.after === null || step.after === step.before) break;
    last = step.after;
  }
  // Many rows at once (a first run): the planner learns of them now, not at autovacuum's next turn.
  if (last !== null && (first === null || first === undefined || last - first > KEEP_STEP_MS)) await db`analyze usage_peaks`;
}

/** What one of housekeeping's transactions keeps at most. */
const KEEP_STEP_MS = 86_400_000;

/**
 * The peaks of [from, to) for one kind of key. Every session there has ended (sealPeaks), so
 * each is a +1 at its start (or at `from`) and a -1 at its end (if before `to`); ends come before
 * starts at one instant. A quarter's peak is the most running before or after any of its events
 * (before the first: the level it began with, less those ending at its first instant), its level
 * the count after its last instant. A quarter with
 * sessions running through it and no event of its own gets a row too, at the level the last
 * quarter with events left: a report reads the rows of its periods' quarters and nothing else.
 */
async function keepPeaks(sql: TransactionSql, kind: PeakKind, from: Date, to: Date): Promise<void> {
  const key = kind === 'service' ? sql`service_id` : sql`account_id`;
  await sql`
    with s as (
      select ${key} as key, started_at, ended_at from sessions
      where started_at is not null and started_at < ${to} and ended_at > ${from}
    ),
    events as (
      select key, greatest(started_at, ${from}::timestamptz) as at, 1 as d from s
      union all
      select key, ended_at, -1 from s where ended_at < ${to}
    ),
    running as (
      -- n: the count after this event, one at a time; whole: after every event of its kind at its
      -- instant (events at one instant come in no order among themselves).
      select key, at, d, sum(d) over (partition by key order by at, d rows unbounded preceding) as n,
             sum(d) over (partition by key order by at, d range unbounded preceding) as whole
      from events
    ),
    quarters as (
      -- The peak: each count before or after an event, but at the quarter's first instant only what
      -- runs after the sessions ending there (they ran in the quarter before); the level: after the last instant.
      select key, date_bin('15 minutes', at, timestamptz 'epoch') as quarter,
             max(case when d < 0 and at = date_bin('15 minutes', at, timestamptz 'epoch') then whole else greatest(n, n - d) end)::int as peak,
             ((array_agg(whole order by at desc, d desc))[1])::int as level
      from running group by 1, 2
    ),
    between_events as (
      select q.key, g.quarter, q.level as peak, q.level
      from (select key, quarter, level, lead(quarter) over (partition by key order by quarter) as next from quarters) q
      cross join lateral generate_series(q.quarter + interval '15 minutes', coalesce(q.next, ${to}::timestamptz) - interval '15 minutes', interval '15 minutes') as g(quarter)
      where q.level > 0
    )
    insert into usage_peaks (kind, key, quarter, peak, level)
    select ${KIND_CODE[kind]}, key, quarter, peak, level from (select * from quarters union all select * from between_events) every_quarter
    on conflict (kind, key, quarter) do update set peak = excluded.peak, level = excluded.level`;
}
