import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/db/free-port.js';
import { EMBEDDED_USER, readEmbeddedPassword } from '../../src/db/embedded.js';
import { bootstrapAdminAt, GENEROUS_LIMITS, TEST_FAULTS_TOKEN } from '../helpers/operators.js';

/**
 * The real tollgate server (`src/server.ts`, run from source by tsx: no build step) as a child
 * process that a test can SIGKILL, or stop with SIGTERM or SIGINT, and start again on the same
 * data folder and ports.
 *
 * The child is spawned `detached`, so it leads its own process group: a group kill takes it and
 * the embedded PostgreSQL it started (the postmaster is its child, in its group) at once. With
 * `databaseUrl` it uses that database instead, and only the server dies.
 */
export interface ServerProcessOptions {
  /** TOLLGATE_DATA_DIR: embedded PostgreSQL data (`pgdata/`), kept across restarts. */
  dataDir: string;
  port: number;
  /** The in-process sandbox's port, kept across restarts so its URL stays the same. */
  cardNetworkPort: number;
  /** TOLLGATE_ADMIN_TOKEN: it creates the first admin operator, whose key is `operatorKey`. */
  bootstrapToken: string;
  /** An external PostgreSQL; unset: the server starts an embedded one under dataDir. */
  databaseUrl?: string;
  /** More environment for the child (it gets no other: DATABASE_URL never leaks in). */
  env?: Record<string, string>;
  /** stdout and stderr of every start are appended here. */
  logFile: string;
  /**
   * Whether the first start creates the admin operator with the bootstrap token (default). Nodes
   * of one cluster share a database, where only the first can: the others are given its key.
   */
  bootstrap?: boolean;
  /**
   * A network namespace to run in (`ip netns exec`, test/cluster/network-namespaces.ts), and the
   * address the server listens on there; unset: this namespace, on 127.0.0.1.
   */
  netns?: { name: string; address: string };
  /** The ports were found free here (serverProcessIn): taken by someone else before the first start, new ones are found. */
  portsPicked?: boolean;
}

export type KillKind = 'server' | 'group';

/** What a client got: an answer, a refused connection (nothing listens), or a lost request. */
export type Answer = { kind: 'answer'; status: number; body: any } | { kind: 'refused' } | { kind: 'lost'; error: string };

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * A server process for a test, with its data folder, free ports and `server.log` in `dataDir`:
 * on an external PostgreSQL when `databaseUrl` is given, else on an embedded one there.
 */
export async function serverProcessIn(
  dataDir: string,
  options: {
    bootstrapToken: string;
    databaseUrl?: string | undefined;
    env: Record<string, string>;
    logName?: string;
    bootstrap?: boolean;
    netns?: { name: string; address: string } | undefined;
  },
): Promise<ServerProcess> {
  return new ServerProcess({
    dataDir,
    port: await freePort(),
    cardNetworkPort: await freePort(),
    portsPicked: true,
    bootstrapToken: options.bootstrapToken,
    ...(options.databaseUrl ? { databaseUrl: options.databaseUrl } : {}),
    logFile: path.join(dataDir, options.logName ?? 'server.log'),
    env: options.env,
    ...(options.bootstrap === false ? { bootstrap: false } : {}),
    ...(options.netns ? { netns: options.netns } : {}),
  });
}

export class ServerProcess {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private starts = 0;
  private readyPath: '/ready' | '/health' = '/ready';
  private destroyed = false;
  /** How the latest child ended, until the next start. */
  private lastExit: string | null = null;
  private adminKey: string | null = null;

  constructor(private readonly options: ServerProcessOptions) {}

  /** Where it listens: its ports change only before its first start took them (see start). */
  get url(): string {
    return `http://${this.options.netns?.address ?? '127.0.0.1'}:${this.options.port}`;
  }

  get cardNetworkUrl(): string {
    return `http://127.0.0.1:${this.options.cardNetworkPort}`;
  }

  get embedded(): boolean {
    return this.options.databaseUrl === undefined;
  }

  /** The API key of the admin operator the bootstrap token created at the first start (kept in the database across restarts). */
  get operatorKey(): string {
    if (this.adminKey === null) throw new Error('the server has not started yet');
    return this.adminKey;
  }

  /** Started and not exited (killed or otherwise) since. */
  get running(): boolean {
    return this.child !== null && this.lastExit === null;
  }

