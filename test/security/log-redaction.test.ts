import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';

/** What reaches the log of a request line: never an edge access token, wherever the client put it. */
describe('request URLs in the log', () => {
  it('hide an access token in the query under any spelling, in a path segment or percent-encoded', () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _encoding, done) => (lines.push(String(chunk)), done()) });
    const log = createLogger('info', sink);
    const token = 'tge_5b0e2c1a-1f0c-4a3e-9d6f-0a1b2c3d4e5f.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde';
    const session = '5b0e2c1a-1f0c-4a3e-9d6f-0a1b2c3d4e5f';
    const urls = [
      `/edge/${session}/x?access_token=${token}`,
      `/edge/${session}/x?access%5Ftoken=${token}&y=1`,
      `/edge/${session}/x?%61ccess_token=${token}`,
      `/edge/${session}/x?ACCESS_TOKEN=${token}`,
      `/edge/${session}/x;access_token=${token}`,
      `/edge/${token}/x`,
      `/edge/${session}/x?t=${encodeURIComponent(token).replace('_', '%5F')}`,
    ];
    for (const url of urls) log.info({ req: { method: 'GET', url } }, 'incoming request');
    expect(lines).toHaveLength(urls.length);
    for (const line of lines) {
      expect(line).not.toContain('AbCdEfGhIjKl');
      expect(line).toContain('[redacted]');
    }
    // A path that only looks alike is logged as it is.
    log.info({ req: { method: 'GET', url: '/files/budgetge_2024.pdf?stage_x=1' } }, 'incoming request');
    expect(JSON.parse(lines.pop()!).req.url).toBe('/files/budgetge_2024.pdf?stage_x=1');
    // The rest of the line is kept: the session's path and other parameters.
    expect(JSON.parse(lines[1]!).req.url).toBe(`/edge/${session}/x?access%5Ftoken=[redacted]&y=1`);
  });
});
