import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Agent } from 'undici';
import type { ClientAddress } from './client-address.js';
import type { Logger } from '../logger.js';
import { AbortableRequests } from './abortable-requests.js';
import { EDGE_PREFIX, type Edge, type Pass } from './edge.js';
import { forwardByTime, type ForwardContext } from './forward-by-time.js';

/** Connections to one upstream at once (open streams and requests in flight); more wait for one. */
const UPSTREAM_CONNECTIONS = 8192;

/** What the front door learned of a request it left to Fastify's edge route, so nothing is asked twice. */
export type Admitted = { error: unknown } | { pass: Pass };

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

/** A path with percent-encoding (the query does not count). */
function encoded(url: string): boolean {
  const query = url.indexOf('?');
  return (query < 0 ? url : url.slice(0, query)).includes('%');
}

/**
 * The edge's front door, in the HTTP server before Fastify (its serverFactory). A request to
 * `/edge/…` is admitted here; one of a session known to be priced by time, the edge's common case,
 * is forwarded here too (forwardByTime). Everything else goes on to Fastify as before: other paths,
 * and edge requests that are refused, exchange `?access_token=` for a cookie, may be charged per
 * request, go to the node that runs their session, have a percent-encoded path or a method Fastify
 * does not route, or come while the app closes, with what was learned of them (`admitted`).
 */
export class EdgeFront {
  /** The undici agent every request to an upstream goes through, this door's and Fastify's route's. */
  readonly requests: AbortableRequests;
  /** Set when the app begins to close: answers then say Connection: close. */
  closing = false;
  private readonly left = new WeakMap<IncomingMessage, Admitted>();
  private readonly context: ForwardContext;
  private ids = 0;
  private methods: Set<string> | null = null;

  constructor(
    private readonly deps: {
      edge: Edge;
      clientAddress: (request: IncomingMessage) => ClientAddress;
      log: Logger | null;
      /** The methods Fastify routes (its `all`), asked once the app is made. */
      methods: () => readonly string[];
    },
  ) {
    const agent = new Agent({
      // Every open stream holds a connection to its upstream for as long as it lasts: reply-from's
      // default of 128 per upstream queued the 129th server-sent-events stream until the cut.
      connections: UPSTREAM_CONNECTIONS,
      pipelining: 1,
      keepAliveTimeout: 10_000,
      headersTimeout: 60_000,
      // No body timeout: a quiet server-sent-events stream is cut by the session's end, not by idleness.
      bodyTimeout: 0,
      // An https upstream's certificate is verified (reply-from's own agent would not check it).
      connect: { rejectUnauthorized: true },
    });
    this.requests = new AbortableRequests(agent);
    this.context = {
      dispatcher: agent,
      clientAddress: deps.clientAddress,
      log: deps.log,
      closing: () => this.closing,
      requestId: () => `edge-${(++this.ids).toString(36)}`,
    };
  }

  /** Fastify's serverFactory: a node:http server with Fastify's timeouts, whose requests pass this door first. */
  server(fastify: Handler, timeouts: { keepAliveTimeout: number; requestTimeout: number; connectionTimeout: number }): Server {
    const server = createServer((request, response) => this.take(request, response, fastify));
    server.keepAliveTimeout = timeouts.keepAliveTimeout;
    server.requestTimeout = timeouts.requestTimeout;
    server.setTimeout(timeouts.connectionTimeout);
    return server;
  }

  /** What was learned here of a request Fastify's edge route now answers (once). */
  admitted(request: IncomingMessage): Admitted | undefined {
    const admitted = this.left.get(request);
    if (admitted) this.left.delete(request);
    return admitted;
  }

  private take(request: IncomingMessage, response: ServerResponse, fastify: Handler): void {
    // Closing, Fastify answers what still comes 503 (return503OnClosing).
    if (!request.url?.startsWith(EDGE_PREFIX) || this.closing) return fastify(request, response);
    // A stream through the edge lasts as long as its session: the cut ends it, not the socket's idleness.
    request.socket.setTimeout(0);
    let pass: Pass | Promise<Pass>;
    try {
      pass = this.deps.edge.admitNow(request);
    } catch (error) {
      return this.leave(request, response, fastify, { error });
    }
    // The common case goes on at once; a session this node is still to hear of, after its row is read.
    if (!(pass instanceof Promise)) return this.route(request, response, fastify, pass);
    pass.then(
      (known) => this.route(request, response, fastify, known),
      (error: unknown) => this.leave(request, response, fastify, { error }),
    );
  }

  /**
   * Fastify's route takes: a method it does not route (it answers 404, whichever way), the cookie
   * exchange, a percent-encoded path (its router decodes it as before), and a session priced per
   * request, whose units it charges. The rest is forwarded here.
   */
  private route(request: IncomingMessage, response: ServerResponse, fastify: Handler, pass: Pass): void {
    try {
      if (!this.routed(request.method!)) return this.leave(request, response, fastify, { pass });
      if ((pass.credential.from === 'query' && (request.method === 'GET' || request.method === 'HEAD')) || encoded(request.url!)) {
        return this.leave(request, response, fastify, { pass });
      }
      const byTime = this.deps.edge.pricedByTime(pass);
      if (byTime === true) return this.forward(request, response, pass);
      if (byTime === false) return this.leave(request, response, fastify, { pass });
      byTime.then(
        (known) => (known ? this.forward(request, response, pass) : this.leave(request, response, fastify, { pass })),
        () => this.leave(request, response, fastify, { pass }),
      );
    } catch (error) {
      this.broken(response, error);
    }
  }

  private leave(request: IncomingMessage, response: ServerResponse, fastify: Handler, admitted: Admitted): void {
    try {
      this.left.set(request, admitted);
      fastify(request, response);
    } catch (error) {
      this.broken(response, error);
    }
  }

  private forward(request: IncomingMessage, response: ServerResponse, pass: Pass): void {
    try {
      forwardByTime(this.context, request, response, pass, this.deps.edge.signedHeaders(pass, request.method ?? 'GET'));
    } catch (error) {
      this.deps.log?.error({ err: error, sessionId: pass.session.sessionId }, 'the edge could not forward a request');
      response.destroy();
    }
  }

  /** A fault of tollgate's own (not the request's): the answer is broken off, the process goes on. */
  private broken(response: ServerResponse, error: unknown): void {
    this.deps.log?.error({ err: error }, 'the edge could not take a request');
    response.destroy();
  }

  private routed(method: string): boolean {
    this.methods ??= new Set(this.deps.methods());
    return this.methods.has(method);
  }
}
