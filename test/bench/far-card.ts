import path from 'node:path';
import type { BenchChild } from './child.js';
import { startPair } from './pair.js';
import { measureOpens, type OpenRun } from './opens.js';
import { prepareTollgateDatabase, type BenchCluster } from './pg.js';
import { postgresPids } from './procstat.js';
import { say } from './util.js';

export interface FarCardPhase {
  latencyMs: number;
  opens: OpenRun[];
}

/**
 * Opens with the card company far away (issue 16): the sandbox waits `latencyMs` before every
 * answer, so an open's time is mostly waiting, and throughput should be concurrency ÷ latency
 * until the CPU binds, with no error even at a thousand opens in flight.
 */
export async function measureFarCard(
  cluster: BenchCluster,
  options: { latencyMs: number; concurrencies: number[]; seconds: number; maxRequests: number; workDir: string; accounts: number },
): Promise<FarCardPhase> {
  const db = await prepareTollgateDatabase(cluster, 'bench_far', [{ key: 'far', pricePerMinuteMicros: 100_000n }]);
  const children: BenchChild<{ url: string }>[] = [];
  try {
    const { sandbox, server } = await startPair(children, {
      databaseUrl: db.url,
      dataDir: path.join(options.workDir, 'data-far'),
      sandboxEnv: { CARD_NETWORK_LATENCY_MS: String(options.latencyMs), SANDBOX_POOL_SIZE: '40' },
    });
    say(`card network ${options.latencyMs} ms away: tollgate at ${server.ready.url}`);
    const phase = await measureOpens({
      server,
      sandbox,
      serviceId: db.services.far!,
      concurrencies: options.concurrencies,
      seconds: options.seconds,
      maxRequests: options.maxRequests,
      profileSeconds: 0,
      profileDir: options.workDir,
      accounts: options.accounts,
      databaseUrl: db.url,
      cycles: false,
      cpuGroups: [
        { name: 'tollgate', pids: () => [server.pid] },
        { name: 'sandbox', pids: () => [sandbox.pid] },
        { name: 'postgres', pids: () => postgresPids(path.join(options.workDir, 'pgdata')) },
      ],
    });
    await server.request('close', undefined, 60_000).catch(() => server.kill());
    await sandbox.request('close', undefined, 60_000).catch(() => sandbox.kill());
    await Promise.all([server.exited, sandbox.exited]);
    return { latencyMs: options.latencyMs, opens: phase.opens };
  } finally {
    for (const child of children) child.kill();
  }
}
