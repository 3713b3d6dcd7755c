import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Agent, request as undiciRequest } from 'undici';
import type { Sql } from '../db/sql.js';
import { type AppError, errors } from '../errors.js';
import { clientGone } from '../http/client-gone.js';
import type { NodeAddress, Ownership } from './ownership.js';

export interface ForwardingDeps {
  nodeId: string;
  ownership: Ownership;
  sql: Sql;
  /** The server a service runs on (the catalogue). */
  serverOfService(serviceId: string): string | null | Promise<string | null>;
  /** The longest a forwarded request may take (HTTP_HANDLER_TIMEOUT_MS: an open may queue for a seat). */
  timeoutMs: number;
}

/** Set on a forwarded request: the owner answers it or says the server is moving, never forwards again. */
export const FORWARDED_BY = 'x-tollgate-forwarded-by';
/** Where the client reached the node that forwarded a request (its scheme and host): what addresses in the answer use. */
export const FORWARDED_ORIGIN = 'x-tollgate-forwarded-origin';

/** Routes whose session (`:id`) decides which node answers: the API's, and the web site's forms. */
const SESSION_ROUTES = new Set([
  '/v1/sessions/:id',
  '/v1/sessions/:id/extend',
  '/v1/sessions/:id/logoff',
  '/v1/ops/sessions/:id',
  // The rescues, one route each (operator-api.ts).
  '/v1/ops/sessions/:id/terminate',
  '/v1/ops/sessions/:id/retry',
  '/v1/ops/sessions/:id/void',
  '/sessions/:id/extend',
  '/sessions/:id/logoff',
  '/ops/sessions/:id/:action',
]);
/**
 * The metering API's calls about one session (`sessionId` in the body): a use is booked by the
 * actor that runs the session. A batch may name sessions of several servers: its handler sends
 * each run of operations to the node that runs them (`placeOf`, `relay`).
 */
const METERING_ROUTES = new Set(['/v1/metering/query', '/v1/metering/commit', '/v1/metering/release']);
/** Opens, whose service decides: the API's (`serviceId` in the body) and the web site's form (`:id`). */
const OPEN_ROUTES = { api: '/v1/sessions', form: '/services/:id/open' };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Headers of one hop, not passed on (RFC 9110 §7.6.1), and those the forwarder sets itself. */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-connection', 'host', 'content-length', 'expect']);
const SERVER_CACHE_LIMIT = 100_000;
/** Errors of a request that never left this node: no connection to the owner was made. */
const NOT_SENT = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/**
 * What a failed forward answers: never sent (no connection made), ask again; sent and not
 * answered, the owner may have carried it out. `error` is undici's, or a wrapper whose cause it is.
 */
export function forwardFailure(error: unknown): AppError {
  const { code, cause } = error as { code?: string; cause?: { code?: string } };
  return NOT_SENT.has(cause?.code ?? code ?? '') ? errors.serverMoving() : errors.ownerUnanswered();
}

/** A session's answer comes from this node, from another (its address), or from none for now. */
export type Place = 'here' | 'moving' | NodeAddress;

/** An answer from another node, as it came. */
export interface Relayed {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/**
 * Any node answers (issue 17): a command or a read of a session whose server another node owns
 * is forwarded to that node, with its headers (the bearer token or the web site's cookies, the
 * Idempotency-Key) and body, and its answer handed back as it came. It runs before the routes' own
 * hooks that write (the Idempotency-Key's claim) or check (the forms' CSRF token), so the owner is
 * the one that claims, checks and answers; the routes' authentication runs on both nodes. A server
 * whose owner is unknown, moving, or out of reach gets 503 SERVER_MOVING with Retry-After:
 * retrying with the same Idempotency-Key is safe; a request the owner took and whose answer
 * was lost gets 502 OWNER_UNANSWERED (it may have been carried out).
 *
 * Forwarding is done with undici (a dependency already) rather than @fastify/reply-from: the edge
 * registers reply-from in its own scope, and a second registration at the root would clash over
 * the `reply.from` decorator; these answers are small JSON bodies and pages, read whole.
 */
export class Forwarder {
  private readonly agent: Agent;
  // A session never changes server: its server is read once.
  private readonly sessionServers = new Map<string, string>();

  constructor(private readonly deps: ForwardingDeps) {
    this.agent = new Agent({ keepAliveTimeout: 10_000, headersTimeout: deps.timeoutMs, bodyTimeout: deps.timeoutMs });
  }

  /** The forwarding hook, before every route registered after it. */
  register(app: FastifyInstance): void {
    app.addHook('preValidation', async (request, reply) => {
      const serverId = await this.serverOf(request);
      if (serverId === null || this.deps.ownership.serves(serverId)) return;
      const owner = this.deps.ownership.ownerOf(serverId);
      if (request.headers[FORWARDED_BY] !== undefined || owner === null || owner.nodeId === this.deps.nodeId) throw errors.serverMoving();
      await this.forward(request, reply, owner);
      return reply;
    });
    app.addHook('onClose', async () => {
      await this.agent.close();
    });
  }

