import { mkdtemp, readdir, readFile, readlink, realpath, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { unlink } from 'node:fs/promises';
import { embeddedPasswordFile, readEmbeddedPassword, startEmbeddedPostgres } from '../../src/db/embedded.js';
import { startTollgate } from '../../src/runtime.js';
import { signUp, signUpBody } from '../helpers/customers.js';

const dataDirs: string[] = [];

/** PostgreSQL processes working in the data folder (the postmaster's children inherit its working directory). */
async function backendsOf(pgdata: string): Promise<number[]> {
  const folder = await realpath(pgdata);
  const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
  const found = await Promise.all(
    pids.map(async (pid) => {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      if (!stat.includes('(postgres') || / Z /.test(stat.slice(stat.lastIndexOf(')')))) return null;
      return (await readlink(`/proc/${pid}/cwd`).catch(() => null)) === folder ? Number(pid) : null;
    }),
  );
  return found.filter((pid): pid is number => pid !== null);
}

async function isRunning(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  return stat !== null && !/^ [ZX] /.test(stat.slice(stat.lastIndexOf(')') + 1));
}
afterAll(async () => {
  for (const dir of dataDirs) await rm(dir, { recursive: true, force: true });
});

describe('embedded PostgreSQL', () => {
  it('starts with no DATABASE_URL, seeds the demo catalogue once, and keeps everything across a restart', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'tollgate-embedded-'));
    dataDirs.push(dataDir);
    // No DATABASE_URL: the environment is given whole, so the CI's external database is not used.
    const config = loadConfig({ TOLLGATE_DATA_DIR: dataDir, CARD_NETWORK_PORT: '0', LOG_LEVEL: 'silent' });
    const first = await startTollgate(config, { clock: systemClock, log: false });
    const body = signUpBody();
    let services: { services: { id: string }[] };
    try {
      services = (await first.app.inject({ url: '/v1/services' })).json();
      expect(services.services).toHaveLength(4);
      await signUp(first.app, body);
    } finally {
      await first.close();
    }
    const tokenFile = await stat(path.join(dataDir, 'admin-token'));
    expect(tokenFile.mode & 0o077).toBe(0);
    // The embedded PostgreSQL's password: random, of this data folder, in a file only its owner reads.
    const passwordFile = await stat(embeddedPasswordFile(path.join(dataDir, 'pgdata')));
    expect(passwordFile.mode & 0o077).toBe(0);
    const password = await readEmbeddedPassword(path.join(dataDir, 'pgdata'));
    expect(password).toMatch(/^[\w-]{32}$/);

    const second = await startTollgate(config, { clock: systemClock, log: false });
    try {
      const again = (await second.app.inject({ url: '/v1/services' })).json();
      expect(again.services.map((s: { id: string }) => s.id)).toEqual(services.services.map((s) => s.id));
      const login = await second.app.inject({
        method: 'POST',
        url: '/v1/auth/tokens',
        payload: { email: body.email, password: body.password },
      });
      expect(login.statusCode).toBe(201);
      expect(second.bootstrapToken).toBe(first.bootstrapToken);
      // The same password after a restart; the old fixed one opens nothing.
      expect(await readEmbeddedPassword(path.join(dataDir, 'pgdata'))).toBe(password);
      const port = (second.sql.options as unknown as { port: number[] }).port[0];
      const fixed = postgres(`postgres://postgres:tollgate-embedded@127.0.0.1:${port}/tollgate`, { max: 1, onnotice: () => {}, connect_timeout: 5 });
      await expect(fixed`select 1`).rejects.toThrow(/password authentication failed/);
      await fixed.end();
    } finally {
      await second.close();
    }
  });

  it('starts again after its postmaster was killed while a backend was still busy on a query', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'tollgate-killed-'));
    dataDirs.push(dataDir);
    const pgdata = path.join(dataDir, 'pgdata');
    const first = await startEmbeddedPostgres({ dataDir: pgdata });
    const client = postgres(first.url('postgres'), { max: 1, onnotice: () => {} });
    // A backend counting for minutes does not look for its postmaster until it is done.
    const busy = client`select count(*) from generate_series(1, 100000000000)`.catch(() => null);
    const watch = postgres(first.url('postgres'), { max: 1, onnotice: () => {} });
    await expect
      .poll(async () => (await watch`select 1 from pg_stat_activity where state = 'active' and query like '%generate_series%' and pid <> pg_backend_pid()`).length, { timeout: 15_000 })
      .toBe(1);
    await watch.end();
    const postmaster = Number((await readFile(path.join(pgdata, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    process.kill(postmaster, 'SIGKILL');
    await expect.poll(() => isRunning(postmaster), { timeout: 15_000 }).toBe(false);
    expect(await backendsOf(pgdata)).not.toEqual([]);

    const second = await startEmbeddedPostgres({ dataDir: pgdata });
    try {
      const works = postgres(second.url('postgres'), { max: 1, onnotice: () => {} });
      expect(await works`select 1 as one`).toEqual([{ one: 1 }]);
      await works.end();
    } finally {
      await second.stop();
      await client.end({ timeout: 0 });
      await busy;
    }
  });

  it('moves a data folder made with the old fixed password onto a random one of its own', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'tollgate-legacy-'));
    dataDirs.push(dataDir);
    const pgdata = path.join(dataDir, 'pgdata');
    // A folder as tollgate made them before: the fixed password, and no password file.
    const made = await startEmbeddedPostgres({ dataDir: pgdata, throwaway: true });
    const admin = postgres(made.url('postgres'), { max: 1, onnotice: () => {} });
    await admin.unsafe(`alter role postgres password 'tollgate-embedded'`);
    await admin.end();
    await made.stop();
    await unlink(embeddedPasswordFile(pgdata));

    const moved = await startEmbeddedPostgres({ dataDir: pgdata, throwaway: true });
    try {
      const password = await readEmbeddedPassword(pgdata);
      expect(password).toMatch(/^[\w-]{32}$/);
      expect((await stat(embeddedPasswordFile(pgdata))).mode & 0o077).toBe(0);
      const works = postgres(moved.url('postgres'), { max: 1, onnotice: () => {} });
      expect(await works`select 1 as one`).toEqual([{ one: 1 }]);
      await works.end();
      const port = new URL(moved.url('postgres')).port;
      const fixed = postgres(`postgres://postgres:tollgate-embedded@127.0.0.1:${port}/postgres`, { max: 1, onnotice: () => {}, connect_timeout: 5 });
      await expect(fixed`select 1`).rejects.toThrow(/password authentication failed/);
      await fixed.end();
    } finally {
      await moved.stop();
    }
  });
});
