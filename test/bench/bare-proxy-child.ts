import { once } from 'node:events';
import { pipeline } from 'node:stream';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { serveParent } from './child.js';

/**
 * The edge phase's reference for what Node itself costs: the least a Node reverse proxy does (one
 * node:http server, one undici pool to the upstream, hop-by-hop headers dropped, bodies streamed),
 * with none of the edge's work (no token, no session, no signed headers, no Fastify). The edge's
 * requests/s over this one's is the edge's own overhead; this one's over haproxy's is Node's.
 */
const upstream = process.env.BARE_UPSTREAM;
if (!upstream) throw new Error('BARE_UPSTREAM names the upstream to proxy to');
const pool = new Pool(upstream, { connections: 128, pipelining: 1, keepAliveTimeout: 10_000 });
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host']);

const server = createServer((request, response) => {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(request.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
  const hasBody = request.method !== 'GET' && request.method !== 'HEAD';
  pool.request({ path: request.url ?? '/', method: request.method as 'GET', headers, body: hasBody ? request : null }).then(
    (answer) => {
      const out: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(answer.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
      response.writeHead(answer.statusCode, out);
      // A client gone mid-answer, or an upstream reset, ends both sides (and frees the pool's connection).
      pipeline(answer.body, response, () => {});
    },
    () => {
      response.statusCode = 502;
      response.end();
    },
  );
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const { port } = server.address() as AddressInfo;

serveParent(
  { url: `http://127.0.0.1:${port}` },
  {
    close: async () => {
      server.closeAllConnections();
      server.close();
      await pool.close();
      return true;
    },
  },
);
