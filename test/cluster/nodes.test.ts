import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { freePort } from '../../src/db/free-port.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { createOperator } from '../helpers/operators.js';
import { WebClient } from '../helpers/web-client.js';
import { startUpstream } from '../edge/upstream.js';

/**
 * Two tollgate nodes in this process on one database, each listening on a loopback port: which
 * node runs what, requests forwarded to the owner, events heard across nodes, and a write from a
 * node that lost its lease refused by PostgreSQL before anything is sent to the card company.
 */
let db: TestDatabase;
let a: TestTollgate;
let b: TestTollgate;
const services: { serviceId: string; serverId: string }[] = [];

async function node(nodeId: string, leaseMs: number, adminToken?: string): Promise<TestTollgate> {
  const port = await freePort();
  const tollgate = await startTestTollgate({
    db,
    ...(adminToken ? { adminToken } : {}),
    env: {
      TOLLGATE_SEED_DEMO: 'false',
      HOST: '127.0.0.1',
      PORT: String(port),
      CLUSTER_NODE_ID: nodeId,
      CLUSTER_LEASE_MS: String(leaseMs),
    },
  });
  await tollgate.app.listen({ port, host: '127.0.0.1' });
  return tollgate;
}

async function until(what: string, done: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const began = Date.now();
  while (!(await done())) {
    if (Date.now() - began > timeoutMs) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(50);
  }
}

beforeAll(async () => {
  db = await createTestDatabase();
  a = await node('node-a', 1500);
  // Two servers, made before node-b starts: a node reads the catalogue as it starts.
  for (let i = 0; i < 2; i++) {
    const { serviceId } = await createService(a.app, a.adminToken, { pricePerMinute: '0.60' });
    const [row] = await db.sql<{ serverId: string }[]>`select server_id as "serverId" from services where id = ${serviceId}`;
    services.push({ serviceId, serverId: row!.serverId });
  }
  b = await node('node-b', 1500, a.adminToken);
  await until('one server each', () => a.leases!.leases().size === 1 && b.leases!.leases().size === 1 && [a, b].every((n) => services.some((s) => n.leases!.serves(s.serverId))));
  // and each knowing who owns the other's (a round behind, it answers 503 SERVER_MOVING instead of forwarding).
  const ownerOf = (serverId: string) => (a.leases!.serves(serverId) ? 'node-a' : 'node-b');
  await until('each node knows the owners', () => [a, b].every((n) => services.every((s) => n.leases!.ownerOf(s.serverId)?.nodeId === ownerOf(s.serverId))));
});

afterAll(async () => {
  await b?.close();
  await a?.close();
  await db?.drop();
});

/** A new credential of node-a's service priced per use, and a customer's session of it run by node-a. */
async function meteredSession(serviceId: string) {
  const issued = await a.app.inject({ method: 'POST', url: `/v1/services/${serviceId}/credential`, headers: { authorization: `Bearer ${a.adminToken}` } });
  expect(issued.statusCode, issued.body).toBe(201);
  const service = { authorization: `Bearer ${issued.json().credential as string}`, 'content-type': 'application/json' };
  const customer = await signUp(a.app, { outstandingLimit: '100.00' });
  const opened = await a.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '5.00' } });
  expect(opened.statusCode, opened.body).toBe(201);
  return { service, customer, sessionId: opened.json().id as string };
}

/** The units the session was charged for, as recorded once it is logged off. */
async function usesAfterLogoff(auth: Record<string, string>, sessionId: string): Promise<number> {
  const loggedOff = await a.app.inject({ method: 'POST', url: `/v1/sessions/${sessionId}/logoff`, headers: auth });
  expect(loggedOff.statusCode, loggedOff.body).toBe(200);
  const [row] = await db.sql<{ uses: number }[]>`select uses_units::float8 as uses from sessions where id = ${sessionId}`;
  return row!.uses;
}

/** node-b's service, priced per request with `upstream` behind it, and a customer's session of it that node-a's edge knows. */
async function pricedPerRequestOnB(upstream: string) {
  const onB = services.find((s) => b.leases!.serves(s.serverId))!;
  const patched = await fetch(`${b.app.listeningOrigin}/v1/services/${onB.serviceId}`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${a.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ upstreamUrl: `${upstream}/api`, tariff: { perUse: { unit: 'request', price: '0.10' } } }),
  });
  expect(patched.status).toBe(200);
  const customer = await signUp(b.app, { outstandingLimit: '100.00' });
  const opened = await b.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId: onB.serviceId, maxCharge: '5.00' } });
  expect(opened.statusCode, opened.body).toBe(201);
  const session = opened.json() as { id: string; access: { token: string } };
  await until('node-a’s edge holds the session', () => a.live.get(session.id) !== undefined);
  return { customer, session };
}

