import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { serveHttp } from './child.js';

/**
 * The upstream the edge phase proxies to, in a process of its own (its CPU is not tollgate's):
 * `/json` a small JSON answer, `/events` a server-sent event a second (a progress stream), WebSocket echo.
 */
const BODY = JSON.stringify({ ok: true, service: 'bench', words: ['a', 'small', 'json', 'answer'] });
const server = createServer((request, response) => {
  if (request.url?.includes('/events')) {
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    const tick = setInterval(() => response.write('data: tick\n\n'), 1000);
    response.on('close', () => clearInterval(tick));
    return;
  }
  response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) });
  response.end(BODY);
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (socket) => socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })));
await serveHttp(server, () => {
  for (const client of wss.clients) client.terminate();
});
