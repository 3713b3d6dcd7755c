import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { measureCeiling, type CeilingRow } from './ceiling.js';
import { buildForBench } from './build.js';
import { type BenchChild, REPO_ROOT, useBuild } from './child.js';
import { measureConcurrent } from './concurrent.js';
import { measureFarCard } from './far-card.js';
import { startPair } from './pair.js';
import { measureEdge } from './edge.js';
import { machineInfo } from './machine-info.js';
import { measureNodes } from './nodes.js';
import { measureOpens, type OpensPhase } from './opens.js';
import { prepareTollgateDatabase, startCluster, type BenchCluster } from './pg.js';
import { postgresPids } from './procstat.js';
import { type BenchResults, spliceEdgeReport, targetsOf, writeReport } from './report.js';
import { measureReports } from './reports.js';
import { measureRestore } from './restore.js';
import { measureSandboxLatency } from './sandbox-latency.js';
import type { LoadResult } from './load.js';
import { say } from './util.js';

/**
 * `npm run bench`: every phase against one fresh embedded PostgreSQL (durable settings), loopback
 * only, each load bounded in requests and seconds, the whole run in a time budget (phases that
 * would overrun it are skipped and say so). Writes docs/benchmarks.md and docs/benchmarks.json.
 *
 * Environment: BENCH_SECONDS (per load run, default 8), BENCH_SESSIONS (phase 3/4 sizes, default
 * 10000,100000), BENCH_OPEN_LIMIT (largest size created through Supervisor.open, default 10000),
 * BENCH_SLICE (cutoff-precision slice, default 2000), BENCH_PHASES (default all:
 * sandbox,ceiling,opens,far,concurrent,restore,reports,edge,nodes; `BENCH_PHASES=nodes npm run bench` runs
 * phase 9, one node against three on one database, alone), BENCH_FAR_LATENCY_MS (the far card network's
 * delay, default 150), BENCH_FAR_CONCURRENCIES (default 10,100,1000), BENCH_EDGE_STREAMS (phase 8's open streams, default 1000),
 *   BENCH_REPORT_SESSIONS (phase 6, default 1000000), BENCH_NODES_LEASE_MS (phase 9's CLUSTER_LEASE_MS, default 10000),
 * BENCH_BUDGET_SECONDS (default 900: the edge's phase 8 made the full run longer than 560),
 * BENCH_HEAP_SNAPSHOT_UP_TO (heap snapshots for sizes up to this, default 10000),
 * BENCH_KEEP=1 (keep the temporary folder with the profiles), BENCH_DOCS (output folder, default docs/),
 * BENCH_TSX=1 (run the children from the TypeScript sources through tsx instead of a tsc build),
 * BENCH_PROFILE_CREATE=1 (profile phase 3's creation too; it then counts in the memory figures),
 * BENCH_CONCURRENCIES (phase 1's closed-loop concurrencies, default 1,16,64; the profile is taken at the largest),
 * BENCH_TOLLGATE_ENV (K=V,K=V: settings passed to tollgate's process in the phases that start it, to compare),
 * BENCH_TOLLGATE_ARGV (Node flags for that process, space-separated: `--trace-gc`, `--max-semi-space-size=64`),
 * BENCH_EDGE_PROFILE (phase 8 at concurrency 16: `1` a CPU profile summed up in the log, `alloc` every
 *   allocation sampled, collected or not, into edge.heapprofile; with BENCH_KEEP=1 to keep the files),
 * BENCH_ACCOUNTS (customers signed up for phase 1, default 256), BENCH_MAX_REQUESTS (per load run, default 200000).
 */
