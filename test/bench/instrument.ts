import dc from 'node:diagnostics_channel';
import { writeFile } from 'node:fs/promises';
import { findSourceMap } from 'node:module';
import { Session } from 'node:inspector/promises';
import { monitorEventLoopDelay, PerformanceObserver, type IntervalHistogram } from 'node:perf_hooks';
import v8 from 'node:v8';
import type { Handler } from './child.js';
import { distribution, type Distribution } from './util.js';

/**
 * What every benchmark child can be asked about itself: CPU and memory use, a CPU profile of a
 * window, event-loop delay, and the durations of the HTTP requests it served and sent (read
 * from Node's diagnostics channels, so nothing in src/ is touched).
 */
const MAX_SAMPLES = 500_000;

const routeOf = (method: string, url: string) =>
  `${method} ${url.split('?')[0]!.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, ':id').replace(/\/hold_[^/]+/g, '/:hold')}`;

class Timings {
  private readonly samples = new Map<string, number[]>();
  add(key: string, ms: number) {
    let list = this.samples.get(key);
    if (!list) this.samples.set(key, (list = []));
    if (list.length < MAX_SAMPLES) list.push(ms);
  }
  reset() {
    this.samples.clear();
  }
  summary(): Record<string, Distribution> {
    return Object.fromEntries([...this.samples].map(([key, values]) => [key, distribution(values)]));
  }
}

const served = new Timings();
const sent = new Timings();
const starts = new WeakMap<object, number>();

/**
 * Request durations are recorded once a phase asks for them (`timings-reset`, phase 1): the
 * subscribers cost the child CPU on every request (a route name made by regular expressions, a
 * sample kept), which the edge's phase would bill to tollgate and not to haproxy.
 */
let recording = false;
function record(): void {
  if (recording) return;
  recording = true;
  dc.subscribe('http.server.request.start', (message) => {
    starts.set((message as { request: object }).request, performance.now());
  });
  dc.subscribe('http.server.response.finish', (message) => {
    const request = (message as { request: { method?: string; url?: string } }).request;
    const start = starts.get(request);
    if (start !== undefined) served.add(routeOf(request.method ?? '?', request.url ?? '?'), performance.now() - start);
  });
  dc.subscribe('undici:request:create', (message) => {
    starts.set((message as { request: object }).request, performance.now());
  });
  dc.subscribe('undici:request:headers', (message) => {
    const request = (message as { request: { method: string; path: string } }).request;
    const start = starts.get(request);
    if (start !== undefined) sent.add(routeOf(request.method, request.path), performance.now() - start);
  });
}

/** Garbage-collection pauses, by kind (minor, major, incremental, weak callbacks). */
const gcPauses = { count: 0, totalMs: 0, maxMs: 0, byKind: {} as Record<string, { count: number; totalMs: number }> };
const GC_KINDS: Record<number, string> = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = GC_KINDS[(entry as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0] ?? 'other';
    gcPauses.count++;
    gcPauses.totalMs += entry.duration;
    gcPauses.maxMs = Math.max(gcPauses.maxMs, entry.duration);
    const k = (gcPauses.byKind[kind] ??= { count: 0, totalMs: 0 });
    k.count++;
    k.totalMs += entry.duration;
  }
}).observe({ entryTypes: ['gc'] });

let profiler: Session | null = null;
let windowStarted = performance.now();
let loopDelay: IntervalHistogram | null = null;
const LOOP_RESOLUTION_MS = 10;
let cpuMark = process.cpuUsage();
let wallMark = performance.now();

export function memory() {
  const m = process.memoryUsage();
  const heap = v8.getHeapStatistics();
  return {
    rssBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    heapTotalBytes: m.heapTotal,
    externalBytes: m.external,
    arrayBuffersBytes: m.arrayBuffers,
    heapLimitBytes: heap.heap_size_limit,
  };
}

/** Collects garbage until the heap stops shrinking (needs --expose-gc), then reads memory. */
export async function settledMemory() {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    let previous = Infinity;
    for (let i = 0; i < 6; i++) {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
      const used = process.memoryUsage().heapUsed;
      if (previous - used < 256 * 1024) break;
      previous = used;
    }
  }
  return memory();
}