describe('two nodes', () => {
  it('answers on either node for a session whose server the other owns, and both edges hear of it', async () => {
    const customer = await signUp(b.app, { outstandingLimit: '100.00' });
    const onA = services.find((s) => a.leases!.serves(s.serverId))!;
    // Sent to node-b, run by node-a.
    const opened = await fetch(`${b.app.listeningOrigin}/v1/sessions`, {
      method: 'POST',
      headers: { ...customer.auth, 'content-type': 'application/json' },
      body: JSON.stringify({ serviceId: onA.serviceId, maxCharge: '5.00' }),
    });
    const session = (await opened.json()) as { id: string; state: string; access: { url: string } };
    expect(opened.status).toBe(201);
    expect(opened.headers.get('x-tollgate-answered-by')).toBe('node-a');
    expect(session.state).toBe('active');
    // Its access is where the client came, not the node that answered (which may be the one down).
    expect(session.access.url).toBe(`${b.app.listeningOrigin}/edge/${session.id}`);
    const viewed = await fetch(`${b.app.listeningOrigin}/v1/sessions/${session.id}`, { headers: customer.auth });
    expect(((await viewed.json()) as { access: { url: string } }).access.url).toBe(`${b.app.listeningOrigin}/edge/${session.id}`);
    expect(a.supervisor.has(session.id)).toBe(true);
    expect(b.supervisor.has(session.id)).toBe(false);
    // node-b's edge learns of it from node-a's commit (LISTEN/NOTIFY), so it can cut it too.
    await until('node-b’s edge holds the session', () => b.live.get(session.id) !== undefined);

    const loggedOff = await fetch(`${b.app.listeningOrigin}/v1/sessions/${session.id}/logoff`, { method: 'POST', headers: customer.auth });
    expect(loggedOff.status).toBe(200);
    expect(((await loggedOff.json()) as { state: string }).state).toBe('settled');
    await until('node-b’s edge ends its access', () => b.live.get(session.id)?.ended?.reason === 'logoff');
  });

  it('forwards the metering API’s calls about a session to the node that runs it', async () => {
    const onA = services.find((s) => a.leases!.serves(s.serverId))!;
    const ops = { authorization: `Bearer ${a.adminToken}` };
    const patched = await a.app.inject({ method: 'PATCH', url: `/v1/services/${onA.serviceId}`, headers: ops, payload: { tariff: { perUse: { unit: 'unit', price: '0.10' } } } });
    expect(patched.statusCode, patched.body).toBe(200);
    const { service, customer, sessionId } = await meteredSession(onA.serviceId);

    // The service reports its customer's uses to node-b, which does not run the session.
    const meter = (op: string, body: unknown) => fetch(`${b.app.listeningOrigin}/v1/metering/${op}`, { method: 'POST', headers: service, body: JSON.stringify(body) });
    const reserved = await meter('query', { sessionId, units: 3 });
    expect(reserved.status).toBe(200);
    expect(reserved.headers.get('x-tollgate-answered-by')).toBe('node-a');
    expect(await reserved.json()).toMatchObject({ reservationId: 'r1', reserved: '0.30', applied: true });
    const committed = await meter('commit', { sessionId, reservationId: 'r1', units: 2 });
    expect(committed.headers.get('x-tollgate-answered-by')).toBe('node-a');
    expect(await committed.json()).toMatchObject({ usedUnits: 2, used: '0.20', reserved: '0.00', applied: true });
    const second = (await (await meter('query', { sessionId, units: 1 })).json()) as { reservationId: string };
    const released = await meter('release', { sessionId, reservationId: second.reservationId });
    expect(await released.json()).toMatchObject({ usedUnits: 2, reserved: '0.00', applied: true });

    expect(await usesAfterLogoff(customer.auth, sessionId)).toBe(2);
  });

  it('answers a metering batch sent to a node not running its sessions through the node that does, in order', async () => {
    // The service priced per use by the test before.
    const onA = services.find((s) => a.leases!.serves(s.serverId))!;
    const { service, customer, sessionId } = await meteredSession(onA.serviceId);

    // To node-b: two uses of node-a's session around one of a session nobody has.
    const batch = await fetch(`${b.app.listeningOrigin}/v1/metering/batch`, {
      method: 'POST',
      headers: service,
      body: JSON.stringify({
        operations: [
          { op: 'query', sessionId, units: 4 },
          { op: 'query', sessionId: '00000000-0000-4000-8000-000000000000', units: 1 },
          { op: 'commit', sessionId, reservationId: 'r1', units: 3 },
        ],
      }),
    });
    expect(batch.status).toBe(200);
    const { results } = (await batch.json()) as { results: Record<string, unknown>[] };
    expect(results).toHaveLength(3);
    expect(results[0]).toMatchObject({ sessionId, reservationId: 'r1', state: 'active', reserved: '0.40', applied: true });
    expect(results[1]).toEqual({ error: expect.objectContaining({ status: 404, code: 'SESSION_NOT_FOUND' }) });
    expect(results[2]).toMatchObject({ sessionId, reservationId: 'r1', usedUnits: 3, used: '0.30', reserved: '0.00', applied: true });

    expect(await usesAfterLogoff(customer.auth, sessionId)).toBe(3);
  });

  it('forwards the web site’s open and logoff forms, and the console’s rescues, to the node that runs the session', async () => {
    const onA = services.find((s) => a.leases!.serves(s.serverId))!;
    const customer = await signUp(a.app, { outstandingLimit: '100.00' });
    // A browser whose every request reaches node-b.
    const web = new WebClient(b.app);
    await web.get('/login');
    expect((await web.post('/login', { email: customer.account.email, password: 'analytical engine' })).statusCode).toBe(303);
    await web.get(`/services/${onA.serviceId}/open`);
    const opened = await web.post(`/services/${onA.serviceId}/open`, { maxCharge: '5.00' });
    expect(opened.statusCode, opened.body).toBe(303);
    expect(opened.headers['x-tollgate-answered-by']).toBe('node-a');
    const id = /^\/sessions\/([0-9a-f-]{36})$/.exec(String(opened.headers.location))?.[1];
    expect(id).toBeDefined();
    expect(a.supervisor.has(id!)).toBe(true);

    expect((await web.get(`/sessions/${id}`)).statusCode).toBe(200);
    const loggedOff = await web.post(`/sessions/${id}/logoff`, {});
    expect(loggedOff.statusCode, loggedOff.body).toBe(303);
    expect(loggedOff.headers.location).toBe(`/sessions/${id}?done=loggedoff`);
    expect(loggedOff.headers['x-tollgate-answered-by']).toBe('node-a');
    const [row] = await db.sql<{ state: string }[]>`select state from sessions where id = ${id!}`;
    expect(row!.state).toBe('settled');

    // An operator's rescue from the console, reaching node-b, is run by node-a.
    const running = await a.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId: onA.serviceId, maxCharge: '5.00' } });
    expect(running.statusCode, running.body).toBe(201);
    const rescued = running.json().id as string;
    await createOperator(a.app, a.adminToken, { name: 'cluster-console', role: 'admin', password: 'a console password of some length' });
    const desk = new WebClient(b.app);
    await desk.get('/ops/login');
    expect((await desk.post('/ops/login', { name: 'cluster-console', password: 'a console password of some length' })).statusCode).toBe(303);
    await desk.get(`/ops/sessions/${rescued}`);
    const terminated = await desk.post(`/ops/sessions/${rescued}/terminate`, {});
    expect(terminated.statusCode, terminated.body).toBe(303);
    expect(terminated.headers.location).toBe(`/ops/sessions/${rescued}?done=terminate`);
    expect(terminated.headers['x-tollgate-answered-by']).toBe('node-a');
    const [ended] = await db.sql<{ state: string }[]>`select state from sessions where id = ${rescued}`;
    expect(ended!.state).toBe('settled');

    // And one through the ops API, reaching node-b.
    const another = await a.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId: onA.serviceId, maxCharge: '5.00' } });
    expect(another.statusCode, another.body).toBe(201);
    const byApi = await fetch(`${b.app.listeningOrigin}/v1/ops/sessions/${another.json().id}/terminate`, { method: 'POST', headers: { authorization: `Bearer ${a.adminToken}` } });
    expect(byApi.status, await byApi.clone().text()).toBe(200);
    expect(byApi.headers.get('x-tollgate-answered-by')).toBe('node-a');
    expect(((await byApi.json()) as { session: { state: string } }).session.state).toBe('settled');
  });

  it('a price and a cap changed on one node hold on the node that owns the server', async () => {
    const onA = services.find((s) => a.leases!.serves(s.serverId))!;
    const ops = { authorization: `Bearer ${a.adminToken}`, 'content-type': 'application/json' };
    // Changed through node-b, which does not run the server.
    const patched = await fetch(`${b.app.listeningOrigin}/v1/services/${onA.serviceId}`, { method: 'PATCH', headers: ops, body: JSON.stringify({ pricePerMinute: '0.90', maxUsers: 1 }) });
    expect(patched.status).toBe(200);
    const listed = async () => {
      const answer = await fetch(`${a.app.listeningOrigin}/v1/services`);
      return ((await answer.json()) as { services: { id: string; pricePerMinute: string }[] }).services.find((s) => s.id === onA.serviceId);
    };
    await until('node-a lists the new price', async () => (await listed())?.pricePerMinute === '0.90');

    const first = await signUp(a.app, { outstandingLimit: '100.00' });
    const opened = await a.app.inject({ method: 'POST', url: '/v1/sessions', headers: first.auth, payload: { serviceId: onA.serviceId, maxCharge: '5.00' } });
    expect(opened.statusCode, opened.body).toBe(201);
    expect(opened.json().pricePerMinute).toBe('0.90');
    // The service's one seat is taken: node-a admits nobody else.
    const second = await signUp(a.app, { outstandingLimit: '100.00' });
    const refused = await a.app.inject({ method: 'POST', url: '/v1/sessions', headers: second.auth, payload: { serviceId: onA.serviceId, maxCharge: '5.00' } });
    expect(refused.statusCode, refused.body).toBe(409);
    expect(refused.json().code).toBe('SERVICE_AT_CAPACITY');
    await a.app.inject({ method: 'POST', url: `/v1/sessions/${opened.json().id as string}/logoff`, headers: first.auth });
  });

  it('drops an open waiting for a seat on the owner when its client leaves the node that forwarded it', async () => {
    // The service of node-a has one seat since the test before.
    const onA = services.find((s) => a.leases!.serves(s.serverId))!;
    const first = await signUp(a.app, { outstandingLimit: '100.00' });
    const seated = await a.app.inject({ method: 'POST', url: '/v1/sessions', headers: first.auth, payload: { serviceId: onA.serviceId, maxCharge: '5.00' } });
    expect(seated.statusCode, seated.body).toBe(201);
    // A second customer asks node-b, waiting up to 20 s for the seat, then hangs up.
    const second = await signUp(a.app, { outstandingLimit: '100.00' });
    const hangUp = new AbortController();
    const waiting = fetch(`${b.app.listeningOrigin}/v1/sessions`, {
      method: 'POST',
      headers: { ...second.auth, 'content-type': 'application/json' },
      body: JSON.stringify({ serviceId: onA.serviceId, maxCharge: '5.00', waitSeconds: 20 }),
      signal: hangUp.signal,
    }).catch((error: unknown) => error);
    // How many wait for the service's seat on node-a, which runs it.
    const queued = async () => {
      const answer = await a.app.inject({ method: 'GET', url: '/v1/ops/servers', headers: { authorization: `Bearer ${a.adminToken}` } });
      const servers = answer.json().servers as { services: { id: string; queued: number }[] }[];
      return servers.flatMap((server) => server.services).find((service) => service.id === onA.serviceId)!.queued;
    };
    await until('node-a holds the second open in its queue', async () => (await queued()) === 1);
    hangUp.abort();
    expect(await waiting).toBeInstanceOf(Error);
    // Before the seat comes free, node-a gives the place up: nobody waits for that answer.
    await until('node-a gives the second open up', async () => (await queued()) === 0);
    const loggedOff = await a.app.inject({ method: 'POST', url: `/v1/sessions/${seated.json().id as string}/logoff`, headers: first.auth });
    expect(loggedOff.statusCode, loggedOff.body).toBe(200);
    const [row] = await db.sql<{ count: number }[]>`select count(*)::int as count from sessions where account_id = ${second.account.id} and state <> 'declined'`;
    expect(row!.count).toBe(0);
  });

  it('charges a request to a service priced per request that reaches the edge of a node not running its session', async () => {
    const upstream = await startUpstream();
    try {
      const { customer, session } = await pricedPerRequestOnB(upstream.url);

      // Through node-a's edge (haproxy spreads requests over the nodes), twice.
      for (let i = 1; i <= 2; i++) {
        const passed = await fetch(`${a.app.listeningOrigin}/edge/${session.id}/json`, { headers: { authorization: `Bearer ${session.access.token}` } });
        expect(passed.status).toBe(200);
        // Charged, proxied and answered by node-b, which runs the session.
        expect(passed.headers.get('x-tollgate-answered-by')).toBe('node-b');
        await passed.arrayBuffer();
        // Charged once node-b's service answered (the reserved unit committed as the answer goes).
        await expect.poll(async () => (await b.app.inject({ method: 'GET', url: `/v1/sessions/${session.id}`, headers: customer.auth })).json().uses).toEqual({ units: i, charge: `0.${i}0` });
      }
      expect(upstream.seen.filter((seen) => seen.headers['tollgate-session-id'] === session.id)).toHaveLength(2);

      // A WebSocket through node-a's edge: charged by node-b (one request), relayed through both.
      const socket = new WebSocket(`${a.app.listeningOrigin.replace('http', 'ws')}/edge/${session.id}/chat?access_token=${session.access.token}`);
      const closed = new Promise<number>((resolve) => socket.once('close', resolve));
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
      const echoed = new Promise<string>((resolve) => socket.once('message', (data) => resolve(String(data))));
      socket.send('hello');
      expect(await echoed).toBe('hello');
      await expect.poll(async () => (await b.app.inject({ method: 'GET', url: `/v1/sessions/${session.id}`, headers: customer.auth })).json().uses).toEqual({ units: 3, charge: '0.30' });
      await b.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth });
      // The session's end closes it on node-a too, with the session's close code.
      expect(await closed).toBe(4402);
      // node-b, which metered it, counts its requests and its cut; node-a, which relayed it, neither.
      const traffic = async () => {
        const [row] = await db.sql<{ requests: number; cut: number }[]>`
          select requests::int, connections_cut::int as cut from session_traffic where session_id = ${session.id}`;
        return row;
      };
      await until('the traffic is written', async () => ((await traffic())?.cut ?? 0) >= 1);
      await sleep(500);
      expect(await traffic()).toEqual({ requests: 3, cut: 1 });
    } finally {
      await upstream.close();
    }
  });

  it('does not charge a request to a service priced per request whose client left the node that forwarded it before the answer', async () => {
    const upstream = await startUpstream();
    try {
      const { customer, session } = await pricedPerRequestOnB(upstream.url);

      // Through node-a's edge, to a service that answers after a second; the client hangs up once it got there.
      const hangUp = new AbortController();
      const asked = fetch(`${a.app.listeningOrigin}/edge/${session.id}/slow`, { headers: { authorization: `Bearer ${session.access.token}` }, signal: hangUp.signal }).catch(
        (error: unknown) => error,
      );
      await until('the service has the request', () => upstream.seen.some((seen) => seen.path.endsWith('/slow') && seen.headers['tollgate-session-id'] === session.id));
      hangUp.abort();
      expect(await asked).toBeInstanceOf(Error);
      // The service answers a second after it was asked: nobody read it, nothing is charged for it.
      // node-b settles the request's reservation either way (committed or given back): wait for that.
      const reservations = () => Object.keys(b.supervisor.snapshotOf(session.id)?.context.uses.open ?? {}).length;
      await until('node-b settled the request’s reservation', () => reservations() === 0);
      const uses = async () => (await b.app.inject({ method: 'GET', url: `/v1/sessions/${session.id}`, headers: customer.auth })).json().uses;
      expect(await uses()).toEqual({ units: 0, charge: '0.00' });
      // And the unit it reserved is free again: the next request is charged as the first.
      const next = await fetch(`${a.app.listeningOrigin}/edge/${session.id}/json`, { headers: { authorization: `Bearer ${session.access.token}` } });
      expect(next.status).toBe(200);
      await next.arrayBuffer();
      await expect.poll(uses).toEqual({ units: 1, charge: '0.10' });
      await b.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth });
    } finally {
      await upstream.close();
    }
  });

  it('shows on every node the seats taken on a server another node runs', async () => {
    const onA = services.find((s) => a.leases!.serves(s.serverId))!;
    const listed = async (n: TestTollgate) =>
      ((await n.app.inject({ url: '/v1/services' })).json().services as { id: string; activeUsers: number; seatsFree: number }[]).find((s) => s.id === onA.serviceId)!;
    const before = await listed(a);
    const customer = await signUp(a.app, { outstandingLimit: '100.00' });
    const opened = await a.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId: onA.serviceId, maxCharge: '5.00' } });
    expect(opened.statusCode, opened.body).toBe(201);
    // An outside probe's catalogue on the other nodes said every seat was free (a round-robin balancer showed both by turns).
    await until('node-b counts the seat', async () => (await listed(b)).activeUsers === before.activeUsers + 1);
    expect(await listed(b)).toMatchObject({ activeUsers: before.activeUsers + 1, seatsFree: before.seatsFree - 1 });
    await a.app.inject({ method: 'POST', url: `/v1/sessions/${opened.json().id as string}/logoff`, headers: customer.auth });
    await until('node-b gives the seat back', async () => (await listed(b)).activeUsers === before.activeUsers);
  });

  it('lets a session through the edge of a node that has not heard of it yet, the moment its owner answered the open', async () => {
    const upstream = await startUpstream();
    // node-a hears nothing of node-b's commits until the test says (its follower's events are held).
    const publish = a.events.publish.bind(a.events);
    const held: Parameters<typeof publish>[0][] = [];
    const release = () => {
      a.events.publish = publish;
      for (const events of held.splice(0)) publish(events);
    };
    try {
      // node-b's service behind the upstream, once node-a's edge has let a session of it through.
      const first = await pricedPerRequestOnB(upstream.url);
      await b.app.inject({ method: 'POST', url: `/v1/sessions/${first.session.id}/logoff`, headers: first.customer.auth });
      const onB = services.find((s) => b.leases!.serves(s.serverId))!;
      a.events.publish = (events) => void held.push(events);
      const customer = await signUp(b.app, { outstandingLimit: '100.00' });
      const opened = await b.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId: onB.serviceId, maxCharge: '5.00' } });
      expect(opened.statusCode, opened.body).toBe(201);
      const session = opened.json() as { id: string; access: { token: string } };
      expect(a.live.get(session.id)).toBeUndefined();
      // An outside probe's client, sent to node-a by haproxy, was answered 402 SESSION_ENDED here.
      const passed = await fetch(`${a.app.listeningOrigin}/edge/${session.id}/json`, { headers: { authorization: `Bearer ${session.access.token}` } });
      expect(passed.status, await passed.text()).toBe(200);
      expect(a.live.get(session.id)).toMatchObject({ ended: null });
      const loggedOff = await b.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth });
      expect(loggedOff.statusCode, loggedOff.body).toBe(200);
      release();
      await until('node-a’s edge ends its access', () => a.live.get(session.id)?.ended?.reason === 'logoff');
    } finally {
      release();
      await upstream.close();
    }
  });

  it('refuses, and counts, a write of a node whose lease another took, and sends nothing to the card company for it', async () => {
    const customer = await signUp(a.app, { outstandingLimit: '100.00' });
    const onA = services.find((s) => a.leases!.serves(s.serverId))!;
    const opened = await a.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId: onA.serviceId, maxCharge: '5.00' } });
    expect(opened.statusCode).toBe(201);
    const id = opened.json().id as string;
    const [before] = await db.sql<{ refused: bigint }[]>`select case when is_called then last_value else 0 end as refused from fencing_refusals`;
    // Another node takes the server while node-a still believes it holds it (as after a pause):
    // its next round would notice, but the logoff comes first.
    await db.sql`insert into nodes (node_id, url, started_at, heartbeat_at, expires_at) values ('node-x', 'http://127.0.0.1:9', now(), now(), now() + interval '1 hour')`;
    await db.sql`update server_leases set node_id = 'node-x', epoch = epoch + 1 where server_id = ${onA.serverId}`;
    const loggedOff = await a.app.inject({ method: 'POST', url: `/v1/sessions/${id}/logoff`, headers: customer.auth });
    expect(loggedOff.statusCode).toBe(503);
    expect(loggedOff.json().code).toBe('NOT_RECORDED');

    const [after] = await db.sql<{ refused: bigint }[]>`select last_value as refused from fencing_refusals`;
    expect(after!.refused).toBeGreaterThan(before!.refused);
    const [row] = await db.sql<{ state: string }[]>`select state from sessions where id = ${id}`;
    expect(row!.state).toBe('active');
    expect(a.supervisor.has(id)).toBe(false);
    // The hold is still open: node-a captured nothing for a logoff it could not write.
    const holds = await sandbox(a.cardNetworkUrl).holds();
    expect(holds.find((h) => h.reference === id)?.state).toBe('open');
    await db.sql`update server_leases set node_id = null where server_id = ${onA.serverId}`;
    await db.sql`delete from nodes where node_id = 'node-x'`;
  });
});
