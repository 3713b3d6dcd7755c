import { createServer, type Server } from 'node:http';
import { refuseUnsigned, signedFacts } from './signed-requests.js';

/**
 * A render job that streams its progress as server-sent events: GET /render?frames=N renders N
 * frames (at most 10000), one every 200 ms, and says when its session will be cut.
 */
export function renderJobService(secret: () => string): Server {
  return createServer((request, response) => {
    const facts = signedFacts(secret, request);
    if (!facts) return refuseUnsigned(response);
    const url = new URL(request.url ?? '/', 'http://render.invalid');
    const frames = Math.min(10_000, Math.max(1, Number(url.searchParams.get('frames')) || 100));
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    response.write(`event: started\ndata: ${JSON.stringify({ frames, cutoffAt: facts.cutoffAt })}\n\n`);
    let frame = 0;
    const timer = setInterval(() => {
      frame++;
      response.write(`event: progress\ndata: ${JSON.stringify({ frame, frames, percent: Math.floor((frame * 100) / frames) })}\n\n`);
      if (frame >= frames) {
        clearInterval(timer);
        response.end(`event: done\ndata: {}\n\n`);
      }
    }, 200);
    response.on('close', () => clearInterval(timer));
  });
}
