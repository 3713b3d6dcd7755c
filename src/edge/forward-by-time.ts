import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { AppError, errors } from '../errors.js';
import type { ClientAddress } from './client-address.js';
import { problemBodyOf, problemDocument, problemHeaders } from '../problem-document.js';
import type { Logger } from '../logger.js';
import { ByteCounter } from './byte-counter.js';
import type { Pass } from './edge.js';
import type { Connection, Ended } from './live-sessions.js';
import { breakOff, hasBody, SMALL_ANSWER_BYTES, upstreamHeadersOf, withoutHopByHop } from './proxying.js';

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

/** Methods whose body Fastify never reads (its bodyless methods). */
const BODYLESS = new Set(['GET', 'HEAD', 'TRACE']);

/** A problem (application/problem+json) as Fastify's error handler writes it, straight onto the response. */
export function answerProblem(context: ForwardContext, request: IncomingMessage, response: ServerResponse, error: AppError, requestId = context.requestId()): void {
  const body = problemBodyOf(error);
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
  session.traffic.add('requests');
  const client = context.clientAddress(request);
  let id: string | null = null;
  const requestId = () => (id ??= context.requestId());
  const started = context.log?.isLevelEnabled('info') ? performance.now() : null;
  let body: ByteCounter | null = null;
  // A body on GET, HEAD or TRACE is not passed on, as Fastify's route (which never parses one) does not.
  const bodyless = BODYLESS.has(request.method!);
  if (hasBody(request.headers) && !bodyless) {
    body = ByteCounter.upload(request);
    body.onBytes = (bytes) => session.traffic.add('bytesIn', bytes);
  }
  const dropUpload = () => body?.dropUpload();
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
    dropUpload();
    answerProblem(context, request, response, errors.sessionEnded('ended', ended.reason, iso(ended.at)), requestId());
    // Its answer is not wanted.
    stopUpstream();
  };
  const connection: Connection = {
    cut(ended) {
      // Sent whole already (it may still be on its way to a slow client): nothing to cut.
      if (response.writableEnded) return;
      // Its headers went: a cut can only break it off.
      if (response.headersSent) breakOff(response);
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
  const startAnswer = (statusCode: number, upstreamHeaders: IncomingHttpHeaders) => {
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
  };
  /** A fault of tollgate's own while answering: the answer is broken off, the upstream let go. */
  const fault = (error: unknown) => {
    context.log?.error({ reqId: requestId(), sessionId: session.sessionId, err: error }, 'the edge could not pass an answer on');
    answered = true;
    response.destroy();
    stopUpstream();
  };
  // undici's dispatch with a handler of our own: no Readable, promise or async scope per answer,
  // and the request can be aborted (its request() API allocates all three).
  context.dispatcher.dispatch(
    {
      origin: pass.origin,
      path: pass.query ? `${pass.path}?${pass.query}` : pass.path,
      method: request.method as Dispatcher.HttpMethod,
      headers: upstreamHeadersOf(request.headers, client, signed, bodyless) as Record<string, string>,
      body,
    },
    {
      onRequestStart(controller) {
        upstream = controller;
        // Answered (a 402 at a cut) or gone before the request went: it goes no further.
        if (answered || response.destroyed) stopUpstream();
      },
      onResponseStart(_controller, statusCode, upstreamHeaders) {
        // 1xx: informational, the answer is still to come.
        if (statusCode < 200) return;
        try {
          startAnswer(statusCode, upstreamHeaders);
        } catch (error) {
          fault(error);
        }
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
        try {
          const bytes = whole.chunks.length === 1 ? whole.chunks[0]! : Buffer.concat(whole.chunks);
          response.writeHead(whole.statusCode, whole.headers);
          answered = true;
          session.traffic.add('bytesOut', bytes.length);
          response.end(bytes);
        } catch (error) {
          fault(error);
        }
      },
      onResponseError(_controller, error) {
        upstreamDone = true;
        // The request's body goes nowhere now (undici's own request() destroys it too); what is
        // still coming of it is read and dropped.
        dropUpload();
        body?.destroy();
        // Broken off upstream mid-stream: so is the answer.
        if (streaming) {
          response.destroy();
          return;
        }
        // The client gone first (its upload cut short, say): nobody to answer. Otherwise a 502, also
        // for a small answer broken off before any of it went (unless a cut answered already).
        if (answered || response.destroyed || request.socket.destroyed) return;
        answered = true;
        context.log?.warn({ reqId: requestId(), sessionId: session.sessionId, err: error.message }, 'upstream did not answer');
        try {
          answerProblem(context, request, response, errors.upstreamUnavailable((error as { code?: string }).code ?? error.message), requestId());
        } catch (failed) {
          // Thrown here, it would be thrown in undici's socket handler, where nobody hears it.
          fault(failed);
        }
      },
    },
  );
}
