import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { pipeline, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { AppError, errors } from '../errors.js';
import type { ClientAddress } from '../http/client-address.js';
import { problemDocument, problemHeaders } from '../http/problem.js';
import type { Logger } from '../logger.js';
import { ByteCounter } from './byte-counter.js';
import type { Pass } from './edge.js';
import type { Connection, Ended } from './live-sessions.js';
import { collect, discard, hasBody, noop, SMALL_ANSWER_BYTES, upstreamHeadersOf, withoutHopByHop } from './proxying.js';

/** What the front door lends a request it forwards itself. */
export interface ForwardContext {
  dispatcher: { request(options: Dispatcher.RequestOptions, callback: (error: Error | null, data: Dispatcher.ResponseData) => void): void };
  clientAddress: (request: IncomingMessage) => ClientAddress;
  log: Logger | null;
  /** The app is closing: answers say Connection: close, so their connections end with them. */
  closing(): boolean;
  /** An id for the request's problem and log line (Fastify's are `req-…`). */
  requestId(): string;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** A problem (application/problem+json) as Fastify's error handler writes it, straight onto the response. */
export function answerProblem(context: ForwardContext, request: IncomingMessage, response: ServerResponse, error: AppError, requestId = context.requestId()): void {
  const body = { code: error.code, detail: error.message, ...error.extra };
  const text = JSON.stringify(problemDocument(error.status, body, request.url, requestId));
  response.writeHead(error.status, {
    ...problemHeaders(error.status, body),
    'content-type': 'application/problem+json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...(context.closing() && { connection: 'close' }),
  });
  response.end(text);
}

/**
 * A request of a session priced by time, passed to its service without Fastify or reply-from
 * (issue 11: their work per request halved the edge's throughput), on the same undici agent.
 * Nothing is charged per request, so the answer goes as it comes: a small answer of known length
 * in one write with its headers, anything else streamed. The session's end answers 402
 * SESSION_ENDED to a request still waiting for its service and cuts an answer already going.
 */
export function forwardByTime(
  context: ForwardContext,
  request: IncomingMessage,
  response: ServerResponse,
  pass: Pass,
  signed: Readonly<Record<string, string>>,
): void {
  const { session } = pass;
  // The client left while its pass was checked: nothing goes.
  if (response.destroyed || request.socket.destroyed) return;
  if (session.ended) return answerProblem(context, request, response, errors.sessionEnded('ended', session.ended.reason, iso(session.ended.at)));
  // A stream through the edge lasts as long as its session: the cut ends it, not the socket's idleness.
  request.socket.setTimeout(0);
  session.traffic.add('requests');
  const client = context.clientAddress(request);
  let id: string | null = null;
  const requestId = () => (id ??= context.requestId());
  const started = context.log?.isLevelEnabled('info') ? performance.now() : null;
  let body: Readable | null = null;
  if (hasBody(request.headers)) {
    const counted = new ByteCounter();
    counted.onBytes = (bytes) => session.traffic.add('bytesIn', bytes);
    pipeline(request, counted, noop);
    body = counted;
  }
  /** Nothing more goes to the client from here but what went (a problem, a whole answer, a stream's start). */
  let answered = false;
  let upstreamBody: Readable | null = null;
  const refuse = (ended: Ended) => {
    if (answered || response.destroyed) return;
    answered = true;
    answerProblem(context, request, response, errors.sessionEnded('ended', ended.reason, iso(ended.at)), requestId());
  };
  const connection: Connection = {
    cut(ended) {
      // Its headers went: a cut can only break it off.
      if (response.headersSent) response.destroy();
      else refuse(ended);
    },
    drop() {
      response.destroy();
    },
  };
  session.connections.add(connection);
  response.once('close', () => {
    session.connections.delete(connection);
    // A client gone mid-answer frees the upstream's connection.
    if (upstreamBody && !upstreamBody.readableEnded) upstreamBody.destroy();
    if (started !== null) {
      context.log!.info(
        { reqId: requestId(), req: { method: request.method, url: request.url, host: client.host, ip: client.ip, socket: request.socket }, res: { statusCode: response.statusCode }, responseTime: performance.now() - started, sessionId: session.sessionId },
        'request completed',
      );
    }
  });
  context.dispatcher.request(
    {
      origin: pass.origin,
      path: pass.query ? `${pass.path}?${pass.query}` : pass.path,
      method: request.method as Dispatcher.HttpMethod,
      headers: upstreamHeadersOf(request.headers, client, signed) as Record<string, string>,
      body,
    },
    (error, answer) => {
      if (error) {
        if (answered || response.destroyed) return;
        answered = true;
        context.log?.warn({ reqId: requestId(), sessionId: session.sessionId, err: error.message }, 'upstream did not answer');
        answerProblem(context, request, response, errors.upstreamUnavailable((error as { code?: string }).code ?? error.message), requestId());
        return;
      }
      const stream = answer.body;
      if (answered || response.destroyed) return discard(stream);
      const headers = withoutHopByHop(answer.headers) as OutgoingHttpHeaders;
      // An HTTP/1 connection cannot take another request before this one's body was read whole.
      if (!request.complete || context.closing()) headers.connection = 'close';
      const length = Number(answer.headers['content-length']);
      const eventStream = String(answer.headers['content-type']).startsWith('text/event-stream');
      if (length <= SMALL_ANSWER_BYTES && !eventStream) {
        collect(stream, (failed, whole) => {
          if (failed || !whole) {
            answered = true;
            response.destroy();
            return;
          }
          if (answered || response.destroyed) return;
          answered = true;
          session.traffic.add('bytesOut', whole.length);
          response.writeHead(answer.statusCode, headers);
          response.end(whole);
        });
        return;
      }
      answered = true;
      upstreamBody = stream;
      response.writeHead(answer.statusCode, headers);
      stream.on('data', (chunk: Buffer) => session.traffic.add('bytesOut', chunk.length));
      // An upstream that breaks off breaks the answer off.
      stream.on('error', () => response.destroy());
      stream.pipe(response);
    },
  );
}
