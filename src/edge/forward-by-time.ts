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
import { hasBody, noop, SMALL_ANSWER_BYTES, upstreamHeadersOf, withoutHopByHop } from './proxying.js';

/** What the front door lends a request it forwards itself. */
export interface ForwardContext {
  dispatcher: Pick<Dispatcher, 'dispatch'>;
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
    // A body still coming (an upload cut by the session's end) ends with the connection, not at the service.
    ...((context.closing() || !request.complete) && { connection: 'close' }),
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
  /** The upstream request, once it went (undici's controller: abort, pause, resume). */
  let upstream: Dispatcher.DispatchController | null = null;
  /** A small answer being read whole before it goes in one write with its headers. */
  let whole: { statusCode: number; headers: OutgoingHttpHeaders; chunks: Buffer[] } | null = null;
  let streaming = false;
  let upstreamDone = false;
  const stopUpstream = () => {
    if (!upstreamDone && upstream && !upstream.aborted) upstream.abort(new Error('the customer’s side of the request ended'));
  };
  const refuse = (ended: Ended) => {
    if (answered || response.destroyed) return;
    answered = true;
    answerProblem(context, request, response, errors.sessionEnded('ended', ended.reason, iso(ended.at)), requestId());
    // Its answer is not wanted. (An upload still coming goes on to the service until the client is
    // done: aborting it would reset the connection under the 402.)
    if (request.complete) stopUpstream();
  };
  const connection: Connection = {
    cut(ended) {
      // Sent whole already (it may still be on its way to a slow client): nothing to cut.
      if (response.writableEnded) return;
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
    // A client gone (or cut) mid-answer frees the upstream's connection.
    stopUpstream();
    if (started !== null) {
      context.log!.info(
        { reqId: requestId(), req: { method: request.method, url: request.url, host: client.host, ip: client.ip, socket: request.socket }, res: { statusCode: response.statusCode }, responseTime: performance.now() - started, sessionId: session.sessionId },
        'request completed',
      );
    }
  });
  // undici's dispatch with a handler of our own: no Readable, promise or async scope per answer,
  // and the request can be aborted (its request() API allocates all three).
  context.dispatcher.dispatch(
    {
      origin: pass.origin,
      path: pass.query ? `${pass.path}?${pass.query}` : pass.path,
      method: request.method as Dispatcher.HttpMethod,
      headers: upstreamHeadersOf(request.headers, client, signed) as Record<string, string>,
      body,
    },
    {
      onRequestStart(controller) {
        upstream = controller;
        if (response.destroyed) stopUpstream();
      },
      onResponseStart(_controller, statusCode, upstreamHeaders) {
        // 1xx: informational, the answer is still to come.
        if (statusCode < 200) return;
        if (answered || response.destroyed) return stopUpstream();
        const headers = withoutHopByHop(upstreamHeaders) as OutgoingHttpHeaders;
        // An HTTP/1 connection cannot take another request before this one's body was read whole.
        if (!request.complete || context.closing()) headers.connection = 'close';
        const length = Number(upstreamHeaders['content-length']);
        const eventStream = String(upstreamHeaders['content-type']).startsWith('text/event-stream');
        if (length <= SMALL_ANSWER_BYTES && !eventStream) {
          whole = { statusCode, headers, chunks: [] };
          return;
        }
        answered = true;
        streaming = true;
        response.writeHead(statusCode, headers);
      },
      onResponseData(controller, chunk) {
        if (whole) {
          whole.chunks.push(chunk);
          return;
        }
        if (!streaming || response.destroyed) return;
        session.traffic.add('bytesOut', chunk.length);
        // A client slower than the service holds the service back, not tollgate's memory.
        if (!response.write(chunk) && !controller.paused) {
          controller.pause();
          response.once('drain', () => controller.resume());
        }
      },
      onResponseEnd() {
        upstreamDone = true;
        if (streaming) {
          response.end();
          return;
        }
        if (!whole || answered || response.destroyed) return;
        answered = true;
        const bytes = whole.chunks.length === 1 ? whole.chunks[0]! : Buffer.concat(whole.chunks);
        session.traffic.add('bytesOut', bytes.length);
        response.writeHead(whole.statusCode, whole.headers);
        response.end(bytes);
      },
      onResponseError(_controller, error) {
        upstreamDone = true;
        // Broken off upstream mid-answer (unless a cut answered already): so is the answer.
        if (streaming || whole) {
          if (streaming || !answered) {
            answered = true;
            response.destroy();
          }
          return;
        }
        if (answered || response.destroyed) return;
        answered = true;
        context.log?.warn({ reqId: requestId(), sessionId: session.sessionId, err: error.message }, 'upstream did not answer');
        answerProblem(context, request, response, errors.upstreamUnavailable((error as { code?: string }).code ?? error.message), requestId());
      },
    },
  );
}
