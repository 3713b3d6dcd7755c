import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { migrate } from '../../db/migrate.js';
import { buildCardNetworkApp, type CardNetworkAppOptions } from './app.js';

export interface StartCardNetworkOptions extends CardNetworkAppOptions {
  /** 0 picks a free port; the returned url carries the one bound. */
  port: number;
  host?: string;
}

export interface RunningCardNetwork {
  url: string;
  close(): Promise<void>;
}

// Resolved from this module so it works from src/ under tsx and from a build that copies
// the .sql files next to the compiled module.
const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));

export async function startCardNetwork(options: StartCardNetworkOptions): Promise<RunningCardNetwork> {
  const { port, host = '127.0.0.1', ...appOptions } = options;
  await migrate(appOptions.sql, { dir: MIGRATIONS_DIR, table: 'migrations', schema: 'card_network' });
  const app = buildCardNetworkApp(appOptions);
  const unused = trackUnusedConnections(app.server);
  await app.listen({ port, host });
  const bound = (app.server.address() as AddressInfo).port;
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${hostInUrl}:${bound}`,
    async close() {
      // Node 20's server.close() leaves open the sockets fetch (undici) opens ahead of need,
      // which never carry a request, and keep-alive sockets that fall idle after the close
      // began: sweep both until in-flight answers are done, so close() cannot hang.
      const sweep = setInterval(() => {
        for (const socket of unused) socket.destroy();
        app.server.closeIdleConnections();
      }, 25);
      try {
        await app.close();
      } finally {
        clearInterval(sweep);
      }
    },
  };
}

function trackUnusedConnections(server: Server): Set<Socket> {
  const unused = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    unused.add(socket);
    socket.once('close', () => unused.delete(socket));
  });
  server.on('request', (request: IncomingMessage) => unused.delete(request.socket));
  return unused;
}
