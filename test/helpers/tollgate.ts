import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Clock } from '../../src/clock.js';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { startTollgate, type Tollgate } from '../../src/runtime.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export interface TestTollgate extends Omit<Tollgate, 'cardNetworkUrl'> {
  cardNetworkUrl: string;
  db: TestDatabase;
  /** Starts a second tollgate on the same database and data folder, as a restart would. */
  restart(): Promise<TestTollgate>;
  stop(): Promise<void>;
}

/**
 * A whole tollgate on a fresh real database, with the card-network sandbox listening on a
 * free loopback port: tests talk to it through app.inject() and to the sandbox over HTTP.
 */
export async function startTestTollgate(
  options: { clock?: Clock; env?: Record<string, string>; db?: TestDatabase; dataDir?: string } = {},
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
  return {
    ...tollgate,
    cardNetworkUrl: tollgate.cardNetworkUrl,
    db,
    close: closeOnly,
    restart: async () => {
      await closeOnly();
      return startTestTollgate({ ...options, db, dataDir });
    },
    stop: async () => {
      await closeOnly();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