/**
 * tsx runs TypeScript through esbuild, so V8's line numbers are those of the generated code;
 * its inline source maps (enabled by tsx) give back the line in the .ts file.
 */
function toOriginalPositions(nodes: { callFrame: { url: string; lineNumber: number; columnNumber: number } }[]): void {
  for (const { callFrame } of nodes) {
    if (!callFrame.url.startsWith('file:') || callFrame.url.includes('/node_modules/')) continue;
    const entry = findSourceMap(callFrame.url)?.findEntry(callFrame.lineNumber, callFrame.columnNumber) as
      | { originalLine?: number; originalColumn?: number }
      | undefined;
    if (entry?.originalLine === undefined) continue;
    callFrame.lineNumber = entry.originalLine;
    callFrame.columnNumber = entry.originalColumn ?? 0;
  }
}

export const instrumentHandlers: Record<string, Handler> = {
  /** CPU used since the previous mark, as a share of one core, and memory now. */
  usage: (payload: { mark?: boolean } | undefined) => {
    const cpu = process.cpuUsage(cpuMark);
    const wallMs = performance.now() - wallMark;
    if (payload?.mark) {
      cpuMark = process.cpuUsage();
      wallMark = performance.now();
    }
    return { userMs: cpu.user / 1000, systemMs: cpu.system / 1000, wallMs, memory: memory() };
  },
  memory: async (payload: { idleMs?: number } | undefined) => {
    // Idle time lets V8's memory reducer give back pages that garbage no longer uses.
    if (payload?.idleMs) {
      await settledMemory();
      await new Promise((resolve) => setTimeout(resolve, payload.idleMs));
    }
    return settledMemory();
  },
  'timings-reset': () => {
    record();
    served.reset();
    sent.reset();
    return true;
  },
  timings: () => ({ served: served.summary(), sent: sent.summary() }),
  'eld-start': () => {
    gcPauses.count = 0;
    gcPauses.totalMs = 0;
    gcPauses.maxMs = 0;
    gcPauses.byKind = {};
    windowStarted = performance.now();
    loopDelay?.disable();
    loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    loopDelay.enable();
    return true;
  },
  'eld-stop': () => {
    if (!loopDelay) return null;
    loopDelay.disable();
    // The histogram holds whole sampling intervals; the delay is what exceeds the interval.
    const ms = (ns: number) => Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS);
    const result = {
      p50Ms: ms(loopDelay.percentile(50)),
      p99Ms: ms(loopDelay.percentile(99)),
      maxMs: ms(loopDelay.max),
      meanMs: ms(loopDelay.mean),
      windowMs: performance.now() - windowStarted,
      gc: {
        count: gcPauses.count,
        totalMs: Math.round(gcPauses.totalMs),
        maxMs: Math.round(gcPauses.maxMs * 10) / 10,
        byKind: Object.fromEntries(
          Object.entries(gcPauses.byKind).map(([kind, v]) => [kind, { count: v.count, totalMs: Math.round(v.totalMs) }]),
        ),
      },
    };
    loopDelay = null;
    return result;
  },
  'profile-start': async (payload: { intervalUs?: number } | undefined) => {
    profiler = new Session();
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: payload?.intervalUs ?? 1000 });
    await profiler.post('Profiler.start');
    return true;
  },
  'profile-stop': async (payload: { file: string }) => {
    if (!profiler) throw new Error('no profile running');
    const { profile } = await profiler.post('Profiler.stop');
    profiler.disconnect();
    profiler = null;
    toOriginalPositions(profile.nodes);
    await writeFile(payload.file, JSON.stringify(profile));
    return payload.file;
  },
  // Every allocation sampled, collected or not (not only what is live at the end): where the garbage comes from.
  'alloc-start': async () => {
    profiler = new Session();
    profiler.connect();
    await profiler.post('HeapProfiler.enable');
    await profiler.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as never);
    return true;
  },
  'alloc-stop': async (payload: { file: string }) => {
    if (!profiler) throw new Error('no profile running');
    const { profile } = await profiler.post('HeapProfiler.stopSampling');
    profiler.disconnect();
    profiler = null;
    await writeFile(payload.file, JSON.stringify(profile));
    return payload.file;
  },
  'heap-snapshot': (payload: { file: string }) => v8.writeHeapSnapshot(payload.file),
};

export { distribution };
