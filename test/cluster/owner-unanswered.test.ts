import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { freePort } from '../../src/db/free-port.js';
import { createService, signUp } from '../helpers/customers.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../edge/upstream.js';

/**
 * A request forwarded to the node that runs a session, from that node's point of view gone
 * wrong in the two ways that matter to a customer: it never reached the owner (ask again:
 * 503 SERVER_MOVING), or it reached the owner and the answer was lost (the owner may have
 * carried it out, a use may have been charged: 502 OWNER_UNANSWERED, look before asking again).
 * The owner here is a stand-in registered as a live node: it takes each request and hangs up
 * without answering, then stops listening.
 */
let db: TestDatabase;
let a: TestTollgate;
let upstream: Awaited<ReturnType<typeof startUpstream>>;

/** A "node" that reads what it is sent and hangs up; `requests` counts what reached it. */
async function hangingUpNode() {
  const sockets = new Set<Socket>();
  let requests = 0;
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.once('data', () => {
      requests++;
      socket.destroy();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function until(what: string, done: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const began = Date.now();
  while (!(await done())) {
    if (Date.now() - began > timeoutMs) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(50);
  }
}

/** What a WebSocket upgrade was answered when it was refused. */
function refusedUpgrade(url: string): Promise<{ status: number; code: string }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.once('open', () => reject(new Error('the upgrade was accepted')));
    socket.once('error', (error) => reject(error));
    socket.once('unexpected-response', (_request, response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.once('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { code: string };
        resolve({ status: response.statusCode ?? 0, code: body.code });
        socket.terminate();
      });
    });
  });
}

beforeAll(async () => {
  db = await createTestDatabase();
  upstream = await startUpstream();
  const port = await freePort();
  a = await startTestTollgate({
    db,
    env: { TOLLGATE_SEED_DEMO: 'false', HOST: '127.0.0.1', PORT: String(port), CLUSTER_NODE_ID: 'node-a', CLUSTER_LEASE_MS: '3000' },
  });
  await a.app.listen({ port, host: '127.0.0.1' });
});

afterAll(async () => {
  await a?.close();
  await upstream?.close();
  await db?.drop();
});

it('answers 502 OWNER_UNANSWERED when the owner took a forwarded request and its answer was lost, 503 SERVER_MOVING when it was never reached', async () => {
  const ops = { authorization: `Bearer ${a.adminToken}`, 'content-type': 'application/json' };
  const { serviceId } = await createService(a.app, a.adminToken, { pricePerMinute: '0.60' });
  const [row] = await db.sql<{ serverId: string }[]>`select server_id as "serverId" from services where id = ${serviceId}`;
  const serverId = row!.serverId;
  await until('node-a runs the server', () => a.leases!.serves(serverId));
  // Priced per request: every request and WebSocket must be charged by the node running the session.
  const patched = await a.app.inject({
    method: 'PATCH',
    url: `/v1/services/${serviceId}`,
    headers: ops,
    payload: { upstreamUrl: upstream.url, tariff: { perUse: { unit: 'request', price: '0.10' } } },
  });
  expect(patched.statusCode, patched.body).toBe(200);
  const customer = await signUp(a.app, { outstandingLimit: '100.00' });
  const opened = await a.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '5.00' } });
  expect(opened.statusCode, opened.body).toBe(201);
  const session = opened.json() as { id: string; access: { token: string } };

  // The server passes to another node, which takes what it is sent and never answers.
  const gone = await hangingUpNode();
  await db.sql`
    insert into nodes (node_id, url, started_at, heartbeat_at, expires_at)
    values ('node-gone', ${gone.url}, now(), now(), now() + interval '1 hour')`;
  await db.sql`update server_leases set node_id = 'node-gone', epoch = epoch + 1, acquired_at = now() where server_id = ${serverId}`;
  await until('node-a knows node-gone runs the server', () => !a.leases!.serves(serverId) && a.leases!.ownerOf(serverId)?.nodeId === 'node-gone');

  const origin = a.app.listeningOrigin;
  const answerOf = async (response: Response) => ({ status: response.status, code: ((await response.json()) as { code: string }).code });
  /** What the edge's HTTP forward, its WebSocket relay and the API's forward (a logoff) answer, in turn. */
  const forwarded = async () => [
    await answerOf(await fetch(`${origin}/edge/${session.id}/json`, { headers: { authorization: `Bearer ${session.access.token}` } })),
    await refusedUpgrade(`${origin.replace('http', 'ws')}/edge/${session.id}/chat?access_token=${session.access.token}`),
    await answerOf(await fetch(`${origin}/v1/sessions/${session.id}/logoff`, { method: 'POST', headers: customer.auth })),
  ];

  expect(await forwarded()).toEqual(Array(3).fill({ status: 502, code: 'OWNER_UNANSWERED' }));
  // Each of the three was sent to the owner; none reached the service from node-a.
  expect(gone.requests()).toBe(3);
  expect(upstream.seen.filter((seen) => seen.headers['tollgate-session-id'] === session.id)).toHaveLength(0);

  // The owner no longer listens: nothing is sent, and asking again is safe.
  await gone.close();
  expect(await forwarded()).toEqual(Array(3).fill({ status: 503, code: 'SERVER_MOVING' }));
  expect(gone.requests()).toBe(3);
});
