import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { WebSocket } from 'ws';
import { freePort } from '../../src/db/free-port.js';
import { bootstrapAdminAt } from '../helpers/operators.js';
import { BENCH_ADMIN_TOKEN, startPair } from './pair.js';
import { signUpBody } from '../helpers/customers.js';
import { type BenchChild, spawnChild } from './child.js';
import { summarizeProfile } from './cpu-profile.js';
import { load, type LoadResult } from './load.js';
import { type BenchCluster, prepareTollgateDatabase } from './pg.js';
import { distribution, round, say } from './util.js';

/** One concurrency: the same small JSON request straight to the upstream, through haproxy, through a bare Node proxy, through tollgate's edge. */
export interface EdgeLoadRow {
  concurrency: number;
  direct: LoadResult;
  haproxy: LoadResult | null;
  /** The least a Node proxy does (test/bench/bare-proxy-child.ts): what Node itself costs. */
  bare: LoadResult;
  edge: LoadResult;
}

export interface CutDistribution {
  kind: 'sse' | 'websocket' | 'all';
  count: number;
  /** Streams that did end (the rest were still open at the deadline). */
  cut: number;
  /** WebSockets closed with 4402. */
  closed4402?: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  minMs: number;
}

export interface EdgePhase {
  haproxyVersion: string | null;
  /** How late tollgate's own deadline ran each session's cut (its event loop's share of the delay). */
  edgeLateness: { count: number; p50Ms: number; p99Ms: number; maxMs: number } | null;
  loads: EdgeLoadRow[];
  cuts: CutDistribution[];
  sessions: number;
}

const ADMIN_TOKEN = BENCH_ADMIN_TOKEN;

async function api(base: string, method: string, url: string, token: string | null, body?: unknown) {
  const response = await fetch(`${base}${url}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (response.status >= 300) throw new Error(`${method} ${url}: ${response.status} ${text}`);
  return JSON.parse(text);
}

/** haproxy (the Debian package) forwarding to the same upstream, in HTTP mode with keep-alive both ways. */
async function startHaproxy(root: string, upstreamUrl: string): Promise<{ url: string; process: ChildProcess; version: string } | null> {
  const version = await new Promise<string | null>((resolve) => {
    const probe = spawn('haproxy', ['-v']);
    let out = '';
    probe.stdout.on('data', (d) => (out += d));
    probe.on('error', () => resolve(null));
    probe.on('exit', (code) => resolve(code === 0 ? out.split('\n')[0]!.trim() : null));
  });
  if (!version) return null;
  const port = await freePort();
  const upstream = new URL(upstreamUrl);
  const config = path.join(root, 'haproxy.cfg');
  await writeFile(
    config,
    [
      'global',
      '  maxconn 4096',
      'defaults',
      '  mode http',
      '  option http-keep-alive',
      '  timeout connect 5s',
      '  timeout client 60s',
      '  timeout server 60s',
      'frontend bench',
      `  bind 127.0.0.1:${port}`,
      '  default_backend upstream',
      'backend upstream',
      `  server u1 ${upstream.hostname}:${upstream.port} maxconn 512`,
      '',
    ].join('\n'),
  );
  const child = spawn('haproxy', ['-f', config, '-db'], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 50; i++) {
    const up = await fetch(`http://127.0.0.1:${port}/json`).then((r) => r.ok, () => false);
    if (up) return { url: `http://127.0.0.1:${port}`, process: child, version };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill('SIGKILL');
  throw new Error('haproxy did not start');
}

/** Opens a server-sent-events stream through the edge; resolves with when it ended. */
function sseUntilCut(url: string, token: string, opened: () => void): Promise<number> {
  return new Promise((resolve) => {
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      resolve(Date.now());
    };
    const request = http.get(url, { headers: { authorization: `Bearer ${token}` }, agent: false }, (response) => {
      opened();
      response.on('data', () => {});
      response.on('end', end);
      response.on('error', end);
      response.on('aborted', end);
      response.on('close', end);
    });
    request.on('error', end);
  });
}

function webSocketUntilCut(url: string, token: string, opened: () => void): Promise<{ at: number; code: number }> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url.replace(/^http/, 'ws'), { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
    socket.on('open', opened);
    socket.on('close', (code) => resolve({ at: Date.now(), code }));
    socket.on('error', () => {});
  });
}

function cutDistribution(kind: CutDistribution['kind'], delays: number[], count: number, closed4402?: number): CutDistribution {
  const d = distribution(delays);
  return {
    kind,
    count,
    cut: delays.length,
    ...(closed4402 === undefined ? {} : { closed4402 }),
    p50Ms: round(d.p50, 1),
    p90Ms: round(d.p90, 1),
    p99Ms: round(d.p99, 1),
    maxMs: round(d.max, 1),
    minMs: round(Math.min(...delays), 1),
  };
}

