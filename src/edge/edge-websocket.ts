import type { IncomingMessage, Server } from 'node:http';
import { finished, type Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { FORWARDED_BY, forwardFailure, HOP_BY_HOP } from '../cluster/forwarding.js';
import { AppError, errors } from '../errors.js';
import { problemBodyOf, problemOnSocket, type ProblemBody } from '../problem-document.js';
import type { Logger } from '../logger.js';
import type { NodeAddress } from '../cluster/ownership.js';
import { EDGE_PREFIX, type Charge, type Edge, type Pass } from './edge.js';
import type { ClientAddress } from './client-address.js';
import { forwardedHeaders } from './proxying.js';
import type { Connection, Ended } from './live-sessions.js';

/** The close code a WebSocket gets when its session ends (4000-4999: the application's own; 402 as in HTTP). */
export const SESSION_ENDED_CLOSE = 4402;
/** How long a client may take to answer a close before its socket is destroyed. */
const CLOSE_GRACE_MS = 1000;

/** An answer on a socket that asked to upgrade: the same problem+json as any HTTP answer. */
const refuse = problemOnSocket;

/** A close code another peer may be sent (1005, 1006 and 1015 are never sent on the wire). */
const sendable = (code: number) => (code >= 1000 && code <= 1014 && ![1004, 1005, 1006].includes(code)) || (code >= 3000 && code <= 4999);

/**
 * The edge's WebSocket side: an upgrade to `/edge/<sessionId>/*` is checked like any request,
 * then the edge dials the upstream (ws:// or wss:// at the service's URL, with the signed
 * headers) and accepts the client only once the upstream accepted, so a refused upstream is a
 * 502 rather than an open socket that closes at once. Messages are relayed both ways as they
 * are (text or binary). At the session's end the client is closed with 4402 and the reason.
 *
 * A WebSocket to a service priced per request whose session another node runs is charged by that
 * node: this edge dials the owner's edge instead of the service (the owner charges the upgrade,
 * dials the service and relays), relays between the two, and still cuts the client at the
 * session's end itself (DESIGN rule 15: every node that carries a session's traffic cuts it).
 */
export function attachEdgeWebSockets(server: Server, edge: Edge, log: Logger, clientAddress: (request: IncomingMessage) => ClientAddress): { close(): void } {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    if (!request.url?.startsWith(EDGE_PREFIX)) {
      refuse(socket, 400, { code: 'NO_UPGRADE_HERE', detail: 'Only /edge/ takes WebSocket upgrades.' });
      return;
    }
    // Checked before anything is charged: a handshake the WebSocket server would refuse (an h2c
    // upgrade, a missing key) is refused here, free.
    const handshake = handshakeProblem(request);
    if (handshake) {
      refuse(socket, 400, { code: 'BAD_UPGRADE', detail: handshake });
      return;
    }
    edge
      .admit(request)
      .then(async (pass) => {
        const charge = await edge.charge(pass, { stream: true });
        return charge === 'owner' ? { pass, owner: ownerOf(edge, pass, request), charge: null } : { pass, owner: null, charge };
      })
      .then(
        ({ pass, owner, charge }) => dialUpstream(wss, edge, log, pass, request, socket, head, owner, charge, clientAddress),
        (error: unknown) => {
          if (error instanceof AppError) refuse(socket, error.status, problemBodyOf(error));
          else {
            log.error({ err: error }, 'edge upgrade failed');
            refuse(socket, 503, { code: 'INTERNAL_ERROR', detail: 'The upgrade could not be checked.' });
          }
        },
      )
      .catch((error: unknown) => {
        // A fault of tollgate's own while dialling: this upgrade is broken off, the process goes on.
        log.error({ err: error }, 'edge upgrade failed');
        socket.destroy();
      });
  };
  server.on('upgrade', onUpgrade);
  return {
    close() {
      server.off('upgrade', onUpgrade);
      wss.close();
    },
  };
}

