import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { AppError, errors } from '../errors.js';
import type { ClientAddress } from './client-address.js';
import { problemBodyOf, problemDocument, problemHeaders } from '../problem-document.js';
import type { Logger } from '../logger.js';
import { ByteCounter } from './byte-counter.js';
import type { Pass } from './edge.js';
import type { Connection, Ended, LiveSession } from './live-sessions.js';
import { breakOff, hasBody, SMALL_ANSWER_BYTES, upstreamHeadersOf, withoutHopByHop } from './proxying.js';
import { confineAnswerCookies } from './upstream-cookies.js';

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
  const forward = new TimedForward(context, request, response, session, pass.sessionPath);
  // undici's dispatch with a handler of our own: no Readable, promise or async scope per answer,
  // and the request can be aborted (its request() API allocates all three).
  context.dispatcher.dispatch(
    {
      origin: pass.origin,
      path: pass.query ? `${pass.path}?${pass.query}` : pass.path,
      method: request.method as Dispatcher.HttpMethod,
      headers: upstreamHeadersOf(request.headers, forward.client, signed, forward.bodyless) as Record<string, string>,
      body: forward.body,
    },
    forward,
  );
}

/**
 * One forwarded request: undici's handler for its answer, and the session's connection the cut
 * reaches. One object with its methods rather than a closure for each (the edge's hot path: a
 * dozen closures a request were a good part of its garbage).
 */
class TimedForward implements Dispatcher.DispatchHandler, Connection {
  readonly client: ClientAddress;
  /** The customer's upload as it goes upstream (counted), or null. */
  readonly body: ByteCounter | null = null;
  /** A body on GET, HEAD or TRACE is not passed on, as Fastify's route (which never parses one) does not. */
  readonly bodyless: boolean;
  /** Nothing more goes to the client from here but what went (a problem, a whole answer, a stream's start). */
  private answered = false;
  /** The upstream request, once it went (undici's controller: abort, pause, resume). */
  private upstream: Dispatcher.DispatchController | null = null;
  /** A small answer being read whole before it goes in one write with its headers. */
  private whole: { statusCode: number; headers: OutgoingHttpHeaders; chunks: Buffer[] } | null = null;
  private streaming = false;
  private upstreamDone = false;
  private id: string | null = null;
  private readonly started: number | null;

  constructor(
    private readonly context: ForwardContext,
    private readonly request: IncomingMessage,
    private readonly response: ServerResponse,
    private readonly session: LiveSession,
    /** Where the session's answers live on tollgate's origin: the service's cookies are kept to it. */
    private readonly sessionPath: string,
  ) {
    this.client = context.clientAddress(request);
    this.started = context.log?.isLevelEnabled('info') ? performance.now() : null;
    this.bodyless = BODYLESS.has(request.method!);
    if (hasBody(request.headers) && !this.bodyless) {
      this.body = ByteCounter.upload(request);
      this.body.onBytes = (bytes) => session.traffic.add('bytesIn', bytes);
    }
    session.connections.add(this);
    response.once('close', () => this.closed());
  }

  // The session's end (Connection).
  cut(ended: Ended): void {
    // Sent whole already (it may still be on its way to a slow client): nothing to cut.
    if (this.response.writableEnded) return;
    // Its headers went: a cut can only break it off.
    if (this.response.headersSent) breakOff(this.response);
    else this.refuse(ended);
  }

  drop(): void {
    this.response.destroy();
  }