const env = process.env;
const int = (name: string, fallback: number) => (env[name] ? Number(env[name]) : fallback);
const settings = {
  seconds: int('BENCH_SECONDS', 8),
  concurrencies: (env.BENCH_CONCURRENCIES ?? '1,16,64').split(',').map(Number).filter((n) => n > 0),
  sessions: (env.BENCH_SESSIONS ?? '10000,100000').split(',').map(Number).filter((n) => n > 0),
  openLimit: int('BENCH_OPEN_LIMIT', 10_000),
  slice: int('BENCH_SLICE', 2000),
  phases: (env.BENCH_PHASES ?? 'sandbox,ceiling,opens,far,concurrent,restore,reports,edge,nodes').split(','),
  edgeStreams: int('BENCH_EDGE_STREAMS', 1000),
  farLatencyMs: int('BENCH_FAR_LATENCY_MS', 150),
  farConcurrencies: (env.BENCH_FAR_CONCURRENCIES ?? '10,100,1000').split(',').map(Number).filter((n) => n > 0),
  reportSessions: int('BENCH_REPORT_SESSIONS', 1_000_000),
  nodesLeaseMs: int('BENCH_NODES_LEASE_MS', 10_000),
  budgetSeconds: int('BENCH_BUDGET_SECONDS', 900),
  heapSnapshotUpTo: int('BENCH_HEAP_SNAPSHOT_UP_TO', 10_000),
  accounts: int('BENCH_ACCOUNTS', 256),
  maxRequestsPerRun: int('BENCH_MAX_REQUESTS', 200_000),
};
const docsDir = path.resolve(REPO_ROOT, env.BENCH_DOCS ?? 'docs');
const wants = (phase: string) => settings.phases.includes(phase);

const startedAt = new Date();
const started = performance.now();
const deadline = started + settings.budgetSeconds * 1000;
const root = await mkdtemp(path.join(os.tmpdir(), 'tollgate-bench-'));
const children: BenchChild[] = [];
let cluster: BenchCluster | null = null;

// A hard stop a minute past the budget: nothing may keep the run going for ever.
const watchdog = setTimeout(() => {
  say(`the run passed its budget by a minute: stopping`);
  void cleanup().finally(() => process.exit(2));
}, (settings.budgetSeconds + 60) * 1000);
watchdog.unref();

async function cleanup(): Promise<void> {
  for (const child of children) child.kill();
  await cluster?.stop().catch(() => {});
  if (env.BENCH_KEEP === '1') say(`kept ${root}`);
  else await rm(root, { recursive: true, force: true }).catch(() => {});
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    void cleanup().finally(() => process.exit(130));
  });
}

const errors: string[] = [];
const attempt = async <T>(name: string, run: () => Promise<T>): Promise<T | null> => {
  try {
    return await run();
  } catch (error) {
    const text = error instanceof Error ? (error.stack ?? error.message).split('\n').slice(0, 4).join(' ') : String(error);
    say(`${name} failed: ${text}`);
    errors.push(`${name}: ${text}`);
    return null;
  }
};

say(`tollgate benchmark: ${JSON.stringify(settings)}`);
let runtime = 'plain node on JavaScript compiled by tsc in the temporary folder (as `npm run build` + `npm start`)';
if (env.BENCH_TSX === '1') {
  runtime = 'tsx on the TypeScript sources (BENCH_TSX=1)';
} else {
  say('compiling src/, machines/ and test/bench/ with tsc into the temporary folder');
  const build = await attempt('build', () => buildForBench(root));
  if (build) {
    useBuild(build.dir);
    say(`compiled in ${build.seconds.toFixed(1)} s${build.diagnostics ? ` (${build.diagnostics} type errors in the tree, emitted anyway)` : ''}`);
  } else {
    runtime = 'tsx on the TypeScript sources (the tsc build failed)';
  }
}
say(`temporary folder ${root}; starting embedded PostgreSQL (durable: fsync on)`);
cluster = await startCluster(root);
const machine = await machineInfo(cluster);
say(`${machine.cpuModel} × ${machine.cores}, ${Math.round(machine.memoryBytes / 1024 ** 3)} GiB, Node ${machine.node}, ${machine.postgres.split(' on ')[0]}; fdatasync p50 ${machine.fdatasync.p50Us} µs`);
const pgDataDir = path.join(root, 'pgdata');

