import { randomUUID } from 'node:crypto';
import { Agent, type Dispatcher } from 'undici';

/** The request header that names a request's abort: read and removed here, never sent. */
export const ABORT_KEY = 'x-tollgate-abort-key';

/**
 * The edge's undici dispatcher for @fastify/reply-from, which gives no way to abort a request it
 * sent: a request registered here (its headers carry a key) is aborted when asked. A request
 * forwarded to the node that runs its session must end when its client leaves, or that node,
 * still connected, charges an answer nobody reads. Everything else passes to the agent unchanged.
 */
export class AbortableRequests {
  private readonly aborts = new Map<string, AbortController>();

  constructor(private readonly agent: Agent) {}

  /** A key to put in the request's headers (`header`), and `abort` until `forget`. */
  register(): { header: [string, string]; abort: () => void; forget: () => void } {
    const key = randomUUID();
    const controller = new AbortController();
    this.aborts.set(key, controller);
    return { header: [ABORT_KEY, key], abort: () => controller.abort(), forget: () => this.aborts.delete(key) };
  }

  request(options: Dispatcher.RequestOptions, callback: (error: Error | null, data: Dispatcher.ResponseData) => void): void {
    const headers = options.headers as Record<string, string | undefined> | undefined;
    const key = headers?.[ABORT_KEY];
    if (key === undefined) return void this.agent.request(options, callback);
    const { [ABORT_KEY]: _key, ...rest } = headers!;
    const signal = this.aborts.get(key)?.signal;
    this.agent.request({ ...options, headers: rest, ...(signal && { signal }) }, callback);
  }

  close(): Promise<void> {
    return this.agent.close();
  }

  destroy(): Promise<void> {
    return this.agent.destroy();
  }
}
