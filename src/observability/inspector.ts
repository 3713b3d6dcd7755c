import { createWebSocketInspector } from '@statelyai/inspect';
import { createInspectorServer } from '@statelyai/inspect/server';
import type { InspectionEvent } from 'xstate';
import type { Logger } from '../logger.js';

export interface RunningInspector {
  /** Passed to every actor's `inspect` option. */
  inspect(event: InspectionEvent): void;
  stop(): void;
}

/**
 * TOLLGATE_INSPECT=1: every session and gate actor reports to a local WebSocket server that
 * relays to the Stately inspector page (hosted on stately.ai, so the page needs internet;
 * the server and its event stream work offline). Off by default: it costs per event.
 */
export function startInspector(options: { port: number; log: Logger }): RunningInspector {
  const server = createInspectorServer({ port: options.port, autoOpen: false });
  const inspector = createWebSocketInspector({ url: `ws://127.0.0.1:${options.port}` });
  options.log.info({ url: `http://127.0.0.1:${options.port}` }, 'XState inspector server started');
  return {
    inspect: (event) => inspector.inspect.next?.(event),
    stop: () => {
      inspector.stop();
      server.stop();
    },
  };
}
