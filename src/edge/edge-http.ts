import type { IncomingHttpHeaders } from 'node:http';
import { pipeline, type Readable } from 'node:stream';
import replyFrom from '@fastify/reply-from';
import type { Pool } from 'undici';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { FORWARDED_BY, forwardFailure } from '../cluster/forwarding.js';
import { errors } from '../errors.js';
import type { AbortableRequests } from './abortable-requests.js';
import { ByteCounter } from './byte-counter.js';
import { accessCookie, queryWithoutAccess } from './credentials.js';
import { WAITS_FOR_PAID, type Charge, type Edge, type Pass } from './edge.js';
import type { EdgeFront } from './edge-front.js';
import type { Connection, Ended } from './live-sessions.js';
import { addForwarding, breakOff, collect, collectWhole, discard, noop, SMALL_ANSWER_BYTES, withoutHopByHop } from './proxying.js';
import { confineAnswerCookies } from './upstream-cookies.js';
import { forwardedForOf } from './client-address.js';

/** How long a paid request's answer may take to arrive whole once its session has ended. */
const FINAL_ANSWER_MS = 5_000;

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * The edge's Fastify route: `/edge/<sessionId>/*` for what the front door (edge-front.ts) leaves
 * to it (refusals, the cookie exchange, sessions priced per request, forwarding to the owner,
 * percent-encoded paths, methods Fastify does not route, and all while closing), reverse-proxied
 * by @fastify/reply-from on the edge's undici agent (streams both ways, hop-by-hop headers
 * dropped). Bodies pass as streams, never parsed. The access token is stripped; the upstream gets
 * signed headers. A cut answers 402 SESSION_ENDED to a request still waiting for its upstream and
 * breaks off (resets) a response already streaming.
 */
export function edgeHttp(edge: Edge, front: EdgeFront): FastifyPluginAsync {
  const plugin: FastifyPluginAsync = async (app) => {
    const { requests } = front;
    // reply-from leaves a dispatcher it was given open: its keep-alive connections close with the app.
    app.addHook('onClose', () => requests.destroy());
    await app.register(replyFrom, {
      disableRequestLogging: true,
      undici: requests as unknown as Pool.Options,
    });
    // Bodies go to the upstream as they come, counted, never parsed or buffered.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (request, _payload, done) => {
      // The request itself (nothing is decoded on the way): its upload can be dropped at a cut.
      done(null, ByteCounter.upload(request.raw));
    });

    const handler = async (request: FastifyRequest, reply: FastifyReply) => {
      try {
        // Admitted (or refused) at the front door already, unless injected (tests) past it.
        const admitted = front.admitted(request.raw);
        if (admitted && 'error' in admitted) throw admitted.error;
        const pass = admitted?.pass ?? (await edge.admit(request.raw));
        if (pass.credential.from === 'query' && (request.method === 'GET' || request.method === 'HEAD')) return exchangeForCookie(request, reply, pass);
        const charge = await edge.charge(pass);
        if (charge === 'owner') return toOwner(edge, requests, request, reply, pass);
        return proxy(edge, request, reply, pass, charge);
      } catch (error) {
        // Refused (401, 403, 402 USE_LIMIT_REACHED…) with an upload on its way: read and dropped, so
        // the connection does not wait on a body nobody reads.
        if (request.body instanceof ByteCounter) request.body.dropUpload();
        throw error;
      }
    };
    // A stream through the edge lasts as long as its session: the edge's cut ends it, and the upstream
    // pool's headers timeout a request its upstream never answers, not Fastify's handler timeout.
    // CORS is the service's (its answers' headers), as through the front door.
    const options = { config: { longLived: true, ownTimeouts: true, passesThrough: true, cors: false }, helmet: false, exposeHeadRoute: false } as const;
    app.all('/edge/:sessionId', options, handler);
    app.all('/edge/:sessionId/*', options, handler);
  };
  return Object.assign(plugin, { [Symbol.for('fastify.display-name')]: 'edge-http' });
}

