import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/db/free-port.js';
import { TEST_FAULTS_TOKEN } from '../helpers/operators.js';

/**
 * The card-network sandbox as a process of its own (`src/payments/sandbox/main.ts`, run from
 * source by tsx, as `npm run card-network` runs the build), on a database of its own: it outlives
 * every tollgate the test kills, so a call tollgate made before a kill can still be committed
 * (and a slow answer still be sent to nobody) while tollgate is dead, as at a real card company.
 * Tollgate reaches it at CARD_NETWORK_URL.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export class SandboxProcess {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly url: string,
    private readonly port: number,
    private readonly databaseUrl: string,
    private readonly logFile: string,
  ) {}

  /** Starts the sandbox on a free port and waits until its fault API answers. */
  static async start(options: { databaseUrl: string; logFile: string }, timeoutMs = 60_000): Promise<SandboxProcess> {
    const port = await freePort();
    const sandbox = new SandboxProcess(`http://127.0.0.1:${port}`, port, options.databaseUrl, options.logFile);
    await sandbox.spawn(timeoutMs);
    return sandbox;
  }

  private async spawn(timeoutMs: number): Promise<void> {
    const log = openSync(this.logFile, 'a');
    writeSync(log, `\n--- sandbox start at ${new Date().toISOString()} ---\n`);
    const child = spawn(process.execPath, ['--conditions=development', '--import', 'tsx', 'src/payments/sandbox/main.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? '/tmp',
        ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
        DATABASE_URL: this.databaseUrl,
        CARD_NETWORK_PORT: String(this.port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
        CARD_NETWORK_FAULTS_TOKEN: TEST_FAULTS_TOKEN,
      },
      // Its own process group: a group kill of tollgate does not reach it.
      detached: true,
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    this.child = child;
    let exit: string | null = null;
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        exit = `code ${code}, signal ${signal}`;
        resolve();
      }),
    );
    const began = Date.now();
    while (Date.now() - began < timeoutMs) {
      if (exit !== null) throw new Error(`the card-network sandbox exited during start (${exit}):\n${await this.logTail()}`);
      try {
        const response = await fetch(`${this.url}/v1/faults`, {
          headers: { authorization: `Bearer ${TEST_FAULTS_TOKEN}` },
          signal: AbortSignal.timeout(2_000),
        });
        await response.arrayBuffer();
        if (response.ok) return;
      } catch {
        // Not listening yet.
      }
      await sleep(50);
    }
    throw new Error(`the card-network sandbox was not ready after ${timeoutMs} ms:\n${await this.logTail()}`);
  }

  /** Started and not exited since: it is meant to outlive the test's kills. */
  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM (it closes and exits 0), SIGKILL if it has not exited 10 s later. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child?.pid) return;
    this.child = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const exited = await Promise.race([this.exited.then(() => true), sleep(10_000, false, { ref: false })]);
    if (!exited) {
      child.kill('SIGKILL');
      await this.exited;
    }
  }

  async logTail(lines = 40): Promise<string> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '');
    return text.split('\n').slice(-lines).join('\n');
  }
}