/** Why a WebSocket handshake is not one (RFC 6455 §4.2.1), or null: ws's own checks, made before the charge. */
function handshakeProblem(request: IncomingMessage): string | null {
  if (request.method !== 'GET') return 'A WebSocket handshake is a GET.';
  if (request.headers.upgrade?.toLowerCase() !== 'websocket') return 'Only WebSocket upgrades are taken here (for HTTP/2, use TLS and ALPN; plain HTTP is HTTP/1.1).';
  const key = request.headers['sec-websocket-key'];
  if (!key || !/^[+/0-9A-Za-z]{22}==$/.test(key)) return 'Sec-WebSocket-Key is missing or not 16 bytes in base64.';
  if (request.headers['sec-websocket-version'] !== '13' && request.headers['sec-websocket-version'] !== '8') return 'Sec-WebSocket-Version must be 13.';
  const protocols = request.headers['sec-websocket-protocol'];
  if (protocols !== undefined && subprotocolsOf(protocols) === null) {
    return 'Sec-WebSocket-Protocol must list distinct subprotocol names (tokens), separated by commas.';
  }
  return null;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * The subprotocols a client asks for (RFC 6455 §4.1: distinct tokens, comma-separated), or null
 * when the header is not such a list: ws's server refuses one, and its client throws on one.
 */
export function subprotocolsOf(header: string): string[] | null {
  // Only spaces and tabs surround a name (ws's own parser refuses any other white space).
  const names = header.split(',').map((name) => name.replace(/^[ \t]+|[ \t]+$/g, ''));
  if (names.some((name) => !TOKEN.test(name)) || new Set(names).size !== names.length) return null;
  return names;
}

/** The node that runs the session, for a WebSocket that must be charged there; never forwarded twice. */
function ownerOf(edge: Edge, pass: Pass, request: IncomingMessage): NodeAddress {
  const owner = edge.ownerOf(pass);
  if (!owner || request.headers[FORWARDED_BY] !== undefined) throw errors.serverMoving();
  return owner;
}

/** The handshake's own headers, which the dialling client sets again, and the hop's; the rest goes to the owner as it came. */
const NOT_PASSED_ON = new Set([...HOP_BY_HOP, 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol']);

/**
 * A paid WebSocket (a service priced per request) is charged once the client is connected to
 * its service; refused, unreachable or given up before, its unit goes back.
 */
function dialUpstream(
  wss: WebSocketServer,
  edge: Edge,
  log: Logger,
  pass: Pass,
  request: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  owner: NodeAddress | null,
  charge: Charge | null,
  clientAddress: (request: IncomingMessage) => ClientAddress,
): void {
  let upstream: WebSocket;
  try {
    const target = owner
      ? `${owner.url.replace(/^http/, 'ws')}${request.url}`
      : `${pass.origin.replace(/^http/, 'ws')}${pass.path}${pass.query ? `?${pass.query}` : ''}`;
    // Checked before the charge (handshakeProblem): a list here is one.
    const protocols = subprotocolsOf(request.headers['sec-websocket-protocol'] ?? '') ?? [];
    const headers: Record<string, string> = owner
      ? { [FORWARDED_BY]: edge.nodeId }
      : { ...forwardedHeaders(clientAddress(request)), ...edge.signedHeaders(pass, 'GET') };
    if (owner) {
      for (const [name, value] of Object.entries(request.headers)) {
        if (value !== undefined && !NOT_PASSED_ON.has(name)) headers[name] = Array.isArray(value) ? value.join(', ') : value;
      }
    }
    upstream = new WebSocket(target, protocols, { headers, perMessageDeflate: false, handshakeTimeout: 10_000 });
  } catch (error) {
    // Thrown here, it would reject the upgrade's promise, which ends the process.
    log.error({ err: error, sessionId: pass.session.sessionId }, 'the edge could not dial a WebSocket');
    charge?.settle(false);
    refuse(socket, 502, { code: 'UPSTREAM_UNAVAILABLE', detail: 'The service could not be dialled.' });
    return;
  }
  let accepted = false;
  const failed = (error: Error) => {
    if (accepted) return;
    accepted = true;
    charge?.settle(false);
    if (!owner) {
      refuse(socket, 502, { code: 'UPSTREAM_UNAVAILABLE', detail: `The service did not take the WebSocket (${error.message}).` });
      return;
    }
    // As the HTTP forwards: never reached, ask again (503); reached and its answer lost, the owner
    // may have charged the upgrade, and a blind retry would be charged again (502).
    const answer = forwardFailure(error);
    refuse(socket, answer.status, { ...problemBodyOf(answer), detail: `${answer.message} (${error.message})` });
  };
  upstream.once('unexpected-response', (_req, res) => {
    if (!owner) {
      failed(new Error(`HTTP ${res.statusCode}`));
      res.resume();
      upstream.terminate();
      return;
    }
    // The owner's refusal (402 at the limit, 401, 503) is the customer's answer, as it came (an
    // answer cut short is answered all the same: the client must not be left hanging).
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    finished(res, () => {
      upstream.terminate();
      if (accepted) return;
      accepted = true;
      charge?.settle(false);
      let body: ProblemBody;
      try {
        // The owner's own problem, passed on as it came.
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ProblemBody;
      } catch {
        body = { code: 'SERVER_MOVING', detail: `The node running this session answered HTTP ${res.statusCode}.` };
      }
      refuse(socket, res.statusCode ?? 503, body);
    });
  });
  upstream.once('error', failed);
  /** The client's side was handed to ws and the relay runs: the relay closes the upstream from then on. */
  let relaying = false;
  // The client gave up while the upstream was being dialled, or its handshake was refused at the
  // last step (by ws's own checks): nothing is left open for nobody.
  socket.once('close', () => {
    charge?.settle(false);
    accepted = true;
    if (!relaying) upstream.terminate();
  });
  upstream.once('open', () => {
    if (accepted) return;
    accepted = true;
    const session = pass.session;
    if (!socket.readable || !socket.writable) {
      charge?.settle(false);
      upstream.terminate();
      return;
    }
    // Cut while the upstream was being dialled (a paid one by its own unit, maybe): the customer
    // is told as any late request is, and its unit goes back (a socket cut at once serves nothing).
    if (session.ended) {
      charge?.settle(false);
      upstream.terminate();
      refuse(socket, 402, { code: 'SESSION_ENDED', detail: `The session is no longer active (${session.ended.reason}).`, endReason: session.ended.reason });
      return;
    }
    wss.handleUpgrade(request, socket, head, (client) => {
      relaying = true;
      charge?.settle(true);
      relay(client, upstream, pass, log, owner === null);
    });
  });
}

/** `counted`: this node meters the traffic (the owner does, for a WebSocket relayed to it). */
function relay(client: WebSocket, upstream: WebSocket, pass: Pass, log: Logger, counted: boolean): void {
  const { session } = pass;
  if (counted) session.traffic.add('requests');
  const connection: Connection = {
    counted,
    cut(ended: Ended) {
      client.close(SESSION_ENDED_CLOSE, `session ended: ${ended.reason}`.slice(0, 123));
      upstream.close(1000, 'session ended');
      setTimeout(() => {
        client.terminate();
        upstream.terminate();
      }, CLOSE_GRACE_MS).unref();
    },
    drop() {
      client.close(1001, 'tollgate is shutting down');
      upstream.terminate();
      setTimeout(() => client.terminate(), CLOSE_GRACE_MS).unref();
    },
  };
  session.connections.add(connection);
  const forward = (to: WebSocket, direction: 'bytesIn' | 'bytesOut') => (data: RawData, isBinary: boolean) => {
    const size = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : (data as Buffer | ArrayBuffer).byteLength;
    if (counted) session.traffic.add(direction, size);
    if (to.readyState === WebSocket.OPEN) to.send(data, { binary: isBinary });
  };
  client.on('message', forward(upstream, 'bytesIn'));
  upstream.on('message', forward(client, 'bytesOut'));
  const closeOther = (other: WebSocket, otherIsClient: boolean) => (code: number, reason: Buffer) => {
    session.connections.delete(connection);
    if (other.readyState === WebSocket.OPEN) {
      if (sendable(code)) other.close(code, reason.toString().slice(0, 123));
      // Closed with no code (1005): a normal close. Gone with no close at all (1006, 1015): to the
      // client the service failed behind its gateway (1014), to the service the client went away (1001).
      else if (code === 1005) other.close(1000);
      else if (otherIsClient) other.close(1014, 'the service went away');
      else other.close(1001, 'the client went away');
    } else if (other.readyState === WebSocket.CONNECTING) other.terminate();
  };
  client.on('close', closeOther(upstream, false));
  upstream.on('close', closeOther(client, true));
  const onError = (side: string) => (error: Error) => log.debug({ sessionId: session.sessionId, side, err: error.message }, 'edge WebSocket error');
  client.on('error', onError('client'));
  upstream.on('error', onError('upstream'));
}