/** `?access_token=` once: a cookie scoped to the session's path, and the same URL without the token. */
function exchangeForCookie(request: FastifyRequest, reply: FastifyReply, pass: Pass) {
  const at = request.url.indexOf('?');
  const path = at < 0 ? request.url : request.url.slice(0, at);
  const query = at < 0 ? '' : queryWithoutAccess(request.url.slice(at + 1));
  return reply
    .code(303)
    .header('set-cookie', accessCookie(pass.credential.token, pass.sessionPath, request.protocol === 'https'))
    .header('location', `${path}${query ? `?${query}` : ''}`)
    .header('cache-control', 'no-store')
    .send();
}

/**
 * A request to a service priced per request whose session another node runs: only that node can
 * charge it, so it goes there whole (its credential included) and the owner's edge charges it,
 * proxies it and cuts it; its answer comes back as it came. Never forwarded twice.
 */
function toOwner(edge: Edge, requests: AbortableRequests, request: FastifyRequest, reply: FastifyReply, pass: Pass) {
  const owner = edge.ownerOf(pass);
  if (!owner || request.headers[FORWARDED_BY] !== undefined) throw errors.serverMoving();
  // Gone while its pass was checked: nothing goes.
  if (reply.raw.destroyed || request.raw.socket.destroyed) return reply;
  // The client gone before its answer came whole: the forward ends too, so the owner (which
  // charges as its answer goes out) sees its client gone and gives the unit back.
  const forward = requests.register();
  let gone = false;
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) {
      gone = true;
      forward.abort();
    }
    forward.forget();
  });
  return reply.from(`${owner.url}${request.url}`, {
    retryDelay: () => null,
    rewriteRequestHeaders: (_request, headers) => {
      headers.expect = undefined;
      headers[FORWARDED_BY] = edge.nodeId;
      headers[forward.header[0]] = forward.header[1];
      return headers;
    },
    rewriteHeaders: (headers) => ({ ...withoutHopByHop(headers as IncomingHttpHeaders), 'x-tollgate-answered-by': owner.nodeId }),
    onError: (replyTo, { error }) => {
      if (!gone) request.log.warn({ sessionId: pass.session.sessionId, owner: owner.nodeId, err: error.message }, 'could not forward an edge request to the owner of its session');
      // Sent and unanswered, the owner may have charged it (reply-from wraps undici's error).
      replyTo.send(forwardFailure(error));
    },
  });
}

/**
 * A problem answered after reply-from copied the upstream's headers onto the reply: those are
 * removed (they are not the problem's), and only those (CORS and the like stay).
 */
function sendProblem(reply: { removeHeader(name: string): unknown; send(payload: unknown): unknown }, problem: Error, upstreamHeaders: readonly string[]): void {
  for (const name of upstreamHeaders) reply.removeHeader(name);
  reply.send(problem);
}

/**
 * The unit of a paid request (a service priced per request, reserved before it came here) is
 * charged once the service answered and the answer goes out: a small answer is sent only once its
 * commit was taken; a stream's unit is charged as it starts. It is given back when the service never
 * answered (unreachable, cut first, the client gone before the answer). A paid request still
 * waiting for its service when its session reaches a limit gets its answer if it comes whole
 * within 5 s of the end (64 KiB at most), and is charged for it: it was within the limit, and may
 * be the very use that reached it (the session waits for it in over_limit.awaiting_uses). A
 * stream is never served past the end: it is answered 402 like an unpaid request, and its unit
 * given back. Ended otherwise (a logoff, an operator), what is in flight is cut at once and given back.
 */
