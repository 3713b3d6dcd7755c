import { createServer, type Server } from 'node:http';
import { WebSocketServer, WebSocket } from 'ws';
import { signedFacts } from './signed-requests.js';

/** A WebSocket chat: every message is sent to everyone connected, with the sender's session. */
export function chatService(secret: () => string): Server {
  const server = createServer((_request, response) => {
    response.writeHead(426, { 'content-type': 'application/json' }).end(JSON.stringify({ service: 'chat', usage: 'open a WebSocket' }));
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: 65_536 });
  server.on('upgrade', (request, socket, head) => {
    const facts = signedFacts(secret, request);
    if (!facts) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(request, socket, head, (client) => {
      client.send(JSON.stringify({ from: 'chat', text: `welcome; your session is cut at ${facts.cutoffAt}` }));
      client.on('message', (data) => {
        const message = JSON.stringify({ from: facts.sessionId.slice(0, 8), text: data.toString().slice(0, 1000) });
        for (const peer of wss.clients) if (peer.readyState === WebSocket.OPEN) peer.send(message);
      });
    });
  });
  server.on('close', () => wss.close());
  return server;
}
