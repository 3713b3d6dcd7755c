import path from 'node:path';
import { GENEROUS_LIMITS } from '../helpers/operators.js';
import { type BenchChild, spawnChild } from './child.js';

export const BENCH_ADMIN_TOKEN = 'bench-admin-token-0123456789';

/**
 * The card-network sandbox and a tollgate on `databaseUrl`, each in a process of its own, pushed
 * onto `children` as they start (so a failure still stops what did start). The benchmark
 * measures throughput, not the rate limits and quotas of issue 15: those are generous.
 */
export async function startPair(
  children: BenchChild[],
  options: { databaseUrl: string; dataDir: string; sandboxEnv?: Record<string, string> },
): Promise<{ sandbox: BenchChild<{ url: string }>; server: BenchChild<{ url: string }> }> {
  const sandbox = await spawnChild<{ url: string }>('sandbox-child.ts', { label: 'sandbox', env: { DATABASE_URL: options.databaseUrl, ...options.sandboxEnv } });
  children.push(sandbox);
  const server = await spawnChild<{ url: string }>('server-child.ts', {
    label: 'tollgate',
    env: {
      DATABASE_URL: options.databaseUrl,
      CARD_NETWORK_URL: sandbox.ready.url,
      TOLLGATE_DATA_DIR: path.resolve(options.dataDir),
      TOLLGATE_ADMIN_TOKEN: BENCH_ADMIN_TOKEN,
      ...GENEROUS_LIMITS,
      ...extraTollgateEnv(),
    },
    execArgv: (process.env.BENCH_TOLLGATE_ARGV ?? '').split(' ').filter(Boolean),
  });
  children.push(server);
  return { sandbox, server };
}

/** BENCH_TOLLGATE_ARGV="--max-semi-space-size=64": Node flags for tollgate's process. BENCH_TOLLGATE_ENV="JOURNAL_LANES=1,COLD_AFTER_MS=0": settings to try on tollgate's side of a run. */
function extraTollgateEnv(): Record<string, string> {
  const pairs = (process.env.BENCH_TOLLGATE_ENV ?? '').split(',').filter(Boolean);
  return Object.fromEntries(pairs.map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]));
}
