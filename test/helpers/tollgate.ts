import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Clock } from '../../src/clock.js';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { startTollgate, type Tollgate } from '../../src/runtime.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { bootstrapAdmin, GENEROUS_LIMITS, TEST_FAULTS_TOKEN } from './operators.js';

export interface TestTollgate extends Omit<Tollgate, 'cardNetworkUrl'> {
  cardNetworkUrl: string;
  /** The API key of an admin operator that the bootstrap token created (the same across restarts). */
  adminToken: string;
  db: TestDatabase;
  /** Starts a second tollgate on the same database and data folder, as a restart would. */
  restart(): Promise<TestTollgate>;
  stop(): Promise<void>;
}

/**
 * A whole tollgate on a fresh real database, with the card-network sandbox listening on a
 * free loopback port: tests talk to it through app.inject() and to the sandbox over HTTP. Rate
 * limits and quotas are set out of reach (GENEROUS_LIMITS) unless `env` sets them.
 */
export async function startTestTollgate(
  options: { clock?: Clock; env?: Record<string, string>; db?: TestDatabase; dataDir?: string; adminToken?: string } = {},
): Promise<TestTollgate> {
  const db = options.db ?? (await createTestDatabase());
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'tollgate-data-')));
  const config = loadConfig({
    DATABASE_URL: db.url,
    TOLLGATE_DATA_DIR: dataDir,
    CARD_NETWORK_PORT: '0',
    LOG_LEVEL: 'silent',
    CAPTURE_RETRY_BASE_MS: '50',
    CAPTURE_RETRY_MAX_MS: '500',
    DATABASE_POOL_SIZE: '5',
    CARD_NETWORK_FAULTS_TOKEN: TEST_FAULTS_TOKEN,
    // Sessions go cold when a test says so (supervisor.sweepCold), not when a real timer happens to tick.
    COLD_AFTER_MS: '0',
    // Upstreams are checked when a test says so (test/edge/upstream-health.test.ts): a check landing
    // between a test's new service and its open would refuse the open of a service it meant to find down.
    EDGE_UPSTREAM_CHECK_MS: '0',
    ...GENEROUS_LIMITS,
    ...options.env,
  });
  const tollgate = await startTollgate(config, { clock: options.clock ?? systemClock, log: false });
  let stopped = false;
  const closeOnly = async () => {
    if (stopped) return;
    stopped = true;
    await tollgate.close();
  };
  if (!tollgate.cardNetworkUrl) throw new Error('test tollgates talk to the card-network sandbox');
  const adminToken = options.adminToken ?? (await bootstrapAdmin(tollgate.app, tollgate.bootstrapToken));
  return {
    ...tollgate,
    cardNetworkUrl: tollgate.cardNetworkUrl,
    adminToken,
    db,
    close: closeOnly,
    restart: async () => {
      await closeOnly();
      return startTestTollgate({ ...options, db, dataDir, adminToken });
    },
    stop: async () => {
      await closeOnly();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
