import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { SourceMap } from 'node:module';
import { currentBuild, REPO_ROOT } from './child.js';

/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof` or the inspector's Profiler): where the
 * samples fell by area (tollgate's own folders, each package, Node's internals, GC, idle), the
 * functions with the most self time, and tollgate's functions by inclusive time (every sample
 * whose stack passes through them), which is what says which part of src/ to optimise.
 */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  sampledMs: number;
  /** Share of the window the thread was busy (not idle). */
  busyShare: number;
  areas: { area: string; ms: number; share: number }[];
  selfTop: { fn: string; where: string; area: string; ms: number; share: number }[];
  tollgateInclusive: { fn: string; where: string; ms: number; share: number }[];
}

const repoUrl = `file://${REPO_ROOT}`;

function relative(url: string): string {
  if (url.startsWith(repoUrl)) return url.slice(repoUrl.length);
  if (url.startsWith(REPO_ROOT)) return url.slice(REPO_ROOT.length);
  return url;
}

export function areaOf(url: string, functionName: string): string {
  if (!url) {
    if (functionName === '(idle)') return '(idle)';
    if (functionName === '(garbage collector)') return '(garbage collector)';
    if (functionName === '(program)') return '(program: V8/native, not JS)';
    return `(native) ${functionName || 'anonymous'}`;
  }
  const path = relative(url);
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (pkg) {
    // The last node_modules segment names the package that owns the code.
    const all = [...path.matchAll(/node_modules\/((?:@[^/]+\/)?[^/]+)/g)];
    return `pkg ${all.at(-1)![1]}`;
  }
  if (path.startsWith('node:')) {
    const m = /^node:(?:internal\/)?(?:deps\/)?([^/]+)/.exec(path);
    return `node ${m?.[1] ?? path}`;
  }
  const own = /^(src\/[^/]+|machines\/[^/]+|test\/[^/]+)/.exec(path);
  if (own) return own[1]!.replace(/\.ts$/, '');
  return path;
}

const isTollgate = (url: string) => {
  const path = relative(url);
  return path.startsWith('src/') || path.startsWith('machines/');
};

/**
 * Frames in the run's compiled build point back at the .ts file and line they came from (tsc's
 * source maps), so the summary names src/ and machines/ as they are in the repository.
 */
function toSources(nodes: ProfileNode[]): void {
  const build = currentBuild();
  if (!build) return;
  const prefix = `file://${build}`;
  const maps = new Map<string, SourceMap | null>();
  for (const node of nodes) {
    const frame = node.callFrame as ProfileNode['callFrame'] & { columnNumber: number };
    if (!frame.url.startsWith(prefix) || frame.url.includes('/node_modules/')) continue;
    const rel = frame.url.slice(prefix.length);
    let map = maps.get(rel);
    if (map === undefined) {
      try {
        map = new SourceMap(JSON.parse(readFileSync(`${build}${rel}.map`, 'utf8')));
      } catch {
        map = null;
      }
      maps.set(rel, map);
    }
    const entry = map?.findEntry(frame.lineNumber, frame.columnNumber) as { originalLine?: number } | undefined;
    if (entry?.originalLine !== undefined) frame.lineNumber = entry.originalLine;
    frame.url = `file://${REPO_ROOT}${rel.replace(/\.js$/, '.ts')}`;
  }
}

export async function summarizeProfile(file: string, top = 25): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  toSources(profile.nodes);
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  const self = new Map<number, number>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const ms = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000;
    const id = profile.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + ms);
    total += ms;
  }

  const areas = new Map<string, number>();
  const fns = new Map<string, { fn: string; where: string; area: string; ms: number }>();
  const inclusive = new Map<string, { fn: string; where: string; ms: number }>();
  for (const [id, ms] of self) {
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + ms);
    const where = url ? `${relative(url)}:${lineNumber + 1}` : '';
    const key = `${functionName}@${where}`;
    const entry = fns.get(key) ?? { fn: functionName || '(anonymous)', where, area, ms: 0 };
    entry.ms += ms;
    fns.set(key, entry);
    // Inclusive time of tollgate functions: each distinct one on this sample's stack.
    const seen = new Set<string>();
    for (let cursor: number | undefined = id; cursor !== undefined; cursor = parent.get(cursor)) {
      const frame = byId.get(cursor)!.callFrame;
      if (!frame.url || !isTollgate(frame.url)) continue;
      const fnWhere = `${relative(frame.url)}:${frame.lineNumber + 1}`;
      const fnKey = `${frame.functionName}@${fnWhere}`;
      if (seen.has(fnKey)) continue;
      seen.add(fnKey);
      const acc = inclusive.get(fnKey) ?? { fn: frame.functionName || '(anonymous)', where: fnWhere, ms: 0 };
      acc.ms += ms;
      inclusive.set(fnKey, acc);
    }
  }
  const share = (ms: number) => Math.round((ms / total) * 1000) / 10;
  const idle = areas.get('(idle)') ?? 0;
  return {
    sampledMs: Math.round(total),
    busyShare: Math.round(((total - idle) / total) * 1000) / 10,
    areas: [...areas]
      .map(([area, ms]) => ({ area, ms: Math.round(ms), share: share(ms) }))
      .sort((a, b) => b.ms - a.ms),
    selfTop: [...fns.values()]
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top)
      .map((f) => ({ ...f, ms: Math.round(f.ms), share: share(f.ms) })),
    tollgateInclusive: [...inclusive.values()]
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top)
      .map((f) => ({ ...f, ms: Math.round(f.ms), share: share(f.ms) })),
  };
}
