import { createServer } from 'node:http';
import { Pool } from 'undici';
import { serveHttp } from './child.js';

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
      // pipe(), not pipeline(): what a lean proxy does (pipeline's bookkeeping cost a third of the
      // requests/s here). An upstream reset ends the answer; a client gone mid-answer frees the
      // pool's connection.
      answer.body.once('error', () => response.destroy());
      response.once('close', () => {
        if (!answer.body.readableEnded) answer.body.destroy();
      });
      answer.body.pipe(response);
    },
    () => {
      response.statusCode = 502;
      response.end();
    },
  );
});
await serveHttp(server, () => pool.close());
