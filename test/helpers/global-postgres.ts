import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A URL whose user may create databases: each test file makes its own. */
    pgAdminUrl: string;
  }
}

/**
 * One PostgreSQL for the whole run: the server at DATABASE_URL when it is set (CI runs the
 * suite a second time that way), otherwise a throw-away embedded cluster.
 */
export default async function setup(project: TestProject) {
  if (process.env.DATABASE_URL) {
    project.provide('pgAdminUrl', process.env.DATABASE_URL);
    return;
  }
  const root = await mkdtemp(path.join(os.tmpdir(), 'tollgate-test-'));
  const db = await startEmbeddedPostgres({ dataDir: path.join(root, 'pgdata'), throwaway: true });
  project.provide('pgAdminUrl', db.url('postgres'));
  return async () => {
    await db.stop();
    await rm(root, { recursive: true, force: true });
  };
}
