import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from './child.js';
import { PEER_BEGIN, PEER_END } from './report.js';
import { round, say } from './util.js';

/**
 * `npm run bench:peer` (issue 16): FreeRADIUS with its SQL counter on PostgreSQL (the kit in
 * ../shared/peers/freeradius), then tollgate's open phases, one right after the other on this
 * machine, and the side-by-side table written into docs/benchmarks.md (between markers that
 * `npm run bench` keeps) and docs/benchmarks.json (`peer`). Only ratios from one run count.
 *
 * Environment: PEER_KIT (default ../shared/peers/freeradius), PEER_PARALLEL (default "16 64"),
 * PEER_REUSE=1 (the peer's last results, minutes old at most, instead of a new run.sh),
 * and the BENCH_* settings of `npm run bench` for tollgate's side.
 */
const kit = path.resolve(REPO_ROOT, process.env.PEER_KIT ?? '../shared/peers/freeradius');
const stateDir = process.env.PEER_STATE_DIR ?? '/var/tmp/peer-freeradius';
const parallel = process.env.PEER_PARALLEL ?? '16 64';
if (!existsSync(path.join(kit, 'run.sh'))) throw new Error(`no peer kit at ${kit} (set PEER_KIT)`);

const run = (command: string, args: string[], env: Record<string, string> = {}) => {
  const result = spawnSync(command, args, { cwd: kit, stdio: 'inherit', env: { ...process.env, ...env } });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.status}`);
};

if (process.env.PEER_REUSE === '1') {
  say('peer: PEER_REUSE=1, the last run.sh results are used');
} else {
  say(`peer: FreeRADIUS kit at ${kit}; setup (idempotent: Debian packages, 10,000 users)`);
  run('bash', ['setup.sh']);
  say(`peer: run.sh at P = ${parallel} (about 1.5 minutes per P)`);
  run('bash', ['run.sh'], { PEER_PARALLEL: parallel });
}
const resultsRoot = path.join(stateDir, 'results');
const latest = (await readdir(resultsRoot)).sort().at(-1);
if (!latest) throw new Error(`run.sh left no results under ${resultsRoot}`);
const peerDir = path.join(resultsRoot, latest);
const peerTable = execFileSync('node', [path.join(kit, 'report.mjs')], { env: { ...process.env, KIT_RESULTS: peerDir }, encoding: 'utf8' });

interface Radclient { mode: string; p: number; rate: number }
interface Radbench { mode: string; concurrency: number; cycles_per_s: number; latency_ms?: { cycle?: { p50: number; p99: number } } }
const radclient: Radclient[] = (await readFile(path.join(peerDir, 'radclient.tsv'), 'utf8'))
  .split('\n')
  .filter(Boolean)
  .map((line) => {
    const [mode, p, , , , rate] = line.split('\t');
    return { mode: mode!, p: Number(p), rate: Number(rate) };
  });
const radbench: Radbench[] = (await readFile(path.join(peerDir, 'radbench.jsonl'), 'utf8'))
  .split('\n')
  .filter(Boolean)
  .map((line) => JSON.parse(line) as Radbench);

say('tollgate: the sandbox, ceiling and opens phases of `npm run bench`, right after');
const docs = await mkdtemp(path.join(os.tmpdir(), 'tollgate-peer-'));
const bench = spawnSync('npx', ['tsx', 'test/bench/run.ts'], {
  cwd: REPO_ROOT,
  stdio: 'inherit',
  env: { ...process.env, BENCH_PHASES: process.env.BENCH_PHASES ?? 'sandbox,ceiling,opens', BENCH_DOCS: docs },
});
if (bench.status !== 0) say(`tollgate's bench exited ${bench.status}; its figures are used as far as they go`);
interface TollgateJson {
  machine: { cpuModel: string; cores: number; loadAverageAtStart: number[] };
  run: { startedAt: string };
  opens: { concurrency: number; perSecond: number; p50Ms: number; p99Ms: number }[];
  cycles: { concurrency: number; perSecond: number; p50Ms: number; p99Ms: number }[];
}
const tollgate = JSON.parse(await readFile(path.join(docs, 'benchmarks.json'), 'utf8')) as TollgateJson;
const tollgateMd = await readFile(path.join(docs, 'benchmarks.md'), 'utf8');
await rm(docs, { recursive: true, force: true });

const ps = parallel.split(/\s+/).map(Number).filter((p) => p > 0);
const rows = ps.map((p) => {
  const open = tollgate.opens.find((o) => o.concurrency === p);
  const cycle = tollgate.cycles.find((c) => c.concurrency === p);
  const peerOpen = radclient.find((r) => r.mode === 'open' && r.p === p);
  const peerOpenProbe = radbench.find((r) => r.mode === 'open' && r.concurrency === p);
  const peerStop = radclient.find((r) => r.mode === 'openstop' && r.p === p);
  const peerStopProbe = radbench.find((r) => r.mode === 'openstop' && r.concurrency === p);
  // The peer's better figure of its two load generators, so the comparison is never flattering to tollgate.
  const best = (a?: number, b?: number) => Math.max(a ?? 0, b ?? 0) || null;
  return {
    concurrency: p,
    tollgate: { opensPerSecond: open?.perSecond ?? null, openP50Ms: open?.p50Ms ?? null, openP99Ms: open?.p99Ms ?? null, cyclesPerSecond: cycle?.perSecond ?? null, cycleP99Ms: cycle?.p99Ms ?? null },
    freeradius: {
      openCyclesPerSecond: best(peerOpen?.rate, peerOpenProbe?.cycles_per_s),
      openP50Ms: peerOpenProbe?.latency_ms?.cycle?.p50 ?? null,
      openP99Ms: peerOpenProbe?.latency_ms?.cycle?.p99 ?? null,
      openStopCyclesPerSecond: best(peerStop?.rate, peerStopProbe?.cycles_per_s),
      openStopP99Ms: peerStopProbe?.latency_ms?.cycle?.p99 ?? null,
    },
  };
});