  /**
   * Starts the server and waits until it answers; resolves with how long that took. `extraEnv` adds to
   * (or overrides) the environment given at construction, for this start only.
   */
  async start(timeoutMs = 60_000, extraEnv: Record<string, string> = {}): Promise<number> {
    if (this.child) throw new Error('the server is already running');
    // A test that timed out may still be running its loop: nothing starts after the clean-up.
    if (this.destroyed) throw new Error('the server process was destroyed');
    const began = Date.now();
    const start = ++this.starts;
    const log = openSync(this.options.logFile, 'a');
    writeSync(log, `\n--- start ${start} at ${new Date(began).toISOString()} ---\n`);
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
      PORT: String(this.options.port),
      HOST: this.options.netns?.address ?? '127.0.0.1',
      TOLLGATE_DATA_DIR: this.options.dataDir,
      CARD_NETWORK_PORT: String(this.options.cardNetworkPort),
      TOLLGATE_ADMIN_TOKEN: this.options.bootstrapToken,
      CARD_NETWORK_FAULTS_TOKEN: TEST_FAULTS_TOKEN,
      ...GENEROUS_LIMITS,
      ...(this.options.databaseUrl ? { DATABASE_URL: this.options.databaseUrl } : {}),
      ...this.options.env,
      ...extraEnv,
    };
    // tsx ≥ 4 registers itself with `--import tsx` (Node ≥ 20.6); the development condition is
    // the one the tests run with, so xstate misuse throws early here too.
    this.lastExit = null;
    const node = [process.execPath, '--conditions=development', '--import', 'tsx', 'src/server.ts'];
    // `ip netns exec` execs the command in place (no fork): the child's pid is the server's, and
    // kill, pause and the group kill reach it as they do outside a namespace.
    const [command, ...args] = this.options.netns ? ['ip', 'netns', 'exec', this.options.netns.name, ...node] : node;
    const child = spawn(command!, args, {
      cwd: ROOT,
      env,
      detached: true,
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    let exit: string | undefined;
    void this.exited.then(() => {
      exit = `code ${child.exitCode}, signal ${child.signalCode}`;
      this.lastExit = exit;
    });

    while (Date.now() - began < timeoutMs) {
      if (exit !== undefined) {
        const tail = await this.logTail();
        // A port found free was taken before the first start listened on it (another test's
        // connection out, on this busy machine): new ones, once, since no one has been told these yet.
        if (start === 1 && this.options.portsPicked && env.CLUSTER_NODE_URL === undefined && !this.options.netns && tail.includes('EADDRINUSE')) {
          this.child = null;
          this.starts = 0;
          this.options.portsPicked = false;
          this.options.port = await freePort();
          this.options.cardNetworkPort = await freePort();
          return this.start(timeoutMs, extraEnv);
        }
        throw new Error(`the server exited during start ${start} (${exit}):\n${tail}`);
      }
      if (await this.ready()) {
        if (this.options.bootstrap !== false) this.adminKey ??= await bootstrapAdminAt(this.url, this.options.bootstrapToken);
        return Date.now() - began;
      }
      await sleep(50);
    }
    throw new Error(`the server was not ready after ${timeoutMs} ms (start ${start}):\n${await this.logTail()}`);
  }

  /**
   * SIGKILL. `server`: only the tollgate process dies, and the embedded PostgreSQL it started is
   * left running, orphaned: the next start has to stop it (src/db/embedded.ts does). `group`: its
   * whole process group and the embedded PostgreSQL's processes die at the same instant, as at a
   * power cut (the OS and its page cache survive, so this does not test fsync). Resolves with the
   * instant the signal was sent.
   */
  async kill(kind: KillKind): Promise<number> {
    const child = this.child;
    if (!child?.pid) throw new Error('the server is not running');
    // A server that died by itself is a finding, not something for the next kill to hide.
    if (this.lastExit !== null) throw new Error(`the server had exited by itself (${this.lastExit}):\n${await this.logTail()}`);
    let killed: number[] = [];
    let at: number;
    if (kind === 'group') {
      // PostgreSQL's children make themselves group leaders (setsid), so they are not in the
      // server's group: they are killed by pid, with the postmaster, at the same moment.
      const postmaster = await this.postmasterPid();
      killed = postmaster === null ? [] : [postmaster, ...(await childrenOf(postmaster))];
      at = Date.now();
      signal(-child.pid, 'SIGKILL');
      for (const pid of killed) signal(pid, 'SIGKILL');
    } else {
      at = Date.now();
      signal(child.pid, 'SIGKILL');
    }
    await this.exited;
    this.child = null;
    // After a power cut no process is left. A killed process lingers until it is reaped (and a
    // backend holds PostgreSQL's shared memory until it is gone): waiting keeps the next start
    // from racing the kill.
    await waitUntilGone(killed);
    return at;
  }

  /**
   * SIGSTOP: the process stays, frozen (as in a long GC pause, or a VM stopped by its host),
   * until `resume` (SIGCONT). Nothing it had in flight is lost or finished meanwhile.
   */
  async pause(): Promise<void> {
    const child = this.child;
    if (!child?.pid) throw new Error('the server is not running');
    if (this.lastExit !== null) throw new Error(`the server had exited by itself (${this.lastExit}):\n${await this.logTail()}`);
    signal(child.pid, 'SIGSTOP');
  }

  async resume(): Promise<void> {
    const child = this.child;
    if (!child?.pid) throw new Error('the server is not running');
    signal(child.pid, 'SIGCONT');
  }

  /**
   * Sends SIGTERM or SIGINT to the server alone, as an operator or a process manager would, and
   * resolves with how it exited.
   */
  async terminate(name: 'SIGTERM' | 'SIGINT', timeoutMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    await this.signal(name);
    return this.exit(timeoutMs);
  }

  /** Sends SIGTERM or SIGINT to the server alone and returns at once (see `exit`). */
  async signal(name: 'SIGTERM' | 'SIGINT'): Promise<void> {
    const child = this.child;
    if (!child?.pid) throw new Error('the server is not running');
    if (this.lastExit !== null) throw new Error(`the server had exited by itself (${this.lastExit}):\n${await this.logTail()}`);
    signal(child.pid, name);
  }

  /** Resolves with how the server exited, once it has (after `signal`). */
  async exit(timeoutMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const child = this.child;
    if (!child) throw new Error('the server is not running');
    const exited = await Promise.race([this.exited.then(() => true), sleep(timeoutMs, false, { ref: false })]);
    if (!exited) throw new Error(`the server was still running ${timeoutMs} ms after it was signalled:\n${await this.logTail()}`);
    this.child = null;
    return { code: child.exitCode, signal: child.signalCode };
  }

  /** Kills whatever is left (the test is over): the group and the embedded PostgreSQL. */
  async destroy(): Promise<void> {
    this.destroyed = true;
    const postmaster = await this.postmasterPid();
    if (this.child?.pid) {
      signal(-this.child.pid, 'SIGKILL');
      await this.exited;
      this.child = null;
    }
    // Killed with the group, or orphaned by a server-only kill that no start followed: nothing
    // may outlive the test, nor keep using the data folder it deletes.
    if (postmaster !== null) await stopPostgres(postmaster);
  }

  /** The embedded cluster's URL for the `tollgate` database, while it runs (null with databaseUrl). */
  async embeddedDatabaseUrl(): Promise<string | null> {
    if (!this.embedded) return null;
    // postmaster.pid: pid, data folder, start time, port, ...
    const text = await readFile(path.join(this.options.dataDir, 'pgdata', 'postmaster.pid'), 'utf8').catch(() => null);
    const port = text?.split('\n')[3]?.trim();
    if (!port) return null;
    const password = await readEmbeddedPassword(path.join(this.options.dataDir, 'pgdata'));
    if (password === null) return null;
    return `postgres://${EMBEDDED_USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/tollgate`;
  }

  /** One request to the server, as a client sees it; never throws. */
  async api(method: string, url: string, options: { token?: string; body?: unknown; timeoutMs?: number } = {}): Promise<Answer> {
    try {
      const response = await fetch(`${this.url}${url}`, {
        method,
        headers: {
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        signal: AbortSignal.timeout(options.timeoutMs ?? 20_000),
      });
      const text = await response.text();
      return { kind: 'answer', status: response.status, body: text ? JSON.parse(text) : null };
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause;
      if (cause?.code === 'ECONNREFUSED') return { kind: 'refused' };
      return { kind: 'lost', error: String(cause?.code ?? error) };
    }
  }

  /** How many lines of each level (and what the errors said) the server logged, over all starts. */
  async logLevels(): Promise<{ levels: Record<string, number>; errors: string[] }> {
    const text = await readFile(this.options.logFile, 'utf8').catch(() => '');
    const names: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
    const levels: Record<string, number> = {};
    const errors: string[] = [];
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const entry = JSON.parse(line) as { level?: number; msg?: string; err?: unknown };
        const name = names[entry.level ?? 0] ?? String(entry.level);
        levels[name] = (levels[name] ?? 0) + 1;
        if ((entry.level ?? 0) >= 50) errors.push(line.slice(0, 500));
      } catch {
        levels.unparsed = (levels.unparsed ?? 0) + 1;
      }
    }
    return { levels, errors };
  }