let sandboxRows: LoadResult[] = [];
let ceilingRows: CeilingRow[] = [];
let opensPhase: OpensPhase | null = null;

if (wants('sandbox') || wants('opens')) {
  const db = await prepareTollgateDatabase(cluster, 'bench_http', [{ key: 'opens', pricePerMinuteMicros: 100_000n }]);
  say('starting the card-network sandbox and tollgate (listening on loopback)');
  const { sandbox, server } = await startPair(children, { databaseUrl: db.url, dataDir: path.join(root, 'data-http') });
  say(`tollgate at ${server.ready.url}, sandbox at ${sandbox.ready.url}`);

  if (wants('sandbox')) {
    say('phase 5: the card-network sandbox on its own');
    sandboxRows =
      (await attempt('sandbox latency', () =>
        measureSandboxLatency(sandbox.ready.url, {
          concurrencies: settings.concurrencies,
          seconds: Math.max(2, Math.round(settings.seconds / 2)),
          maxRequests: settings.maxRequestsPerRun,
        }),
      )) ?? [];
  }
  if (wants('ceiling')) {
    say('phase 2: the durable-commit ceiling');
    ceilingRows = (await attempt('ceiling', () => measureCeiling(cluster!, { concurrencies: settings.concurrencies, seconds: Math.max(2, Math.round(settings.seconds / 2)) }))) ?? [];
  }
  if (wants('opens')) {
    say('phase 1: session opens over HTTP');
    opensPhase = await attempt('opens', () =>
      measureOpens({
        server,
        sandbox,
        serviceId: db.services.opens!,
        concurrencies: settings.concurrencies,
        seconds: settings.seconds,
        maxRequests: settings.maxRequestsPerRun,
        profileSeconds: 5,
        profileDir: root,
        accounts: settings.accounts,
        databaseUrl: db.url,
        cpuGroups: [
          { name: 'tollgate', pids: () => [server.pid] },
          { name: 'sandbox', pids: () => [sandbox.pid] },
          { name: 'postgres', pids: () => postgresPids(pgDataDir) },
        ],
      }),
    );
  }
  await server.request('close', undefined, 60_000).catch(() => server.kill());
  await sandbox.request('close', undefined, 60_000).catch(() => sandbox.kill());
  await Promise.all([server.exited, sandbox.exited]);
  children.length = 0;
} else if (wants('ceiling')) {
  say('phase 2: the durable-commit ceiling');
  ceilingRows = (await attempt('ceiling', () => measureCeiling(cluster!, { concurrencies: settings.concurrencies, seconds: Math.max(2, Math.round(settings.seconds / 2)) }))) ?? [];
}

let far: BenchResults['far'] = null;
if (wants('far')) {
  say(`phase 7: opens with the card network ${settings.farLatencyMs} ms away`);
  far = await attempt('far card network', () =>
    measureFarCard(cluster!, {
      latencyMs: settings.farLatencyMs,
      concurrencies: settings.farConcurrencies,
      seconds: settings.seconds,
      maxRequests: settings.maxRequestsPerRun,
      workDir: root,
      accounts: settings.accounts,
    }),
  );
}

let concurrent: BenchResults['concurrent'] = null;
let databases: Record<number, string> = {};
if (wants('concurrent')) {
  say('phase 3: concurrent active sessions in one process');
  const result = await attempt('concurrent sessions', () =>
    measureConcurrent(cluster!, {
      sizes: settings.sessions,
      openLimit: settings.openLimit,
      slice: settings.slice,
      sliceConcurrency: 64,
      openConcurrency: 64,
      heapSnapshotUpTo: settings.heapSnapshotUpTo,
      // A profiler attached while the sessions are made would be counted in their memory.
      profile: env.BENCH_PROFILE_CREATE === '1',
      workDir: root,
      // Keep time for phase 4 after it.
      deadline: deadline - 40_000,
    }),
  );
  if (result) {
    concurrent = { rows: result.rows, skipped: result.skipped };
    databases = result.databases;
  }
}