function proxy(edge: Edge, request: FastifyRequest, reply: FastifyReply, pass: Pass, charge: Charge) {
  const { session } = pass;
  // The client left while its request was being charged: nothing goes, nothing is charged.
  // (A request whose body was read whole is `destroyed` too: the socket says whether the client is there.)
  if (reply.raw.destroyed || request.raw.socket.destroyed) {
    void charge.settle(false);
    return reply;
  }
  const upload = request.body instanceof ByteCounter ? request.body : null;
  /** Answered before the upload is whole (a cut, a 502): the service gets no more of it. */
  const dropUpload = () => upload?.dropUpload();
  const waits = (ended: Ended) => charge.paid && WAITS_FOR_PAID.has(ended.reason);
  // Ended while this request was being charged (or checked): the cut has passed it by.
  if (session.ended && !waits(session.ended)) {
    void charge.settle(false);
    dropUpload();
    return reply.send(errors.sessionEnded('ended', session.ended.reason, iso(session.ended.at)));
  }
  session.traffic.add('requests');
  if (upload) upload.onBytes = (bytes) => session.traffic.add('bytesIn', bytes);
  /** Nothing more goes to the client from here but what already went (a cut, a refusal). */
  let cut = false;
  /** The answer went to the client: a problem, a whole body, or a stream that started. */
  let replied = false;
  let streaming = false;
  let upstreamHeaderNames: string[] = [];
  let endedBeforeAnswer: Ended | null = null;
  /** The service's answer once it came: let go when the client's side ends first. */
  let upstreamAnswer: Readable | null = null;
  let finalTimer: NodeJS.Timeout | null = null;
  const answerEnded = () => {
    const ended = endedBeforeAnswer ?? session.ended;
    if (replied || reply.raw.destroyed) return;
    replied = true;
    dropUpload();
    sendProblem(reply, errors.sessionEnded('ended', ended?.reason ?? null, ended ? iso(ended.at) : null), upstreamHeaderNames);
  };
  /** A paid answer's commit is on its way: a cut or a refusal waits for it (charged, the answer goes). */
  let committing = false;
  let cutAfterCommit: Ended | null = null;
  const refuse = () => {
    // The commit's outcome decides: charged, the answer goes; not, it refuses then.
    if (committing) return;
    cut = true;
    if (finalTimer) clearTimeout(finalTimer);
    void charge.settle(false);
    answerEnded();
  };
  // Ended at a limit while paid: its answer may still come whole, within FINAL_ANSWER_MS of the edge learning of the end.
  const awaitFinalAnswer = (ended: Ended) => {
    endedBeforeAnswer ??= ended;
    finalTimer ??= setTimeout(refuse, FINAL_ANSWER_MS);
  };
  if (session.ended) awaitFinalAnswer(session.ended);
  const connection: Connection = {
    cut(ended: Ended) {
      if (committing) {
        cutAfterCommit ??= ended;
        return;
      }
      if (streaming) {
        // Sent whole already (it may still be on its way to a slow client): nothing to cut.
        if (reply.raw.writableEnded) return;
        cut = true;
        void charge.settle(false);
        breakOff(reply.raw);
      } else if (waits(ended)) {
        awaitFinalAnswer(ended);
      } else {
        endedBeforeAnswer ??= ended;
        refuse();
      }
    },
    drop() {
      cut = true;
      if (finalTimer) clearTimeout(finalTimer);
      void charge.settle(false);
      reply.raw.destroy();
    },
  };
  session.connections.add(connection);
  reply.raw.once('close', () => {
    session.connections.delete(connection);
    if (finalTimer) clearTimeout(finalTimer);
    // Gone before the service answered: nothing was delivered (a no-op once settled).
    void charge.settle(false);
    // A service's answer not read to its end (the client gone, a cut, a stall) frees its connection.
    if (upstreamAnswer && !upstreamAnswer.readableEnded) discard(upstreamAnswer);
  });
  /**
   * A paid answer goes out only once its unit's commit was taken, and one whose commit was taken
   * goes out (a cut that came meanwhile then cuts it as any started answer): nothing is charged
   * that is not sent, nothing sent that is not charged. A client already gone is not charged.
   */
  const commitThen = (deliver: () => void, abandon: () => void) => {
    if (cut || replied || reply.raw.destroyed || request.raw.socket.destroyed) {
      void charge.settle(false);
      abandon();
      return;
    }
    committing = true;
    void charge.settle(true).then((charged) => {
      committing = false;
      if (!charged || reply.raw.destroyed) {
        abandon();
        if (!charged) refuse();
        return;
      }
      if (finalTimer) clearTimeout(finalTimer);
      deliver();
      if (cutAfterCommit) connection.cut(cutAfterCommit);
    });
  };
  const sendWhole = (body: Buffer) => {
    const deliver = () => {
      if (replied || reply.raw.destroyed) return;
      replied = true;
      session.traffic.add('bytesOut', body.length);
      reply.send(body);
    };
    if (!charge.paid) {
      // Priced by time: nothing to wait for (the edge's common case, in one write).
      if (!cut) deliver();
      return;
    }
    commitThen(deliver, noop);
  };
  const signed = edge.signedHeaders(pass, request.method);
  return reply.from(`${pass.origin}${pass.path}`, {
    queryString: () => pass.query,
    // Retrying is the client's decision (and a 503's Retry-After is the upstream's word to it).
    retryDelay: () => null,
    rewriteRequestHeaders: (_request, headers) =>
      addForwarding(headers as IncomingHttpHeaders, request.headers, { ip: request.ip, protocol: request.protocol, host: request.host, forwardedFor: forwardedForOf(request.ips ?? [request.ip]) }, signed) as typeof headers,
    rewriteHeaders: (headers) => confineAnswerCookies(withoutHopByHop(headers as IncomingHttpHeaders), pass.sessionPath),
    onResponse: (_request, replyTo, res) => {
      const { stream, headers } = res as unknown as { stream: Readable; headers: IncomingHttpHeaders };
      if (cut || replied || reply.raw.destroyed) {
        discard(stream);
        return;
      }
      upstreamAnswer = stream;
      upstreamHeaderNames = Object.keys(withoutHopByHop(headers));
      const length = Number(headers['content-length']);
      const eventStream = String(headers['content-type']).startsWith('text/event-stream');
      if (endedBeforeAnswer) {
        // Past the end only a whole answer goes out: a stream, or more than a final answer may be, is refused.
        if (eventStream || length > SMALL_ANSWER_BYTES) {
          discard(stream);
          refuse();
          return;
        }
        collectWhole(stream, SMALL_ANSWER_BYTES, FINAL_ANSWER_MS, (error, body) => (error || !body ? refuse() : sendWhole(body)));
        return;
      }
      // A small answer of known length goes out in one write with its headers; anything else streams.
      if (length <= SMALL_ANSWER_BYTES && !eventStream) {
        collect(stream, (error, body) => {
          if (error || !body) {
            // Broken off before any of it went: the client is told so (502), not left with nothing.
            cut = true;
            void charge.settle(false);
            if (!replied && !replyTo.raw.destroyed) {
              replied = true;
              dropUpload();
              sendProblem(replyTo, errors.upstreamUnavailable('the answer broke off'), upstreamHeaderNames);
            }
            return;
          }
          sendWhole(body);
        });
        return;
      }
      // A stream's unit is charged as it starts (before its first byte goes).
      const start = () => {
        streaming = true;
        replied = true;
        const counted = new ByteCounter();
        counted.onBytes = (bytes) => session.traffic.add('bytesOut', bytes);
        pipeline(stream, counted, noop);
        replyTo.send(counted);
      };
      if (charge.paid) commitThen(start, () => discard(stream));
      else start();
    },
    onError: (replyTo, { error }) => {
      if (finalTimer) clearTimeout(finalTimer);
      void charge.settle(false);
      if (cut || replied) return;
      if (endedBeforeAnswer) return refuse();
      replied = true;
      request.log.warn({ sessionId: session.sessionId, err: error.message }, 'upstream did not answer');
      dropUpload();
      replyTo.send(errors.upstreamUnavailable((error as { code?: string }).code ?? error.message));
    },
  });
}
