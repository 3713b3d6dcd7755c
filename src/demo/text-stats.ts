import { createServer, type Server } from 'node:http';
import { refuseUnsigned, signedFacts } from './signed-requests.js';

const MAX_TEXT_BYTES = 1_048_576;

/** A text-statistics JSON API: POST text to /stats, get counts and the most frequent words back. */
export function textStatsService(secret: () => string): Server {
  return createServer((request, response) => {
    if (!signedFacts(secret, request)) return refuseUnsigned(response);
    if (request.method !== 'POST' || !request.url?.startsWith('/stats')) {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ service: 'text statistics', usage: 'POST /stats with a text body' }));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_TEXT_BYTES) request.destroy();
      else chunks.push(chunk);
    });
    request.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const words = text.toLowerCase().match(/\p{L}[\p{L}'-]*/gu) ?? [];
      const frequency = new Map<string, number>();
      for (const word of words) frequency.set(word, (frequency.get(word) ?? 0) + 1);
      const top = [...frequency].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 5);
      response.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({ characters: [...text].length, words: words.length, lines: text === '' ? 0 : text.split('\n').length, top: top.map(([word, count]) => ({ word, count })) }),
      );
    });
  });
}