  // undici's handler.
  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.upstream = controller;
    // Answered (a 402 at a cut) or gone before the request went: it goes no further.
    if (this.answered || this.response.destroyed) this.stopUpstream();
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, upstreamHeaders: IncomingHttpHeaders): void {
    // 1xx: informational, the answer is still to come.
    if (statusCode < 200) return;
    try {
      this.startAnswer(statusCode, upstreamHeaders);
    } catch (error) {
      this.fault(error);
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.whole) {
      this.whole.chunks.push(chunk);
      return;
    }
    const { response } = this;
    if (!this.streaming || response.destroyed) return;
    this.session.traffic.add('bytesOut', chunk.length);
    // A client slower than the service holds the service back, not tollgate's memory.
    if (!response.write(chunk) && !controller.paused) {
      controller.pause();
      response.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    this.upstreamDone = true;
    const { response, whole } = this;
    if (this.streaming) {
      response.end();
      return;
    }
    if (!whole || this.answered || response.destroyed) return;
    try {
      const bytes = whole.chunks.length === 1 ? whole.chunks[0]! : Buffer.concat(whole.chunks);
      response.writeHead(whole.statusCode, whole.headers);
      this.answered = true;
      this.session.traffic.add('bytesOut', bytes.length);
      response.end(bytes);
    } catch (error) {
      this.fault(error);
    }
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.upstreamDone = true;
    const { request, response } = this;
    // The request's body goes nowhere now (undici's own request() destroys it too); what is
    // still coming of it is read and dropped.
    this.body?.dropUpload();
    this.body?.destroy();
    // Broken off upstream mid-stream: so is the answer.
    if (this.streaming) {
      response.destroy();
      return;
    }
    // The client gone first (its upload cut short, say): nobody to answer. Otherwise a 502, also
    // for a small answer broken off before any of it went (unless a cut answered already).
    if (this.answered || response.destroyed || request.socket.destroyed) return;
    this.answered = true;
    this.context.log?.warn({ reqId: this.requestId(), sessionId: this.session.sessionId, err: error.message }, 'upstream did not answer');
    try {
      answerProblem(this.context, request, response, errors.upstreamUnavailable((error as { code?: string }).code ?? error.message), this.requestId());
    } catch (failed) {
      // Thrown here, it would be thrown in undici's socket handler, where nobody hears it.
      this.fault(failed);
    }
  }

  private requestId(): string {
    return (this.id ??= this.context.requestId());
  }

  private stopUpstream(): void {
    const { upstream } = this;
    if (!this.upstreamDone && upstream && !upstream.aborted) upstream.abort(new Error('the customer’s side of the request ended'));
  }

  private refuse(ended: Ended): void {
    if (this.answered || this.response.destroyed) return;
    this.answered = true;
    this.body?.dropUpload();
    answerProblem(this.context, this.request, this.response, errors.sessionEnded('ended', ended.reason, iso(ended.at)), this.requestId());
    // Its answer is not wanted.
    this.stopUpstream();
  }

  private closed(): void {
    const { request, response, session, started } = this;
    session.connections.delete(this);
    // A client gone (or cut) mid-answer frees the upstream's connection.
    this.stopUpstream();
    if (started !== null) {
      this.context.log!.info(
        {
          reqId: this.requestId(),
          req: { method: request.method, url: request.url, host: this.client.host, ip: this.client.ip, socket: request.socket },
          res: { statusCode: response.statusCode },
          responseTime: performance.now() - started,
          sessionId: session.sessionId,
        },
        'request completed',
      );
    }
  }

  private startAnswer(statusCode: number, upstreamHeaders: IncomingHttpHeaders): void {
    const { request, response } = this;
    if (this.answered || response.destroyed) return this.stopUpstream();
    const headers = confineAnswerCookies(withoutHopByHop(upstreamHeaders), this.sessionPath) as OutgoingHttpHeaders;
    // An HTTP/1 connection cannot take another request before this one's body was read whole.
    if (!request.complete || this.context.closing()) headers.connection = 'close';
    const length = Number(upstreamHeaders['content-length']);
    const eventStream = String(upstreamHeaders['content-type']).startsWith('text/event-stream');
    if (length <= SMALL_ANSWER_BYTES && !eventStream) {
      this.whole = { statusCode, headers, chunks: [] };
      return;
    }
    this.answered = true;
    this.streaming = true;
    response.writeHead(statusCode, headers);
  }

  /** A fault of tollgate's own while answering: the answer is broken off, the upstream let go. */
  private fault(error: unknown): void {
    this.context.log?.error({ reqId: this.requestId(), sessionId: this.session.sessionId, err: error }, 'the edge could not pass an answer on');
    this.answered = true;
    this.response.destroy();
    this.stopUpstream();
  }
}
