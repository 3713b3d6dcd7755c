import type { Duplex } from 'node:stream';
import type { AppError } from './errors.js';

/**
 * The application/problem+json document (RFC 9457) every error leaves tollgate as (DESIGN rule 9):
 * Fastify's answers (src/http/problem.ts), the edge's front door (src/edge/forward-by-time.ts),
 * which answers before Fastify has a request, and refused WebSocket upgrades send the same.
 */

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  499: 'Client Closed Request',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

export type ProblemBody = { code: string; detail: string } & Record<string, unknown>;

/** An application error's part of the document: its code, its message as the detail, its extra fields. */
export function problemBodyOf(error: AppError): ProblemBody {
  return { code: error.code, detail: error.message, ...error.extra };
}

/** The status's reason phrase, the document's title. */
export function problemTitle(status: number): string {
  return TITLES[status] ?? 'Error';
}

/** The problem's own headers: who may ask (401), and when to ask again. */
export function problemHeaders(status: number, body: ProblemBody): Record<string, string> {
  const headers: Record<string, string> = {};
  if (status === 401) headers['www-authenticate'] = 'Bearer';
  if (typeof body.retryAfterSeconds === 'number') headers['retry-after'] = String(body.retryAfterSeconds);
  return headers;
}

/** The document: a stable code, a detail, the request id (none for an upgrade refused on its socket). */
export function problemDocument(status: number, body: ProblemBody, instance: string | undefined, requestId?: string) {
  return { type: 'about:blank', title: problemTitle(status), status, ...body, ...(instance !== undefined && { instance }), ...(requestId !== undefined && { requestId }) };
}

/**
 * A problem written straight onto a socket nothing else will answer (a refused WebSocket upgrade,
 * a request Node's HTTP parser refused), which closes once it went.
 */
export function problemOnSocket(socket: Duplex, status: number, body: ProblemBody, instance?: string, extraHeaders: Record<string, string> = {}): void {
  const json = JSON.stringify(problemDocument(status, body, instance));
  const headers = Object.entries({ ...problemHeaders(status, body), ...extraHeaders }).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  socket.end(
    `HTTP/1.1 ${status} ${problemTitle(status)}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n` +
      `${headers}\r\n${json}`,
  );
}
