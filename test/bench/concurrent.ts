import { GENEROUS_LIMITS } from '../helpers/operators.js';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { spawnChild } from './child.js';
import type { LoopWindow } from './opens.js';
import { summarizeProfile, type ProfileSummary } from './cpu-profile.js';
import { diffHeaps, heapGroups, type HeapDiffRow } from './heap-summary.js';
import { prepareTollgateDatabase, withSql, type BenchCluster } from './pg.js';
import { BULK_TERMS, seedAccounts, seedUnsettled } from './seed.js';
import { distribution, type Distribution, mb, round, say, sleep } from './util.js';

/**
 * Phase 3: concurrent active sessions held by one tollgate process (a child holding nothing
 * else: the sandbox runs in its own process). Sessions are created through Supervisor.open (real
 * card authorizations, real commits, HTTP bypassed) up to `openLimit`; above it, as unsettled
 * rows written in SQL and brought up by Supervisor.restore (the same session actors, seats and
 * scheduled deadlines; the report says which). Then, while the process holds them, a slice of
 * sessions is opened through Supervisor.open with limits that fall due within seconds, and the
 * instant each leaves `active` is compared with the cutoff it computed.
 */
export interface Memory {
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  arrayBuffersBytes: number;
  heapLimitBytes: number;
}

interface OpenReply {
  ids: string[];
  seconds: number;
  latency: Distribution;
  failures: Record<string, number>;
  watched: number;
}

export interface ConcurrentRow {
  sessions: number;
  method: 'Supervisor.open' | 'SQL rows + Supervisor.restore';
  /**
   * Per session: (memory holding them − memory before them) / sessions, both read after full GCs
   * and `idleMs` of idleness (V8's memory reducer returns unused heap pages to the system then).
   */
  rssBytes: number;
  heapBytes: number;
  externalBytes: number;
  /** The same, read at once after creating them (committed heap that garbage left behind included). */
  rssBytesRightAfter: number;
  idleMs: number;
  baseline: Memory;
  holding: Memory;
  holdingRightAfter: Memory;
  createSeconds: number;
  createPerSecond: number;
  seedSeconds: number | null;
  createFailures: Record<string, number>;
  /** Supervisor.open of the slice while the process held the sessions. */
  sliceOpens: { count: number; seconds: number; perSecond: number; p50Ms: number; p99Ms: number; failures: Record<string, number> };
  /** Projected time to create all `sessions` through Supervisor.open at the slice's rate (restore rows only). */
  projectedOpenSeconds: number | null;
  cutoffCount: number;
  cutoffMissing: number;
  cutoffP50Ms: number;
  cutoffP99Ms: number;
  cutoffMaxMs: number;
  cutoffMinMs: number;
  cutoffSource: 'in-process subscription' | 'session_events.at';
  cutoffFromEvents: Distribution | null;
  eventLoopDelay: LoopWindow | null;
  liveAfterSlice: number;
  profile: (ProfileSummary & { of: string }) | null;
  heap: { bytesPerSession: number; rows: HeapDiffRow[] } | null;
}

/** How one size is held: sessions made through Supervisor.open up to openLimit, and the cutoff slice. */
interface HoldOptions {
  openLimit: number;
  slice: number;
  sliceConcurrency: number;
  openConcurrency: number;
  heapSnapshotUpTo: number;
  profile: boolean;
  workDir: string;
}

export async function measureConcurrent(
  cluster: BenchCluster,
  options: HoldOptions & { sizes: number[]; deadline: number },
): Promise<{ rows: ConcurrentRow[]; skipped: { sessions: number; reason: string }[]; databases: Record<number, string> }> {
  const rows: ConcurrentRow[] = [];
  const skipped: { sessions: number; reason: string }[] = [];
  const databases: Record<number, string> = {};
  for (const sessions of options.sizes) {
    const remaining = options.deadline - performance.now();
    const estimate = estimateSeconds(sessions, options, rows);
    if (estimate * 1000 > remaining) {
      const reason = `skipped: about ${Math.round(estimate)} s needed, ${Math.round(remaining / 1000)} s left of the run's budget`;
      say(`concurrent ${sessions}: ${reason}`);
      skipped.push({ sessions, reason });
      continue;
    }
    const row = await holdSessions(cluster, sessions, options);
    databases[sessions] = `bench_hold_${sessions}`;
    rows.push(row);
  }
  return { rows, skipped, databases };
}

