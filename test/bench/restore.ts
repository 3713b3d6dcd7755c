import { GENEROUS_LIMITS } from '../helpers/operators.js';
import path from 'node:path';
import { spawnChild } from './child.js';
import { summarizeProfile, type ProfileSummary } from './cpu-profile.js';
import type { Memory } from './concurrent.js';
import { prepareTollgateDatabase, withSql, type BenchCluster } from './pg.js';
import { BULK_TERMS, seedAccounts, seedUnsettled } from './seed.js';
import { mb, round, say } from './util.js';

/**
 * Phase 4: restore after a restart. A fresh tollgate process is started on a database holding
 * N unsettled sessions (phase 3's database when it has one: the sessions it held, left unsettled
 * by its shutdown; otherwise N rows written in SQL) and startTollgate is timed: migrations, the
 * catalogue, Supervisor.restore (every actor, seat and deadline) and the reconciliation of open
 * holds with the card network.
 */
export interface RestoreRow {
  sessions: number;
  /** startTollgate, restore included. */
  seconds: number;
  restored: number;
  unsettledRows: number;
  /** From the process's start until startTollgate returned (module loading included). */
  processSeconds: number;
  source: string;
  memory: Memory;
}

export async function measureRestore(
  cluster: BenchCluster,
  options: { sizes: number[]; databases: Record<number, string>; workDir: string; deadline: number },
): Promise<{ rows: RestoreRow[]; skipped: { sessions: number; reason: string }[]; profile: (ProfileSummary & { sessions: number; seconds: number }) | null }> {
  const rows: RestoreRow[] = [];
  const skipped: { sessions: number; reason: string }[] = [];
  for (const sessions of options.sizes) {
    let name = options.databases[sessions];
    const remaining = (options.deadline - performance.now()) / 1000;
    const needed = (name ? 10 : 30) + sessions / (name ? 10_000 : 5_000);
    if (needed > remaining) {
      const reason = `skipped: about ${Math.round(needed)} s needed, ${Math.round(remaining)} s left of the run's budget`;
      say(`restore ${sessions}: ${reason}`);
      skipped.push({ sessions, reason });
      continue;
    }
    let source = 'the database phase 3 left behind (its sessions, unsettled after its shutdown)';
    if (!name) {
      name = `bench_restore_${sessions}`;
      const db = await prepareTollgateDatabase(cluster, name, [{ key: 'bulk', pricePerMinuteMicros: 10_000n }]);
      await withSql(db.url, async (sql) => {
        const accounts = await seedAccounts(sql, Math.max(10, Math.ceil(sessions / 100)));
        await seedUnsettled(sql, {
          count: sessions,
          accountIds: accounts,
          serviceId: db.services.bulk!,
          serverId: db.serverId,
          ...BULK_TERMS,
        });
      });
      source = `${sessions} unsettled rows written in SQL`;
    }
    const url = cluster.url(name);
    const unsettledRows = await withSql(url, async (sql) => {
      const [row] = await sql<{ n: number }[]>`select count(*)::int as n from sessions where state not in ('settled', 'declined')`;
      return row!.n;
    });
    const sandbox = await spawnChild<{ url: string }>('sandbox-child.ts', { label: 'sandbox', env: { DATABASE_URL: url } });
    say(`restore ${sessions}: starting a fresh tollgate on ${unsettledRows} unsettled sessions`);
    const child = await spawnChild<{ startSeconds: number; restored: number; processSeconds: number; memory: Memory }>(
      'restore-child.ts',
      {
        label: `tollgate restore(${sessions})`,
        env: {
          DATABASE_URL: url,
          CARD_NETWORK_URL: sandbox.ready.url,
          TOLLGATE_DATA_DIR: path.join(options.workDir, `data-restore-${sessions}`),
          TOLLGATE_ADMIN_TOKEN: 'bench-admin-token-0123456789',
          // The benchmark measures throughput, not the rate limits and quotas of issue 15.
          ...GENEROUS_LIMITS,
        },
        execArgv: ['--expose-gc', ...(sessions > 200_000 ? ['--max-old-space-size=20000'] : [])],
        readyTimeoutMs: 300_000,
      },
    );
    const ready = child.ready;
    const processSeconds = ready.processSeconds;
    say(
      `restore ${sessions}: startTollgate ${ready.startSeconds.toFixed(2)} s for ${ready.restored} sessions` +
        ` (process ready after ${processSeconds.toFixed(1)} s; rss ${mb(ready.memory.rssBytes)})`,
    );
    rows.push({
      sessions,
      seconds: round(ready.startSeconds, 2),
      restored: ready.restored,
      unsettledRows,
      processSeconds: round(processSeconds, 2),
      source,
      memory: ready.memory,
    });
    await child.request('close', undefined, 120_000).catch(() => child.kill());
    await child.exited;
    await sandbox.request('close').catch(() => sandbox.kill());
    await sandbox.exited;
  }
  // Where a restore's time goes: one more start on the largest database, under the sampling profiler.
  let profile: (ProfileSummary & { sessions: number; seconds: number }) | null = null;
  const largest = rows.at(-1);
  if (largest && options.deadline - performance.now() > 20_000 + largest.seconds * 2000) {
    const url = cluster.url(options.databases[largest.sessions] ?? `bench_restore_${largest.sessions}`);
    const file = path.join(options.workDir, `restore-${largest.sessions}.cpuprofile`);
    say(`restore ${largest.sessions}: once more under the CPU profiler (not timed)`);
    const sandbox = await spawnChild<{ url: string }>('sandbox-child.ts', { label: 'sandbox', env: { DATABASE_URL: url } });
    const child = await spawnChild<{ startSeconds: number }>('restore-child.ts', {
      label: `tollgate restore(${largest.sessions}) profiled`,
      env: {
        DATABASE_URL: url,
        CARD_NETWORK_URL: sandbox.ready.url,
        TOLLGATE_DATA_DIR: path.join(options.workDir, `data-restore-${largest.sessions}`),
        TOLLGATE_ADMIN_TOKEN: 'bench-admin-token-0123456789',
        // The benchmark measures throughput, not the rate limits and quotas of issue 15.
        ...GENEROUS_LIMITS,
        BENCH_PROFILE_FILE: file,
      },
      execArgv: ['--expose-gc', ...(largest.sessions > 200_000 ? ['--max-old-space-size=20000'] : [])],
      readyTimeoutMs: 300_000,
    });
    profile = { ...(await summarizeProfile(file)), sessions: largest.sessions, seconds: round(child.ready.startSeconds, 2) };
    await child.request('close', undefined, 120_000).catch(() => child.kill());
    await child.exited;
    await sandbox.request('close').catch(() => sandbox.kill());
    await sandbox.exited;
  }
  return { rows, skipped, profile };
}