let restore: BenchResults['restore'] = null;
if (wants('restore')) {
  say('phase 4: restore after a restart');
  restore = await attempt('restore', () => measureRestore(cluster!, { sizes: settings.sessions, databases, workDir: root, deadline }));
}

let reports: BenchResults['reports'] = null;
if (wants('reports')) {
  say(`phase 6: usage reports over ${settings.reportSessions} settled sessions`);
  reports = await attempt('reports', () => measureReports(cluster!, { sessions: settings.reportSessions }));
}

let edge: BenchResults['edge'] = null;
if (wants('edge')) {
  say('phase 8: the edge: proxied against direct and haproxy, and the cut of open streams');
  edge = await attempt('edge', () =>
    measureEdge(cluster!, { concurrencies: [16, 64], seconds: settings.seconds, maxRequests: settings.maxRequestsPerRun, streams: settings.edgeStreams, root }),
  );
}

let nodes: BenchResults['nodes'] = null;
let nodesSkipped: string | null = null;
// Phase 9 takes about a minute plus three of its load runs; left out rather than overrun the budget.
const nodesNeedsMs = (90 + 4 * settings.seconds) * 1000;
if (wants('nodes') && deadline - performance.now() < nodesNeedsMs) {
  nodesSkipped = `Phase 9 was skipped: ${Math.round((deadline - performance.now()) / 1000)} s of the run's budget were left and it needs about ${nodesNeedsMs / 1000} s (\`BENCH_PHASES=nodes npm run bench\` runs it alone).`;
  say(nodesSkipped);
} else if (wants('nodes')) {
  say('phase 9: one node against three nodes on one database');
  nodes = await attempt('nodes', () =>
    measureNodes(cluster!, { seconds: settings.seconds, maxRequests: settings.maxRequestsPerRun, accounts: settings.accounts, leaseMs: settings.nodesLeaseMs, workDir: root, children, profileSeconds: 5 }),
  );
  children.length = 0;
}

await cluster.stop();
cluster = null;

const results: BenchResults = {
  machine,
  run: {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    seconds: Math.round((performance.now() - started) / 100) / 10,
    budgetSeconds: settings.budgetSeconds,
    settings,
    notes: [
      `tollgate runs as ${runtime}, in child processes of the benchmark: one listening for phase 1, one per size for phase 3, a fresh one per size for phase 4. The card-network sandbox runs in a process of its own on the same database (as \`npm run card-network\` does), so tollgate's CPU and memory are its own.`,
      'Load comes from autocannon in the benchmark process, on loopback. The machine has 2 cores shared by the load generator, tollgate, the sandbox and PostgreSQL; the "cores used" columns say who used them, and "everything else on the machine" is what other work on the machine (other test runs) took during the same window: figures from a busy machine are lower than a quiet one would give.',
      `Load average when the run began: ${machine.loadAverageAtStart.join(', ')}.`,
      ...(nodesSkipped ? [nodesSkipped] : []),
    ],
  },
  sandbox: sandboxRows,
  ceiling: ceilingRows,
  opensPhase,
  far,
  concurrent,
  restore,
  reports,
  edge,
  nodes,
  errors,
};
// BENCH_SPLICE_EDGE=1 (npm run bench:edge): phase 8's section alone goes into the existing docs.
const written = env.BENCH_SPLICE_EDGE === '1' ? await spliceEdgeReport(results, docsDir) : await writeReport(results, docsDir);
for (const t of targetsOf(results)) say(`target ${t.name}: ${t.measured} (wanted ${t.target}) ${t.met === null ? 'not measured' : t.met ? 'met' : 'MISSED'}`);
say(`wrote ${path.relative(REPO_ROOT, written.md)} and ${path.relative(REPO_ROOT, written.json)} in ${results.run.seconds} s`);
await cleanup();
clearTimeout(watchdog);
process.exit(errors.length > 0 ? 1 : 0);