  /**
   * Where the session's commands are answered: here (this node runs it, or no session has this
   * id: the answer is "not found" anywhere), on its owner, or nowhere for now (its server is
   * moving, or the request was forwarded here already and must not go round again).
   */
  async placeOf(sessionId: string, forwarded: boolean): Promise<Place> {
    const serverId = UUID.test(sessionId) ? await this.serverOfSession(sessionId) : null;
    if (serverId === null || this.deps.ownership.serves(serverId)) return 'here';
    const owner = this.deps.ownership.ownerOf(serverId);
    return forwarded || owner === null || owner.nodeId === this.deps.nodeId ? 'moving' : owner;
  }

  /**
   * One request to `owner`, marked forwarded; SERVER_MOVING when it cannot be reached, OWNER_UNANSWERED
   * when it was sent and no answer came (the owner may have carried it out). `signal`
   * drops the request when the client that asked went away, so the owner sees it go too (an open
   * still waiting for a seat or a card is then abandoned there, as it would be here).
   */
  async relay(request: FastifyRequest, owner: NodeAddress, url: string, body: unknown, signal?: AbortSignal): Promise<Relayed> {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name)) continue;
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    headers[FORWARDED_BY] = this.deps.nodeId;
    headers[FORWARDED_ORIGIN] = clientOrigin(request);
    const hasBody = body !== undefined && body !== null;
    if (!hasBody) delete headers['content-type'];
    try {
      const answer = await undiciRequest(`${owner.url}${url}`, {
        dispatcher: this.agent,
        method: request.method as 'GET' | 'POST' | 'PATCH' | 'DELETE',
        headers,
        ...(hasBody ? { body: encoded(body, headers['content-type']) } : {}),
        ...(signal ? { signal } : {}),
      });
      return { statusCode: answer.statusCode, headers: answer.headers, body: Buffer.from(await answer.body.arrayBuffer()) };
    } catch (error) {
      if (!signal?.aborted) request.log.warn({ owner: owner.nodeId, err: String(error) }, 'could not forward a request to the owner of its server');
      // Never sent (no connection): safe to ask again. Sent, with no answer: it may have been done.
      throw forwardFailure(error);
    }
  }

  private async serverOfSession(sessionId: string): Promise<string | null> {
    const known = this.sessionServers.get(sessionId);
    if (known) return known;
    const [row] = await this.deps.sql<{ serverId: string }[]>`select server_id as "serverId" from sessions where id = ${sessionId}`;
    if (!row) return null;
    if (this.sessionServers.size >= SERVER_CACHE_LIMIT) this.sessionServers.clear();
    this.sessionServers.set(sessionId, row.serverId);
    return row.serverId;
  }

  private async serverOf(request: FastifyRequest): Promise<string | null> {
    const route = request.routeOptions.url;
    if (route === undefined) return null;
    if (request.method === 'POST' && (route === OPEN_ROUTES.api || route === OPEN_ROUTES.form)) {
      const serviceId =
        route === OPEN_ROUTES.api ? (request.body as { serviceId?: unknown } | null | undefined)?.serviceId : (request.params as { id?: unknown }).id;
      return typeof serviceId === 'string' && UUID.test(serviceId) ? this.deps.serverOfService(serviceId) : null;
    }
    // The session is named in the path (`:id`), or in the body for the metering API.
    const id = SESSION_ROUTES.has(route)
      ? (request.params as { id?: unknown }).id
      : METERING_ROUTES.has(route)
        ? (request.body as { sessionId?: unknown } | null | undefined)?.sessionId
        : undefined;
    return typeof id === 'string' && UUID.test(id) ? this.serverOfSession(id) : null;
  }

  private async forward(request: FastifyRequest, reply: FastifyReply, owner: NodeAddress): Promise<void> {
    const answer = await this.relay(request, owner, request.url, request.body, clientGone(reply));
    reply.code(answer.statusCode);
    for (const [name, value] of Object.entries(answer.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name)) continue;
      reply.header(name, value);
    }
    reply.header('x-tollgate-answered-by', owner.nodeId);
    await reply.send(answer.body);
  }
}

/** A parsed body as it is sent on: a form's fields as a form (the web site's), anything else as JSON. */
function encoded(body: unknown, contentType: string | undefined): string {
  if (!contentType?.toLowerCase().startsWith('application/x-www-form-urlencoded')) return JSON.stringify(body);
  const form = new URLSearchParams();
  for (const [name, value] of Object.entries(body as Record<string, unknown>)) {
    for (const one of [value].flat()) form.append(name, String(one));
  }
  return form.toString();
}

/**
 * Where the client reached tollgate: scheme and host of its request, or, for a request another
 * node forwarded, of the request that node took (an outside probe's access.url named the owner
 * node, which refused connections while it was down, instead of the address the client used).
 */
export function clientOrigin(request: FastifyRequest): string {
  const forwarded = request.headers[FORWARDED_BY] !== undefined ? request.headers[FORWARDED_ORIGIN] : undefined;
  if (typeof forwarded === 'string' && /^https?:\/\/[A-Za-z0-9.\-:[\]]+$/.test(forwarded)) return forwarded;
  return `${request.protocol}://${request.host}`;
}
