import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { verifyUpstreamSignature } from '../../src/edge/upstream-signature.js';

/** What the upstream saw of one request. */
export interface Seen {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  /** The signed facts, when the signature checked out with the secret the test set. */
  signed: ReturnType<typeof verifyUpstreamSignature>;
}

/**
 * A real upstream on a loopback port for edge tests: `/json` answers what it saw, `/echo` sends the
 * body back, `/events` streams server-sent events every 50 ms until the client goes, `/slow`
 * answers after a second, `/dribble` sends half a small answer and the rest a second later, `/after?ms=` answers (chunked) after that long; `/hop` names a header in its Connection header; `/big` streams as fast as the reader reads; WebSocket upgrades anywhere echo every message.
 */
export async function startUpstream() {
  const seen: Seen[] = [];
  const streams = { open: 0, closed: 0 };
  let secret = '';
  const server: Server = createServer((request, response) => {
    const path = request.url ?? '/';
    // Routed by the decoded path, so a percent-encoded one (Fastify's way through the edge) reaches the same answers.
    const route = safeDecode(path);
    const record = { method: request.method ?? 'GET', path, headers: request.headers, signed: verifyUpstreamSignature(secret, request.headers, { method: request.method ?? 'GET', path }, Date.now()) };
    seen.push(record);
    if (/\/events(\?|$)/.test(route)) {
      streams.open++;
      response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      let n = 0;
      const tick = setInterval(() => response.write(`id: ${++n}\ndata: tick ${n}\n\n`), 50);
      response.on('close', () => {
        clearInterval(tick);
        streams.closed++;
      });
      return;
    }
    if (/\/echo(\?|$)/.test(route)) {
      response.writeHead(200, { 'content-type': request.headers['content-type'] ?? 'application/octet-stream' });
      request.pipe(response);
      return;
    }
    const after = /\/after\?ms=(\d+)$/.exec(route);
    if (after) {
      setTimeout(() => response.writeHead(200, { 'content-type': 'application/json' }).end('{"after":true}'), Number(after[1]));
      return;
    }
    if (/\/dribble(\?|$)/.test(route)) {
      // A small answer of known length whose second half comes a second after its first.
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': '14' });
      response.write('{"dribble":');
      setTimeout(() => response.end('42}'), 1000);
      return;
    }
    if (/\/cookies(\?|$)/.test(route)) {
      // A service setting its own cookies, one for a whole domain, and one named as the web site's log-in.
      response.writeHead(200, {
        'content-type': 'application/json',
        'set-cookie': ['pref=1; Path=/; HttpOnly', 'wide=1; Domain=example.com; Path=/app; Secure', 'tg_session=planted; Path=/', 'plain=1'],
      });
      response.end('{"cookies":true}');
      return;
    }
    if (/\/planted(\?|$)/.test(route)) {
      // Only a cookie named as the web site's log-in: nothing of it is left to send.
      response.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'tg_session=planted; Path=/' });
      response.end('{"planted":true}');
      return;
    }
    if (/\/hop(\?|$)/.test(route)) {
      // A header meant for the next hop only: named in the answer's Connection header.
      response.writeHead(200, { 'content-type': 'application/json', connection: 'keep-alive, x-secret-hop', 'x-secret-hop': 'for tollgate only' });
      response.end('{"hop":true}');
      return;
    }
    if (/\/big(\?|$)/.test(route)) {
      // As fast as the reader takes it, until the reader goes.
      response.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(65_536, 7);
      const more = () => {
        while (!response.destroyed && response.write(chunk));
      };
      response.on('drain', more);
      more();
      return;
    }
    if (/\/slow(\?|$)/.test(route)) {
      setTimeout(() => response.writeHead(200, { 'content-type': 'application/json' }).end('{"slow":true}'), 1000);
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ method: record.method, path, signed: record.signed !== null, authorization: request.headers.authorization ?? null, cookie: request.headers.cookie ?? null }));
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (socket, request) => {
    seen.push({ method: 'WS', path: request.url ?? '/', headers: request.headers, signed: verifyUpstreamSignature(secret, request.headers, { method: 'GET', path: request.url ?? '/' }, Date.now()) });
    // 'drop' makes the service go away as a crashed one does: the connection ends with no close frame.
    socket.on('message', (data, isBinary) => (data.toString() === 'drop' ? socket.terminate() : socket.send(data, { binary: isBinary })));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    streams,
    setSecret(value: string) {
      secret = value;
    },
    async close() {
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function safeDecode(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}