const at64 = rows.find((r) => r.concurrency === 64);
const verdict = (ok: boolean | null) => (ok === null ? 'not measured' : ok ? 'met' : '**missed**');
const ge = (a: number | null, b: number | null) => (a === null || b === null ? null : a >= b);
const le = (a: number | null, b: number | null) => (a === null || b === null ? null : a <= b);
const targets = at64
  ? [
      ['opens/s at 64 ≥ FreeRADIUS open cycles/s', `${at64.tollgate.opensPerSecond} vs ${at64.freeradius.openCyclesPerSecond}`, verdict(ge(at64.tollgate.opensPerSecond, at64.freeradius.openCyclesPerSecond))],
      ['open p99 at 64 ≤ FreeRADIUS open-cycle p99', `${at64.tollgate.openP99Ms} ms vs ${at64.freeradius.openP99Ms} ms`, verdict(le(at64.tollgate.openP99Ms, at64.freeradius.openP99Ms))],
      ['open+logoff cycles/s at 64 ≥ FreeRADIUS open+stop cycles/s', `${at64.tollgate.cyclesPerSecond} vs ${at64.freeradius.openStopCyclesPerSecond}`, verdict(ge(at64.tollgate.cyclesPerSecond, at64.freeradius.openStopCyclesPerSecond))],
    ]
  : [];
const cell = (v: number | null) => (v === null ? '–' : String(round(v, 1)));
const section = [
  PEER_BEGIN,
  '## Side by side: tollgate and FreeRADIUS (`npm run bench:peer`)',
  '',
  `One run on ${tollgate.machine.cpuModel} × ${tollgate.machine.cores}: the FreeRADIUS kit (${path.relative(REPO_ROOT, kit)}, results ${latest}), then tollgate's open phases minutes later (started ${tollgate.run.startedAt}, load average then ${tollgate.machine.loadAverageAtStart.join(', ')}). ` +
    "A FreeRADIUS open cycle is an Access-Request (the SQL counter's check) and an Accounting-Start (one durable insert), with no card hold; a tollgate open is one HTTP call that checks the limits, holds the card at the sandbox and records the session. The peer's figure is the better of its two load generators.",
  '',
  '| P | tollgate opens/s | open p50 / p99 ms | FreeRADIUS open cycles/s | open cycle p50 / p99 ms | tollgate open+logoff/s | p99 ms | FreeRADIUS open+stop/s | p99 ms |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map((r) =>
    `| ${r.concurrency} | ${cell(r.tollgate.opensPerSecond)} | ${cell(r.tollgate.openP50Ms)} / ${cell(r.tollgate.openP99Ms)} | ${cell(r.freeradius.openCyclesPerSecond)} | ${cell(r.freeradius.openP50Ms)} / ${cell(r.freeradius.openP99Ms)} | ${cell(r.tollgate.cyclesPerSecond)} | ${cell(r.tollgate.cycleP99Ms)} | ${cell(r.freeradius.openStopCyclesPerSecond)} | ${cell(r.freeradius.openStopP99Ms)} |`,
  ),
  '',
  '| target (issue 16) | measured | |',
  '| --- | --- | --- |',
  ...targets.map((t) => `| ${t.join(' | ')} |`),
  '',
  "The peer kit's own tables for this run:",
  '',
  peerTable.trim(),
  '',
  PEER_END,
].join('\n');

const mdFile = path.join(REPO_ROOT, 'docs', 'benchmarks.md');
const current = existsSync(mdFile) ? await readFile(mdFile, 'utf8') : tollgateMd;
const begin = current.indexOf(PEER_BEGIN);
const end = current.indexOf(PEER_END);
const next = begin >= 0 && end > begin ? `${current.slice(0, begin)}${section}${current.slice(end + PEER_END.length)}` : `${current.trimEnd()}\n\n${section}\n`;
await writeFile(mdFile, next);
const jsonFile = path.join(REPO_ROOT, 'docs', 'benchmarks.json');
const json = existsSync(jsonFile) ? (JSON.parse(await readFile(jsonFile, 'utf8')) as Record<string, unknown>) : {};
await writeFile(jsonFile, `${JSON.stringify({ ...json, peer: { results: latest, rows } }, null, 2)}\n`);
say(`wrote the side-by-side table into docs/benchmarks.md and docs/benchmarks.json`);
for (const [name, measured, met] of targets) say(`target ${name}: ${measured} ${met}`);