  /** The log lines (pino's JSON, parsed) of the latest start, in order. */
  async logOfLatestStart(): Promise<{ level: number; msg: string; [field: string]: unknown }[]> {
    const text = await readFile(this.options.logFile, 'utf8').catch(() => '');
    const latest = text.slice(text.lastIndexOf('\n--- start '));
    return latest
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .flatMap((line) => {
        try {
          return [JSON.parse(line)];
        } catch {
          return [];
        }
      });
  }

  async logTail(lines = 40): Promise<string> {
    const text = await readFile(this.options.logFile, 'utf8').catch(() => '');
    return text.split('\n').slice(-lines).join('\n');
  }

  private async ready(): Promise<boolean> {
    try {
      const response = await fetch(`${this.url}${this.readyPath}`, { signal: AbortSignal.timeout(2_000) });
      await response.arrayBuffer();
      // GET /ready may not exist (yet): then /health (200 once the database answers) will do.
      if (response.status === 404 && this.readyPath === '/ready') {
        this.readyPath = '/health';
        return false;
      }
      return response.status === 200;
    } catch {
      return false;
    }
  }

  /** The pid in the embedded cluster's postmaster.pid: null with databaseUrl, or when PostgreSQL was stopped cleanly. */
  async postmasterPid(): Promise<number | null> {
    if (!this.embedded) return null;
    const text = await readFile(path.join(this.options.dataDir, 'pgdata', 'postmaster.pid'), 'utf8').catch(() => null);
    const pid = Number(text?.split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

async function procStat(pid: number): Promise<{ comm: string; state: string; ppid: number } | null> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (text === null) return null;
  // pid (comm) state ppid ...: comm may hold spaces and parentheses.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const [state = '', ppid = '0'] = text.slice(close + 2).split(' ');
  return { comm: text.slice(open + 1, close), state, ppid: Number(ppid) };
}

/** The process is there (running or a zombie not yet reaped) and is a PostgreSQL process. */
export async function isPostgres(pid: number): Promise<boolean> {
  const stat = await procStat(pid);
  return stat !== null && stat.comm.startsWith('postgres');
}

/** Waits until killed PostgreSQL processes are reaped: a zombie still answers kill(pid, 0). */
async function waitUntilGone(pids: number[]): Promise<void> {
  const began = Date.now();
  for (const pid of pids) {
    while (await isPostgres(pid)) {
      if (Date.now() - began > 30_000) throw new Error(`PostgreSQL ${pid} is still there 30 s after it was killed`);
      await sleep(50);
    }
  }
}

/** A fast shutdown (SIGINT, what `pg_ctl stop -m fast` sends), then SIGKILL after 10 s. */
async function stopPostgres(pid: number): Promise<void> {
  const began = Date.now();
  if (await isPostgres(pid)) signal(pid, 'SIGINT');
  while (await isPostgres(pid)) {
    if (Date.now() - began > 10_000) signal(pid, 'SIGKILL');
    if (Date.now() - began > 30_000) throw new Error(`PostgreSQL ${pid} is still there 30 s after it was stopped`);
    await sleep(50);
  }
}

async function childrenOf(parent: number): Promise<number[]> {
  const entries = await readdir('/proc').catch(() => [] as string[]);
  const pids = entries.filter((name) => /^\d+$/.test(name)).map(Number);
  const stats = await Promise.all(pids.map(async (pid) => ({ pid, stat: await procStat(pid) })));
  return stats.filter(({ stat }) => stat?.ppid === parent).map(({ pid }) => pid);
}
