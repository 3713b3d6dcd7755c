import { keepUsagePeaks } from '../../src/reports/usage-peaks.js';
import { usageReport, type UsageQuery } from '../../src/reports/usage.js';
import { prepareTollgateDatabase, type BenchCluster, withSql } from './pg.js';
import { seedAccounts } from './seed.js';
import { say } from './util.js';

export interface ReportRow {
  report: string;
  sessions: number;
  rows: number;
  /** Median of the timed runs, with the first (cold) run apart. */
  coldMs: number;
  medianMs: number;
}

const DAY = 86_400_000;

/**
 * Usage reports over a million settled sessions (issue 13: "fast at a million sessions"): the
 * sessions are written straight in SQL (ten services, a thousand customers, 30 days, lasting one
 * to sixty minutes), then each report is run cold once and warm a few times, as an operator's
 * console would ask for it.
 */
export async function measureReports(cluster: BenchCluster, options: { sessions: number; runs?: number }): Promise<ReportRow[]> {
  const services = Array.from({ length: 10 }, (_, i) => ({ key: `s${i}`, pricePerMinuteMicros: 600_000n }));
  const db = await prepareTollgateDatabase(cluster, 'bench_reports', services);
  const serviceIds = Object.values(db.services);
  const end = Date.UTC(2026, 10, 30);
  const start = end - 30 * DAY;
  return withSql(db.url, async (sql) => {
    const accounts = await seedAccounts(sql, 1000);
    const began = performance.now();
    for (let from = 0; from < options.sessions; from += 100_000) {
      const to = Math.min(options.sessions, from + 100_000) - 1;
      await sql`
        insert into sessions (id, account_id, service_id, server_id, state, path, seq, machine_version, snapshot, currency,
          price_per_minute_micros, max_ms, max_charge_micros, reserved_micros, started_at, ended_at, charge_micros,
          end_reason, billable_ms, uses_units, uses_micros, created_at, updated_at)
        select gen_random_uuid(), (${accounts}::uuid[])[1 + (i % 1000)], (${serviceIds}::uuid[])[1 + (i % 10)], ${db.serverId},
          'settled', 'settled', 3, 4, '{}'::jsonb, 'USD', 600000, null, 50000000, 0,
          to_timestamp((${start}::int8 + (i::int8 * 2591) % ${30 * DAY}::int8) / 1000.0),
          to_timestamp((${start}::int8 + (i::int8 * 2591) % ${30 * DAY}::int8 + (60 + i % 3540) * 1000) / 1000.0),
          (60 + i % 3540) * 10000, 'logoff', (60 + i % 3540) * 1000, i % 3, (i % 3) * 50000,
          to_timestamp(${start} / 1000.0), now()
        from generate_series(${from}::int, ${to}::int) as i`;
      say(`  seeded ${to + 1} / ${options.sessions} settled sessions`);
    }
    await sql`analyze sessions`;
    say(`  seeded in ${((performance.now() - began) / 1000).toFixed(1)} s`);
    // Housekeeping keeps the peaks of every settled quarter (src/reports/usage-peaks.ts), the
    // whole history at its first run: timed once, as a row of its own, before the reports.
    const keeping = performance.now();
    await keepUsagePeaks(sql, new Date(end));
    const keptMs = Math.round(performance.now() - keeping);
    const [kept] = await sql<{ n: number }[]>`select count(*)::int as n from usage_peaks`;
    say(`  kept the peaks of every quarter in ${keptMs} ms (${kept!.n} rows)`);
    const reports: { name: string; query: UsageQuery }[] = [
      { name: 'per service and day, 30 days', query: { period: 'day', by: 'service', from: new Date(start), to: new Date(end), timeZone: 'UTC', asOf: new Date(end) } },
      { name: 'per service and hour, one day', query: { period: 'hour', by: 'service', from: new Date(end - DAY), to: new Date(end), timeZone: 'UTC', asOf: new Date(end) } },
      { name: 'one service per hour, 30 days (Europe/Paris)', query: { period: 'hour', by: 'service', serviceId: serviceIds[0], from: new Date(start), to: new Date(end), timeZone: 'Europe/Paris', asOf: new Date(end) } },
      { name: 'per customer and month', query: { period: 'month', by: 'customer', from: new Date(start), to: new Date(end), timeZone: 'UTC', asOf: new Date(end) } },
      { name: 'one customer per day, 30 days', query: { period: 'day', by: 'customer', accountId: accounts[0], from: new Date(start), to: new Date(end), timeZone: 'UTC', asOf: new Date(end) } },
    ];
    const rows: ReportRow[] = [{ report: 'housekeeping: keep every quarter’s peaks, once (not a report)', sessions: options.sessions, rows: kept!.n, coldMs: keptMs, medianMs: keptMs }];
    for (const { name, query } of reports) {
      const times: number[] = [];
      let count = 0;
      for (let run = 0; run <= (options.runs ?? 3); run++) {
        const t = performance.now();
        count = (await usageReport(sql, query)).length;
        times.push(performance.now() - t);
      }
      const [cold, ...warm] = times;
      warm.sort((a, b) => a - b);
      const row = { report: name, sessions: options.sessions, rows: count, coldMs: Math.round(cold!), medianMs: Math.round(warm[Math.floor(warm.length / 2)]!) };
      say(`  ${name}: ${row.rows} rows, cold ${row.coldMs} ms, warm median ${row.medianMs} ms`);
      rows.push(row);
    }
    return rows;
  });
}
