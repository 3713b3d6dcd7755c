import { randomUUID } from 'node:crypto';
import path from 'node:path';
import postgres from 'postgres';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/embedded.js';
import { connect, type Sql } from '../../src/db/sql.js';
import { migrateTollgate } from '../../src/runtime.js';

/**
 * One embedded PostgreSQL for the whole run, started exactly as production starts it
 * (src/db/embedded.ts without `throwaway`: fsync, synchronous_commit and full_page_writes on),
 * in a temporary data folder. Each phase gets its own database on it.
 */
export interface BenchCluster {
  root: string;
  url(database: string): string;
  /** host, port, user, password for pgbench. */
  connection: { host: string; port: number; user: string; password: string };
  createDatabase(name: string): Promise<string>;
  settings(): Promise<Record<string, string>>;
  version(): Promise<string>;
  stop(): Promise<void>;
}

export async function startCluster(root: string): Promise<BenchCluster> {
  const db: EmbeddedDatabase = await startEmbeddedPostgres({ dataDir: path.join(root, 'pgdata') });
  const admin = new URL(db.url('postgres'));
  const connection = {
    host: admin.hostname,
    port: Number(admin.port),
    user: decodeURIComponent(admin.username),
    password: decodeURIComponent(admin.password),
  };
  const query = async <T>(run: (sql: postgres.Sql) => Promise<T>) => {
    const sql = postgres(db.url('postgres'), { max: 1, onnotice: () => {} });
    try {
      return await run(sql);
    } finally {
      await sql.end();
    }
  };
  return {
    root,
    url: db.url,
    connection,
    async createDatabase(name) {
      await query((sql) => sql.unsafe(`drop database if exists "${name}" with (force)`).then(() => sql.unsafe(`create database "${name}"`)));
      return db.url(name);
    },
    settings: () =>
      query(async (sql) => {
        const names = [
          'fsync',
          'synchronous_commit',
          'full_page_writes',
          'wal_sync_method',
          'commit_delay',
          'shared_buffers',
          'max_connections',
          'wal_level',
        ];
        const rows = await sql<{ name: string; setting: string }[]>`
          select name, current_setting(name) as setting from pg_settings where name = any(${names})`;
        return Object.fromEntries(rows.map((r) => [r.name, r.setting]));
      }),
    version: () => query(async (sql) => (await sql<{ v: string }[]>`select version() as v`)[0]!.v),
    stop: () => db.stop(),
  };
}

/** A fresh tollgate database with its schema, one server and the given services (caps high enough to never bind). */
export async function prepareTollgateDatabase(
  cluster: BenchCluster,
  name: string,
  services: { key: string; pricePerMinuteMicros: bigint }[],
): Promise<{ url: string; serverId: string; services: Record<string, string> }> {
  const url = await cluster.createDatabase(name);
  const sql = connect(url, { max: 2 });
  try {
    await migrateTollgate(sql);
    const serverId = randomUUID();
    const now = new Date();
    await sql`insert into servers (id, name, max_users, created_at) values (${serverId}, ${`bench-${name}`}, 10000000, ${now})`;
    const ids: Record<string, string> = {};
    for (const service of services) {
      const id = randomUUID();
      ids[service.key] = id;
      await sql`
        insert into services (id, name, server_id, price_per_minute_micros, currency, max_users, created_at)
        values (${id}, ${`bench-${name}-${service.key}`}, ${serverId}, ${service.pricePerMinuteMicros}, 'USD', 10000000, ${now})`;
    }
    return { url, serverId, services: ids };
  } finally {
    await sql.end();
  }
}

export async function withSql<T>(url: string, run: (sql: Sql) => Promise<T>, max = 4): Promise<T> {
  const sql = connect(url, { max });
  try {
    return await run(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}
