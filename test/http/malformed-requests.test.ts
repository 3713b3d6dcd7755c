import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { listen } from '../edge/edge-client.js';

/**
 * Requests Node's HTTP parser refuses before any route sees them still get problem+json with a
 * stable code (Fastify's own answer to these had no code), and the server goes on serving.
 */
let tollgate: TestTollgate;
let port: number;

beforeAll(async () => {
  tollgate = await startTestTollgate();
  port = Number(new URL(await listen(tollgate)).port);
});
afterAll(async () => {
  await tollgate.stop();
});

/** Bytes written as they are, and what came back before the server closed the connection. */
function raw(request: string): Promise<{ status: number; contentType: string | undefined; allow: string | undefined; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request));
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', body = ''] = text.split('\r\n\r\n');
      const status = /^HTTP\/1\.1 (\d+)/.exec(head);
      if (!status) return reject(new Error(`no answer: ${JSON.stringify(text)}`));
      resolve({ status: Number(status[1]), contentType: /content-type: ([^\r]+)/i.exec(head)?.[1], allow: /\r\nallow: ([^\r]+)/i.exec(head)?.[1], body: JSON.parse(body) as Record<string, unknown> });
    });
  });
}

describe('requests the HTTP parser refuses', () => {
  it.each([
    ['a request line past 16 KiB', `GET /v1/sessions/${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
    ['a header past 16 KiB', `GET /v1/services HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
    ['an HTTP version that is none', 'GET /v1/services HTTP/9.9\r\nHost: x\r\n\r\n', 400, 'MALFORMED_REQUEST'],
    ['a NUL in a header value', 'GET /v1/services HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\0b\r\n\r\n', 400, 'MALFORMED_REQUEST'],
    ['two Content-Lengths', 'POST /v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}', 400, 'MALFORMED_REQUEST'],
    ['an invalid header name', 'GET /v1/services HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n', 400, 'MALFORMED_REQUEST'],
    ['a CONNECT (a tunnel)', 'CONNECT 127.0.0.1:5432 HTTP/1.1\r\nHost: 127.0.0.1:5432\r\n\r\n', 405, 'METHOD_NOT_ALLOWED'],
  ])('answers %s with problem+json and a code', async (_name, request, status, code) => {
    const answer = await raw(request);
    expect(answer.status).toBe(status);
    expect(answer.contentType).toBe('application/problem+json');
    expect(answer.body).toMatchObject({ status, code, detail: expect.any(String) });
    // A 405 names the methods taken instead.
    if (status === 405) expect(answer.allow?.split(', ')).toEqual(expect.arrayContaining(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE']));
    if (status === 405) expect(answer.allow).not.toContain('CONNECT');
    // Still serving.
    expect((await fetch(`http://127.0.0.1:${port}/v1/services`)).status).toBe(200);
  });
});

describe('a CONNECT whose client keeps its side open', () => {
  it('is closed by the server once answered, not held open', async () => {
    const closed = await new Promise<boolean>((resolve) => {
      const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => socket.write('CONNECT 127.0.0.1:5432 HTTP/1.1\r\nHost: 127.0.0.1:5432\r\n\r\n'));
      socket.on('data', () => {});
      socket.on('error', () => {});
      // The answer came and the server's side ended; what the client sends now finds no one.
      socket.once('end', () => {
        const poke = setInterval(() => socket.writable && socket.write('x'), 50);
        socket.once('close', () => (clearInterval(poke), resolve(true)));
        setTimeout(() => (clearInterval(poke), socket.destroy(), resolve(false)), 3000);
      });
    });
    expect(closed).toBe(true);
  });
});
