import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { connect } from '../../src/db/sql.js';
import { pgbenchVersion } from './machine-info.js';
import type { BenchCluster } from './pg.js';
import { distribution, round, say } from './util.js';

const run = promisify(execFile);

/**
 * The durable-commit ceiling: single-row INSERT transactions per second (autocommit, so one
 * WAL flush each, grouped by PostgreSQL when concurrent), on the same cluster and settings the
 * other phases use. pgbench when it is installed, and always the same statement from postgres.js.
 */
export interface CeilingRow {
  concurrency: number;
  perSecond: number;
  source: 'pgbench' | 'postgres.js';
  pgbenchPerSecond: number | null;
  pgbenchLatencyAvgMs: number | null;
  postgresJsPerSecond: number;
  postgresJsP50Ms: number;
  postgresJsP99Ms: number;
}

const STATEMENT = `insert into ceiling (payload) values ('tollgate')`;

export async function measureCeiling(
  cluster: BenchCluster,
  options: { concurrencies: number[]; seconds: number },
): Promise<CeilingRow[]> {
  const url = await cluster.createDatabase('bench_ceiling');
  const sql = connect(url, { max: 2 });
  await sql`create table ceiling (id bigserial primary key, at timestamptz not null default now(), payload text not null)`;
  await sql.end();
  const hasPgbench = pgbenchVersion() !== null;
  const script = path.join(cluster.root, 'ceiling.sql');
  await writeFile(script, `${STATEMENT};\n`);

  const rows: CeilingRow[] = [];
  for (const concurrency of options.concurrencies) {
    let pgbench: { tps: number; latencyMs: number } | null = null;
    if (hasPgbench) {
      const { stdout } = await run(
        'pgbench',
        [
          '-n',
          '-M', 'prepared',
          '-c', String(concurrency),
          '-j', String(Math.min(concurrency, 2)),
          '-T', String(options.seconds),
          '-f', script,
          '-h', cluster.connection.host,
          '-p', String(cluster.connection.port),
          '-U', cluster.connection.user,
          'bench_ceiling',
        ],
        { env: { ...process.env, PGPASSWORD: cluster.connection.password }, timeout: (options.seconds + 30) * 1000 },
      );
      const tps = /tps = ([\d.]+)/.exec(stdout);
      const latency = /latency average = ([\d.]+) ms/.exec(stdout);
      if (tps) pgbench = { tps: Number(tps[1]), latencyMs: latency ? Number(latency[1]) : NaN };
      say(`ceiling c=${concurrency}: pgbench ${pgbench ? round(pgbench.tps, 0) : '?'} inserts/s`);
    }
    const js = await postgresJsInserts(url, concurrency, options.seconds);
    say(`ceiling c=${concurrency}: postgres.js ${round(js.perSecond, 0)} inserts/s (p99 ${round(js.p99Ms, 1)} ms)`);
    rows.push({
      concurrency,
      perSecond: round(pgbench ? pgbench.tps : js.perSecond, 1),
      source: pgbench ? 'pgbench' : 'postgres.js',
      pgbenchPerSecond: pgbench ? round(pgbench.tps, 1) : null,
      pgbenchLatencyAvgMs: pgbench ? round(pgbench.latencyMs, 2) : null,
      postgresJsPerSecond: round(js.perSecond, 1),
      postgresJsP50Ms: round(js.p50Ms, 2),
      postgresJsP99Ms: round(js.p99Ms, 2),
    });
  }
  return rows;
}

async function postgresJsInserts(url: string, concurrency: number, seconds: number) {
  const sql = connect(url, { max: concurrency });
  try {
    // Open the connections first, as pgbench does before its clock starts.
    await Promise.all(Array.from({ length: concurrency }, () => sql`select 1`));
    const latencies: number[] = [];
    const started = performance.now();
    const until = started + seconds * 1000;
    let count = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < until) {
          const t = performance.now();
          await sql`insert into ceiling (payload) values (${'tollgate'})`;
          latencies.push(performance.now() - t);
          count++;
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    const d = distribution(latencies);
    return { perSecond: count / elapsed, p50Ms: d.p50, p99Ms: d.p99 };
  } finally {
    await sql.end({ timeout: 5 });
  }
}