interface HeapProfileNode {
  selfSize?: number;
  children?: HeapProfileNode[];
  head?: HeapProfileNode;
}

/** Bytes a sampling heap profile counted under its root. */
function allocatedBytes(node: HeapProfileNode): number {
  if (node.head) return allocatedBytes(node.head);
  return (node.selfSize ?? 0) + (node.children ?? []).reduce((sum, child) => sum + allocatedBytes(child), 0);
}

/**
 * The edge phase: requests/s and latency of small JSON requests straight to an upstream, through
 * haproxy, through a bare Node proxy (what Node itself costs), and through tollgate's edge (same
 * machine, same run, same upstream process); then how
 * late the edge cuts 1,000 open streams (half server-sent events, half WebSockets) after their
 * sessions' cutoffs, spread over a few seconds.
 */
export async function measureEdge(
  cluster: BenchCluster,
  options: { concurrencies: number[]; seconds: number; maxRequests: number; streams: number; root: string },
): Promise<EdgePhase> {
  const children: BenchChild[] = [];
  let haproxy: Awaited<ReturnType<typeof startHaproxy>> = null;
  try {
    const db = await prepareTollgateDatabase(cluster, 'bench_edge', []);
    const upstream = await spawnChild<{ url: string }>('edge-upstream-child.ts', { label: 'upstream', env: {} });
    children.push(upstream);
    const bare = await spawnChild<{ url: string }>('bare-proxy-child.ts', { label: 'bare proxy', env: { BARE_UPSTREAM: upstream.ready.url } });
    children.push(bare);
    const { server } = await startPair(children, { databaseUrl: db.url, dataDir: path.join(options.root, 'data-edge') });
    const base = server.ready.url;
    const admin = await bootstrapAdminAt(base, ADMIN_TOKEN);
    const serverId = (await api(base, 'POST', '/v1/servers', admin, { name: 'edge-bench', maxUsers: 100_000 })).id as string;
    const service = await api(base, 'POST', '/v1/services', admin, { name: 'edge-bench', serverId, pricePerMinute: '0.01', maxUsers: 100_000, upstreamUrl: upstream.ready.url });
    const customer = await api(base, 'POST', '/v1/accounts', null, signUpBody({ outstandingLimit: '100000.00' }));
    const session = await api(base, 'POST', '/v1/sessions', customer.token, { serviceId: service.id, maxMinutes: 120, maxCharge: '10.00' });
    haproxy = await startHaproxy(options.root, upstream.ready.url);
    if (!haproxy) say('  haproxy is not installed (apt-get install -y haproxy): its column stays empty');

    const loads: EdgeLoadRow[] = [];
    for (const concurrency of options.concurrencies) {
      const run = (label: string, url: string, headers: Record<string, string> = {}) =>
        load({ label, url, concurrency, seconds: options.seconds, maxRequests: options.maxRequests, requests: [{ method: 'GET', headers }], quiet: true });
      const direct = await run(`direct c${concurrency}`, `${upstream.ready.url}/json`);
      const viaHaproxy = haproxy ? await run(`haproxy c${concurrency}`, `${haproxy.url}/json`) : null;
      const viaBare = await run(`bare Node proxy c${concurrency}`, `${bare.ready.url}/json`);
      await server.request('usage', { mark: true });
      const edge = await run(`edge c${concurrency}`, `${session.access.url}/json`, { authorization: `Bearer ${session.access.token}` });
      const used = await server.request<{ userMs: number; systemMs: number; wallMs: number }>('usage', { mark: true });
      say(`  tollgate used ${round((used.userMs + used.systemMs) / used.wallMs, 2)} cores: ${round(((used.userMs + used.systemMs) * 1000) / Math.max(1, edge.ok), 1)} µs per request`);
      if (process.env.BENCH_EDGE_PROFILE === 'alloc' && concurrency === options.concurrencies[0]) {
        const file = path.join(options.root, 'edge.heapprofile');
        await server.request('alloc-start');
        const sampled = await run('allocations of the edge', `${session.access.url}/json`, { authorization: `Bearer ${session.access.token}` });
        await server.request('alloc-stop', { file });
        const bytes = allocatedBytes(JSON.parse(await readFile(file, 'utf8')) as HeapProfileNode);
        say(`  allocated ${round(bytes / Math.max(1, sampled.ok) / 1024, 1)} KiB per request (${sampled.ok} requests, sampled): ${file}`);
      }
      if (process.env.BENCH_EDGE_PROFILE === '1' && concurrency === options.concurrencies[0]) {
        const file = path.join(options.root, 'edge.cpuprofile');
        await server.request('profile-start', { intervalUs: 500 });
        await run('profiled edge', `${session.access.url}/json`, { authorization: `Bearer ${session.access.token}` });
        await server.request('profile-stop', { file });
        const summary = await summarizeProfile(file, 30);
        say(summary.selfTop.map((f) => `    ${f.ms} ms ${f.fn} ${f.where || f.area}`).join('\n'));
      }
      say(`  c${concurrency}: direct ${direct.perSecond}/s p50 ${direct.p50Ms} ms; haproxy ${viaHaproxy?.perSecond ?? '–'}/s p50 ${viaHaproxy?.p50Ms ?? '–'} ms; bare Node proxy ${viaBare.perSecond}/s p50 ${viaBare.p50Ms} ms; edge ${edge.perSecond}/s p50 ${edge.p50Ms} ms p99 ${edge.p99Ms} ms`);
      loads.push({ concurrency, direct, haproxy: viaHaproxy, bare: viaBare, edge });
    }

    // Cut delays: sessions whose cutoffs fall over a few seconds, each with its share of streams.
    const perSession = 20;
    const sessions = Math.ceil(options.streams / perSession);
    const opened: { url: string; token: string; cutoffAt: number }[] = [];
    // Long enough for every stream to be open (and the machine quiet again) before the first cutoff.
    const leadSeconds = 20 + Math.ceil(options.streams / 100);
    for (let i = 0; i < sessions; i++) {
      const minutes = (leadSeconds + (i * 4) / sessions) / 60;
      const s = await api(base, 'POST', '/v1/sessions', customer.token, { serviceId: service.id, maxMinutes: minutes });
      opened.push({ url: s.access.url, token: s.access.token, cutoffAt: Date.parse(s.cutoffAt) });
    }
    let open = 0;
    // A stream counts only if it was open before its session's cutoff (one opened late is refused, not cut).
    const sse: Promise<{ delay: number; openedInTime: boolean }>[] = [];
    const sockets: Promise<{ delay: number; code: number; openedInTime: boolean }>[] = [];
    for (const [i, s] of opened.entries()) {
      for (let k = 0; k < perSession && i * perSession + k < options.streams; k++) {
        let openedAt = Infinity;
        const onOpen = () => {
          open++;
          openedAt = Date.now();
        };
        if (k % 2 === 0) sse.push(sseUntilCut(`${s.url}/events`, s.token, onOpen).then((at) => ({ delay: at - s.cutoffAt, openedInTime: openedAt < s.cutoffAt })));
        else sockets.push(webSocketUntilCut(`${s.url}/ws`, s.token, onOpen).then(({ at, code }) => ({ delay: at - s.cutoffAt, code, openedInTime: openedAt < s.cutoffAt })));
      }
    }
    const firstCutoff = opened[0]!.cutoffAt;
    while (open < options.streams && Date.now() < firstCutoff - 500) await new Promise((resolve) => setTimeout(resolve, 100));
    say(`  ${open} of ${options.streams} streams open ${round((firstCutoff - Date.now()) / 1000, 1)} s before the first cutoff`);
    const sseAll = await Promise.all(sse);
    const wsAll = await Promise.all(sockets);
    const late = sseAll.filter((r) => !r.openedInTime).length + wsAll.filter((r) => !r.openedInTime).length;
    if (late > 0) say(`  ${late} streams opened only after their cutoff: left out`);
    const sseDelays = sseAll.filter((r) => r.openedInTime).map((r) => r.delay);
    const wsResults = wsAll.filter((r) => r.openedInTime);
    const wsDelays = wsResults.map((r) => r.delay);
    const cuts = [
      cutDistribution('sse', sseDelays, sse.length),
      cutDistribution('websocket', wsDelays, sockets.length, wsResults.filter((r) => r.code === 4402).length),
      cutDistribution('all', [...sseDelays, ...wsDelays], sse.length + sockets.length),
    ];
    const lateness = await server.request<number[]>('edge-cut-lateness').catch(() => null);
    const lateDistribution = lateness && lateness.length > 0 ? distribution(lateness) : null;
    const edgeLateness = lateDistribution && lateness ? { count: lateness.length, p50Ms: round(lateDistribution.p50, 1), p99Ms: round(lateDistribution.p99, 1), maxMs: round(lateDistribution.max, 1) } : null;
    if (edgeLateness) say(`  the edge's deadline ran its ${edgeLateness.count} cuts p50 ${edgeLateness.p50Ms} ms, p99 ${edgeLateness.p99Ms} ms late`);
    for (const c of cuts) say(`  cut delay (${c.kind}, n=${c.cut}): p50 ${c.p50Ms} ms, p99 ${c.p99Ms} ms, max ${c.maxMs} ms`);
    return { haproxyVersion: haproxy?.version ?? null, edgeLateness, loads, cuts, sessions };
  } finally {
    if (haproxy) {
      haproxy.process.kill('SIGTERM');
      await once(haproxy.process, 'exit').catch(() => {});
    }
    for (const child of children.reverse()) {
      await child.request('close', undefined, 60_000).catch(() => child.kill());
      await child.exited;
    }
  }
}
