import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Agent, request as undiciRequest } from 'undici';
import type { Sql } from '../db/sql.js';
import { errors } from '../errors.js';
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

/** Routes whose session (`:id`) decides which node answers. */
const SESSION_ROUTES = new Set(['/v1/sessions/:id', '/v1/sessions/:id/extend', '/v1/sessions/:id/logoff', '/v1/ops/sessions/:id', '/v1/ops/sessions/:id/:action']);
/**
 * The metering API's calls about one session (`sessionId` in the body): a use is booked by the
 * actor that runs the session. A batch may name sessions of several servers and is answered
 * where it lands.
 */
const METERING_ROUTES = new Set(['/v1/metering/query', '/v1/metering/commit', '/v1/metering/release']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Headers of one hop, not passed on (RFC 9110 §7.6.1), and those the forwarder sets itself. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-connection', 'host', 'content-length', 'expect']);
const SERVER_CACHE_LIMIT = 100_000;

/**
 * Any node answers (issue 17): a command or a read of a session whose server another node owns
 * is forwarded to that node, with its headers (the bearer token, the Idempotency-Key) and body,
 * and its answer handed back as it came. It runs before the routes' own hooks that write
 * (the Idempotency-Key's claim), so the owner is the one that claims and answers; the routes'
 * authentication runs on both nodes. A server whose owner is unknown, moving, or out of reach
 * gets 503 SERVER_MOVING with Retry-After: retrying with the same Idempotency-Key is safe.
 *
 * Forwarding is done with undici (a dependency already) rather than @fastify/reply-from: the edge
 * registers reply-from in its own scope, and a second registration at the root would clash over
 * the `reply.from` decorator; these answers are small JSON bodies, read whole.
 */
export function registerForwarding(app: FastifyInstance, deps: ForwardingDeps): void {
  const agent = new Agent({ keepAliveTimeout: 10_000, headersTimeout: deps.timeoutMs, bodyTimeout: deps.timeoutMs });
  // A session never changes server: its server is read once.
  const sessionServers = new Map<string, string>();

  async function serverOfSession(sessionId: string): Promise<string | null> {
    const known = sessionServers.get(sessionId);
    if (known) return known;
    const [row] = await deps.sql<{ serverId: string }[]>`select server_id as "serverId" from sessions where id = ${sessionId}`;
    if (!row) return null;
    if (sessionServers.size >= SERVER_CACHE_LIMIT) sessionServers.clear();
    sessionServers.set(sessionId, row.serverId);
    return row.serverId;
  }

  async function serverOf(request: FastifyRequest): Promise<string | null> {
    const route = request.routeOptions.url;
    if (route === '/v1/sessions' && request.method === 'POST') {
      const serviceId = (request.body as { serviceId?: unknown } | null | undefined)?.serviceId;
      return typeof serviceId === 'string' && UUID.test(serviceId) ? deps.serverOfService(serviceId) : null;
    }
    if (route === undefined) return null;
    // The session is named in the path (`:id`), or in the body for the metering API.
    const id = SESSION_ROUTES.has(route)
      ? (request.params as { id?: unknown }).id
      : METERING_ROUTES.has(route)
        ? (request.body as { sessionId?: unknown } | null | undefined)?.sessionId
        : undefined;
    return typeof id === 'string' && UUID.test(id) ? serverOfSession(id) : null;
  }

  app.addHook('preValidation', async (request, reply) => {
    const serverId = await serverOf(request);
    if (serverId === null || deps.ownership.serves(serverId)) return;
    const owner = deps.ownership.ownerOf(serverId);
    if (request.headers[FORWARDED_BY] !== undefined || owner === null || owner.nodeId === deps.nodeId) throw errors.serverMoving();
    await forward(request, reply, owner);
    return reply;
  });
  app.addHook('onClose', async () => {
    await agent.close();
  });

  async function forward(request: FastifyRequest, reply: FastifyReply, owner: NodeAddress): Promise<void> {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name)) continue;
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    headers[FORWARDED_BY] = deps.nodeId;
    const hasBody = request.body !== undefined && request.body !== null;
    if (!hasBody) delete headers['content-type'];
    let answer;
    try {
      answer = await undiciRequest(`${owner.url}${request.url}`, {
        dispatcher: agent,
        method: request.method as 'GET' | 'POST' | 'PATCH' | 'DELETE',
        headers,
        ...(hasBody ? { body: JSON.stringify(request.body) } : {}),
      });
    } catch (error) {
      request.log.warn({ owner: owner.nodeId, err: String(error) }, 'could not forward a request to the owner of its server');
      throw errors.serverMoving();
    }
    const body = Buffer.from(await answer.body.arrayBuffer());
    reply.code(answer.statusCode);
    for (const [name, value] of Object.entries(answer.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name)) continue;
      reply.header(name, value);
    }
    reply.header('x-tollgate-answered-by', owner.nodeId);
    await reply.send(body);
  }
}
