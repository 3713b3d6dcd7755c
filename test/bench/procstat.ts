import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * CPU time of processes from /proc (Linux), so a phase can say which process used the two
 * cores: the load generator, tollgate, the sandbox, PostgreSQL, or something else on the machine.
 */
const TICK_MS = 10; // USER_HZ is 100 on Linux

function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After the comm field: state(0) ppid(1) ... utime(11) stime(12)
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return 0;
  }
}

function parentOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return -1;
  }
}

/** The postmaster of a data folder and every backend under it. */
export function postgresPids(dataDir: string): number[] {
  let postmaster: number;
  try {
    postmaster = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return [];
  }
  const pids = [postmaster];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (Number.isInteger(pid) && parentOf(pid) === postmaster) pids.push(pid);
  }
  return pids;
}

/** Whole-machine busy time (all cores) from /proc/stat. */
function machineBusyMs(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) * TICK_MS;
  } catch {
    return 0;
  }
}

export interface CpuShares {
  wallSeconds: number;
  /** Cores used on average by each group over the window (1.0 = one core busy). */
  cores: Record<string, number>;
  machineCores: number;
}

/**
 * Starts a window; `stop()` answers the cores each group used. Backends come and go, so the
 * PostgreSQL group is re-listed at the end: a process born in the window counts whole, one that
 * ended in it is lost.
 */
export function cpuWindow(groups: { name: string; pids: () => number[] }[]): { stop(): CpuShares } {
  const start = performance.now();
  const before = new Map<string, Map<number, number>>();
  for (const group of groups) before.set(group.name, new Map(group.pids().map((pid) => [pid, cpuMsOf(pid)])));
  const machineBefore = machineBusyMs();
  const selfBefore = process.cpuUsage();
  return {
    stop() {
      const wallMs = performance.now() - start;
      const cores: Record<string, number> = {};
      for (const group of groups) {
        const seen = before.get(group.name)!;
        let used = 0;
        for (const pid of new Set([...seen.keys(), ...group.pids()])) used += Math.max(0, cpuMsOf(pid) - (seen.get(pid) ?? 0));
        cores[group.name] = Math.round((used / wallMs) * 100) / 100;
      }
      const self = process.cpuUsage(selfBefore);
      cores['benchmark (load generator)'] = Math.round(((self.user + self.system) / 1000 / wallMs) * 100) / 100;
      const machine = Math.round(((machineBusyMs() - machineBefore) / wallMs) * 100) / 100;
      const counted = Object.values(cores).reduce((a, b) => a + b, 0);
      cores['everything else on the machine'] = Math.max(0, Math.round((machine - counted) * 100) / 100);
      return { wallSeconds: Math.round(wallMs) / 1000, cores, machineCores: os.availableParallelism?.() ?? os.cpus().length };
    },
  };
}