function estimateSeconds(sessions: number, options: { openLimit: number }, done: ConcurrentRow[]): number {
  const last = done.at(-1);
  // Seeding and restoring went at roughly 10k rows/s each here; opens at the measured rate.
  // Fixed part: start, sign-ups, two idle memory readings, the slice and its cutoffs.
  if (sessions <= options.openLimit) return 60 + sessions / Math.max(50, last?.createPerSecond ?? 300);
  const restoreRate = done.find((r) => r.method !== 'Supervisor.open')?.createPerSecond ?? 8000;
  return 70 + sessions / 12_000 + sessions / restoreRate;
}

async function holdSessions(
  cluster: BenchCluster,
  sessions: number,
  options: HoldOptions,
): Promise<ConcurrentRow> {
  const method: ConcurrentRow['method'] = sessions <= options.openLimit ? 'Supervisor.open' : 'SQL rows + Supervisor.restore';
  say(`concurrent ${sessions}: ${method}`);
  const db = await prepareTollgateDatabase(cluster, `bench_hold_${sessions}`, [
    // 0.01 a minute with a 5.00 limit: a cutoff 500 minutes away.
    { key: 'bulk', pricePerMinuteMicros: 10_000n },
    // 60.00 a minute (1.00 a second): a limit of N.00 is cut N seconds after the start.
    { key: 'slice', pricePerMinuteMicros: 60_000_000n },
  ]);
  const seededAccounts =
    method === 'Supervisor.open' ? [] : await withSql(db.url, (sql) => seedAccounts(sql, Math.max(10, Math.ceil(sessions / 100))));

  const sandbox = await spawnChild<{ url: string }>('sandbox-child.ts', {
    label: 'sandbox',
    env: { DATABASE_URL: db.url },
  });
  const heapMb = sessions > 200_000 ? 20_000 : 0;
  const child = await spawnChild<{ startSeconds: number }>('hold-child.ts', {
    label: `tollgate(${sessions})`,
    env: {
      DATABASE_URL: db.url,
      CARD_NETWORK_URL: sandbox.ready.url,
      TOLLGATE_DATA_DIR: path.join(options.workDir, `data-hold-${sessions}`),
      TOLLGATE_ADMIN_TOKEN: 'bench-admin-token-0123456789',
      // The benchmark measures throughput, not the rate limits and quotas of issue 15.
      ...GENEROUS_LIMITS,
    },
    execArgv: ['--expose-gc', ...(heapMb ? [`--max-old-space-size=${heapMb}`] : [])],
    onProgress: say,
  });
  try {
    const accountIds = await child.request<string[]>('signup', { count: 64 });
    const heapFiles = { before: path.join(options.workDir, `hold-${sessions}-before.heapsnapshot`), after: path.join(options.workDir, `hold-${sessions}-after.heapsnapshot`) };
    const wantHeap = sessions <= options.heapSnapshotUpTo;
    const idleMs = 10_000;
    const baseline = await child.request<Memory>('memory', { idleMs });
    if (wantHeap) await child.request('heap-snapshot', { file: heapFiles.before });
    say(`concurrent ${sessions}: baseline rss ${mb(baseline.rssBytes)}, heap ${mb(baseline.heapUsedBytes)}`);

    const profileFile = path.join(options.workDir, `hold-${sessions}-create.cpuprofile`);
    let createSeconds: number;
    let seedSeconds: number | null = null;
    let createFailures: Record<string, number> = {};
    if (method === 'Supervisor.open') {
      if (options.profile) await child.request('profile-start', { intervalUs: 1000 });
      const opened = await child.request<OpenReply>('open', {
        count: sessions,
        concurrency: options.openConcurrency,
        serviceId: db.services.bulk,
        accountIds,
        maxCharges: ['5.00'],
        label: `opening ${sessions}`,
      });
      createSeconds = opened.seconds;
      createFailures = opened.failures;
      say(`concurrent ${sessions}: opened ${opened.ids.length} in ${opened.seconds.toFixed(1)} s (p50 ${round(opened.latency.p50, 1)} ms, p99 ${round(opened.latency.p99, 1)} ms)`);
    } else {
      say(`concurrent ${sessions}: writing ${sessions} unsettled sessions in SQL`);
      const seeded = await withSql(db.url, (sql) =>
        seedUnsettled(sql, {
          count: sessions,
          accountIds: seededAccounts,
          serviceId: db.services.bulk!,
          serverId: db.serverId,
          ...BULK_TERMS,
        }),
      );
      seedSeconds = seeded.seconds;
      say(`concurrent ${sessions}: seeded in ${seeded.seconds.toFixed(1)} s; Supervisor.restore()`);
      if (options.profile) await child.request('profile-start', { intervalUs: 1000 });
      const restored = await child.request<{ count: number; seconds: number; live: number }>('restore');
      createSeconds = restored.seconds;
      say(`concurrent ${sessions}: restored ${restored.count} in ${restored.seconds.toFixed(1)} s (${restored.live} live)`);
    }
    let profile: ConcurrentRow['profile'] = null;
    if (options.profile) {
      await child.request('profile-stop', { file: profileFile });
      profile = { ...(await summarizeProfile(profileFile)), of: method === 'Supervisor.open' ? `${sessions} Supervisor.open` : `Supervisor.restore() of ${sessions}` };
    }

    const holdingRightAfter = await child.request<Memory>('memory');
    const live = await child.request<number>('live');
    say(`concurrent ${sessions}: holding ${live}: rss ${mb(holdingRightAfter.rssBytes)} right after; ${idleMs / 1000} s idle, then reading again`);
    const holding = await child.request<Memory>('memory', { idleMs });
    const per = (key: keyof Memory, at = holding) => Math.round((at[key] - baseline[key]) / live);
    say(
      `concurrent ${sessions}: holding ${live}: rss ${mb(holding.rssBytes)} (${per('rssBytes')} B/session), heap ${mb(holding.heapUsedBytes)} (${per('heapUsedBytes')} B/session)`,
    );
    let heap: ConcurrentRow['heap'] = null;
    if (wantHeap) {
      say(`concurrent ${sessions}: heap snapshot`);
      await child.request('heap-snapshot', { file: heapFiles.after });
      heap = diffHeaps(await heapGroups(heapFiles.before), await heapGroups(heapFiles.after), live);
      if (process.env.BENCH_KEEP !== '1') {
        await rm(heapFiles.before, { force: true });
        await rm(heapFiles.after, { force: true });
      }
    }

    // The cutoff slice: limits of 8.00 to 20.00 at 1.00 a second fall due 8 to 20 s after each start.
    const maxCharges = Array.from({ length: 13 }, (_, i) => `${8 + i}.00`);
    say(`concurrent ${sessions}: opening a slice of ${options.slice} sessions cut 8-20 s after their start`);
    await child.request('eld-start');
    const slice = await child.request<OpenReply>('open', {
      count: options.slice,
      concurrency: options.sliceConcurrency,
      serviceId: db.services.slice,
      accountIds,
      maxCharges,
      watch: true,
      label: 'slice',
    });
    say(
      `concurrent ${sessions}: slice opened ${slice.ids.length} in ${slice.seconds.toFixed(1)} s (p50 ${round(slice.latency.p50, 1)} ms, p99 ${round(slice.latency.p99, 1)} ms); waiting for their cutoffs`,
    );
    const waitUntil = performance.now() + 20_000 + 30_000;
    let cuts = await child.request<{ watched: number; left: number }>('cuts');
    while (cuts.left < cuts.watched && performance.now() < waitUntil) {
      await sleep(1000);
      cuts = await child.request<{ watched: number; left: number }>('cuts');
      if (Math.round(performance.now() / 1000) % 5 === 0) say(`  slice: ${cuts.left} / ${cuts.watched} cut`);
    }
    await sleep(2000); // let the last captures commit before reading the history
    const eventLoopDelay = await child.request<ConcurrentRow['eventLoopDelay']>('eld-stop');
    const detail = await child.request<{ sessions: { id: string; cutoffAt: number | null; leftAt: number | null; to: string | null }[] }>(
      'cuts',
      { detail: true },
    );
    const inProcess = detail.sessions
      .filter((s) => s.cutoffAt !== null && s.leftAt !== null)
      .map((s) => s.leftAt! - s.cutoffAt!);
    const fromEvents = await withSql(db.url, async (sql) => {
      const found = await sql<{ delay: number }[]>`
        select (extract(epoch from e.at - s.cutoff_at) * 1000)::float8 as delay
        from sessions s join session_events e on e.session_id = s.id
        where s.id = any(${slice.ids}::uuid[]) and e.from_state like 'active%' and e.to_state not like 'active%'`;
      return found.map((r) => r.delay);
    });
    const delays = inProcess.length > 0 ? inProcess : fromEvents;
    const d = distribution(delays);
    const liveAfterSlice = await child.request<number>('live');
    say(
      `concurrent ${sessions}: cut − cutoff over ${d.count} sessions: p50 ${round(d.p50, 1)} ms, p99 ${round(d.p99, 1)} ms, max ${round(d.max, 1)} ms` +
        (eventLoopDelay ? `; event-loop delay p99 ${round(eventLoopDelay.p99Ms, 1)} ms` : ''),
    );
    const sliceRate = slice.ids.length / slice.seconds;
    return {
      sessions,
      method,
      rssBytes: per('rssBytes'),
      heapBytes: per('heapUsedBytes'),
      externalBytes: per('externalBytes'),
      rssBytesRightAfter: per('rssBytes', holdingRightAfter),
      idleMs,
      baseline,
      holding,
      holdingRightAfter,
      createSeconds: round(createSeconds, 2),
      createPerSecond: round(live > 0 ? sessions / createSeconds : 0, 0),
      seedSeconds: seedSeconds === null ? null : round(seedSeconds, 2),
      createFailures,
      sliceOpens: {
        count: slice.ids.length,
        seconds: round(slice.seconds, 2),
        perSecond: round(sliceRate, 0),
        p50Ms: round(slice.latency.p50, 2),
        p99Ms: round(slice.latency.p99, 2),
        failures: slice.failures,
      },
      projectedOpenSeconds: method === 'Supervisor.open' ? null : round(sessions / sliceRate, 0),
      cutoffCount: d.count,
      cutoffMissing: slice.ids.length - d.count,
      cutoffP50Ms: round(d.p50, 2),
      cutoffP99Ms: round(d.p99, 2),
      cutoffMaxMs: round(d.max, 2),
      cutoffMinMs: round(d.min, 2),
      cutoffSource: inProcess.length > 0 ? 'in-process subscription' : 'session_events.at',
      cutoffFromEvents: fromEvents.length > 0 ? distribution(fromEvents) : null,
      eventLoopDelay,
      liveAfterSlice,
      profile,
      heap,
    };
  } finally {
    await child.request('close', undefined, 120_000).catch(() => child.kill());
    await child.exited;
    await sandbox.request('close').catch(() => sandbox.kill());
    await sandbox.exited;
  }
}
