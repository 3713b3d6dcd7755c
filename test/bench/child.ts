import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

/**
 * Benchmark children: entry points in test/bench run by plain node from the run's build (or by
 * `node --import tsx` from the sources when there is none), talking to the parent
 * over the IPC channel. A child sends `{ type: 'ready', ... }` once, then answers requests
 * `{ id, type, payload }` with `{ id, ok, result | error }`; it may send `{ type: 'progress', text }`
 * lines at any time.
 */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

let buildDir: string | null = null;
/** From now on children run the compiled JavaScript in `dir` under plain node (see build.ts). */
export function useBuild(dir: string): void {
  buildDir = dir.endsWith('/') ? dir : `${dir}/`;
}
export const currentBuild = () => buildDir;

export interface BenchChild<Ready = Record<string, unknown>> {
  pid: number;
  ready: Ready;
  request<T = unknown>(type: string, payload?: unknown, timeoutMs?: number): Promise<T>;
  /** Waits for the process to end (after a `close` request, or a kill). */
  exited: Promise<number | null>;
  kill(): void;
}

interface Reply {
  id?: number;
  type?: string;
  ok?: boolean;
  result?: unknown;
  error?: string;
  text?: string;
}

export async function spawnChild<Ready = Record<string, unknown>>(
  entry: string,
  options: {
    env: Record<string, string>;
    execArgv?: string[];
    label: string;
    onProgress?: (text: string) => void;
    readyTimeoutMs?: number;
  },
): Promise<BenchChild<Ready>> {
  const args = buildDir
    ? [...(options.execArgv ?? []), `${buildDir}test/bench/${entry.replace(/\.ts$/, '.js')}`]
    : [...(options.execArgv ?? []), '--import', 'tsx', fileURLToPath(new URL(`./${entry}`, import.meta.url))];
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...options.env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let readyResolve: (value: Ready) => void;
  let readyReject: (error: Error) => void;
  const ready = new Promise<Ready>((resolve, reject) => {
    readyResolve = resolve;
    readyReject = reject;
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code, signal) => {
      const error = new Error(`${options.label} exited (code ${code}, signal ${signal})`);
      readyReject(error);
      for (const { reject } of pending.values()) reject(error);
      pending.clear();
      resolve(code);
    });
  });
  child.on('message', (raw) => {
    const message = raw as Reply;
    if (message.type === 'ready') {
      readyResolve(message.result as Ready);
    } else if (message.type === 'progress') {
      options.onProgress?.(`${options.label}: ${message.text}`);
    } else if (typeof message.id === 'number') {
      const waiter = pending.get(message.id);
      pending.delete(message.id);
      if (!waiter) return;
      if (message.ok) waiter.resolve(message.result);
      else waiter.reject(new Error(`${options.label}: ${message.error}`));
    }
  });
  const readyTimeout = setTimeout(() => readyReject(new Error(`${options.label} did not start in time`)), options.readyTimeoutMs ?? 120_000);
  let readyValue: Ready;
  try {
    readyValue = await ready;
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  } finally {
    clearTimeout(readyTimeout);
  }
  return {
    pid: child.pid!,
    ready: readyValue,
    request<T>(type: string, payload?: unknown, timeoutMs = 600_000) {
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${options.label}: ${type} timed out after ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, {
          resolve: (value) => {
            clearTimeout(timer);
            resolve(value as T);
          },
          reject: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        });
        child.send({ id, type, payload });
      });
    },
    exited,
    kill: () => child.kill('SIGKILL'),
  };
}

export type Handler = (payload: any) => unknown;

/** Child side: answers the parent's requests with `handlers`; `close` ends the process after answering. */
export function serveParent(ready: unknown, handlers: Record<string, Handler>): void {
  if (!process.send) throw new Error('a benchmark child must be started with an IPC channel');
  process.on('message', async (raw) => {
    const message = raw as { id: number; type: string; payload: unknown };
    const handler = handlers[message.type];
    try {
      if (!handler) throw new Error(`unknown request ${message.type}`);
      const result = await handler(message.payload);
      process.send!({ id: message.id, ok: true, result });
      if (message.type === 'close') setTimeout(() => process.exit(0), 50);
    } catch (error) {
      process.send!({ id: message.id, ok: false, error: error instanceof Error ? error.stack ?? error.message : String(error) });
    }
  });
  // Without a parent the child has no reason to live.
  process.on('disconnect', () => process.exit(1));
  process.send({ type: 'ready', result: ready });
}

export function progress(text: string): void {
  process.send?.({ type: 'progress', text });
}

/** A child serving HTTP on a loopback port: the parent is told its URL; `close` runs `first`, then ends its connections. */
export async function serveHttp(server: Server, first: () => unknown = () => {}): Promise<void> {
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  serveParent(
    { url: `http://127.0.0.1:${port}` },
    {
      close: async () => {
        await first();
        server.closeAllConnections();
        server.close();
        return true;
      },
    },
  );
}
