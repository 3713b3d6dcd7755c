import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upstreamOf } from '../../src/catalogue/catalogue-service.js';
import { freePort } from '../../src/db/free-port.js';
import type { RememberedCheck } from '../../src/edge/upstream-checks-sql.js';
import { UpstreamHealth } from '../../src/edge/upstream-health.js';
import { createLogger } from '../../src/logger.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { WebClient } from '../helpers/web-client.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { call, customer, listen, openSession, readUntilEnd, serviceWithUpstream } from './edge-client.js';

/** A service whose upstream takes no connections is not sold: opens are refused until it does again. */
let tollgate: TestTollgate;
let base: string;

beforeAll(async () => {
  tollgate = await startTestTollgate({ env: { EDGE_UPSTREAM_CHECK_MS: '100', EDGE_UPSTREAM_CHECK_TIMEOUT_MS: '500', EDGE_UPSTREAM_LOST_AFTER_MS: '600' } });
  base = await listen(tollgate);
});
afterAll(() => tollgate.stop());

/** Answers `{}`, and on /api/stream a chunk every 50 ms for as long as the client reads. */
async function upstreamOn(port: number): Promise<Server> {
  const server = createServer((request, response) => {
    if (!request.url?.startsWith('/api/stream')) return void response.end('{}');
    response.writeHead(200, { 'content-type': 'text/plain' });
    const ticking = setInterval(() => response.write('tick\n'), 50);
    response.on('close', () => clearInterval(ticking));
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

async function closeUpstream(server: Server) {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('an upstream nobody can reach', () => {
  it('refuses opens with 503 SERVICE_UNREACHABLE, holding nothing, answers a retried open from its session, and opens again once the upstream answers', async () => {
    const port = await freePort();
    let upstream = await upstreamOn(port);
    const service = await serviceWithUpstream(base, tollgate.adminToken, `http://127.0.0.1:${port}/api`);
    const ada = await customer(base);
    const open = (headers: Record<string, string> = {}) =>
      tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: { authorization: `Bearer ${ada.token}`, ...headers }, payload: { serviceId: service.id, maxCharge: '1.00' } });
    const listed = async () => (await call(base, 'GET', '/v1/services', null)).body.services.find((s: { id: string }) => s.id === service.id);
    await expect.poll(async () => (await listed()).reachable).toBe(true);
    const first = await open({ 'idempotency-key': 'first-open' });
    expect(first.statusCode, first.body).toBe(201);

    // Pointed at a port nobody listens on: what was known of the old upstream is not taken for the new one.
    const patch = (upstreamUrl: string) => call(base, 'PATCH', `/v1/services/${service.id}`, tollgate.adminToken, { upstreamUrl });
    expect((await patch(`http://127.0.0.1:${await freePort()}/api`)).status).toBe(200);
    expect((await listed()).reachable).not.toBe(true);
    await expect.poll(async () => (await open()).json().code, { timeout: 5000 }).toBe('SERVICE_UNREACHABLE');
    expect((await patch(`http://127.0.0.1:${port}/api`)).status).toBe(200);
    await expect.poll(async () => (await listed()).reachable).toBe(true);

    await closeUpstream(upstream);
    await expect.poll(async () => (await open()).json().code, { timeout: 5000 }).toBe('SERVICE_UNREACHABLE');
    const holdsBefore = (await sandbox(tollgate.cardNetworkUrl).holds()).length;
    const refused = await open();
    expect([refused.statusCode, refused.json().retryAfterSeconds]).toEqual([503, 5]);
    expect((await sandbox(tollgate.cardNetworkUrl).holds()).length).toBe(holdsBefore);
    expect(await listed()).toMatchObject({ reachable: false });
    // The web site's catalogue tells customers so, before they try.
    const row = async () => (await (await fetch(`${base}/`)).text()).match(new RegExp(`<tr data-service="${service.id}">[\\s\\S]*?</tr>`))![0];
    expect(await row()).toContain('Not answering: opens are refused until it does');
    // And the open form says why it was refused, without sending the customer to wait for a seat.
    const web = new WebClient(tollgate.app);
    await web.get('/login');
    await web.post('/login', { email: ada.email, password: 'analytical engine' });
    await web.get(`/services/${service.id}/open`);
    const page = (await web.post(`/services/${service.id}/open`, { maxMinutes: '1', maxCharge: '', waitSeconds: '0' })).body;
    expect(page).toContain('The service does not answer just now');
    expect(page).toContain('Try again in 5 s. (SERVICE_UNREACHABLE)');
    // The retry of the open that made its session is answered from it, not told nothing was opened.
    const retried = await open({ 'idempotency-key': 'first-open' });
    expect([retried.statusCode, retried.json().id]).toEqual([201, first.json().id]);

    upstream = await upstreamOn(port);
    try {
      await expect.poll(async () => (await open()).statusCode, { timeout: 5000 }).toBe(201);
      expect(await listed()).toMatchObject({ reachable: true });
      expect(await row()).toContain('>Answering<');
    } finally {
      await closeUpstream(upstream);
    }
  });
});

describe('a running session whose upstream is lost', () => {
  it('ends service_unreachable, charged up to the last check that connected, and its open stream is cut', async () => {
    const port = await freePort();
    const upstream = await upstreamOn(port);
    try {
      const service = await serviceWithUpstream(base, tollgate.adminToken, `http://127.0.0.1:${port}/api`);
      const ada = await customer(base);
      const listed = async () => (await call(base, 'GET', '/v1/services', null)).body.services.find((s: { id: string }) => s.id === service.id);
      await expect.poll(async () => (await listed()).reachable).toBe(true);
      const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '1.00' });
      const stream = readUntilEnd(`${session.access.url}/stream`, session.access.token);
      await new Promise((resolve) => setTimeout(resolve, 500));

      // The upstream takes no new connection; the stream it already serves flows on, as from a
      // service half gone. Nobody can reach it: the session ends, and the customer is cut off.
      const lostAt = Date.now();
      upstream.close();
      const settled = async () => (await call(base, 'GET', `/v1/sessions/${session.id}`, ada.token)).body;
      await expect.poll(async () => (await settled()).state, { timeout: 10_000 }).toBe('settled');
      const view = await settled();
      expect(view.endReason).toBe('service_unreachable');
      const [startedAt, endedAt] = [Date.parse(view.startedAt), Date.parse(view.endedAt)];
      // The last check that connected came before the upstream closed, at most a check and its timeout before.
      expect(endedAt).toBeLessThanOrEqual(lostAt);
      expect(endedAt).toBeGreaterThan(lostAt - 2_000);
      // 0.60 a minute is 0.01 a second: nothing after the end, in whole cents.
      expect(Number(view.charge)).toBeLessThanOrEqual(Math.ceil((endedAt - startedAt) / 1000) / 100);
      const cut = await stream;
      expect(cut.text).toContain('tick');
      expect(cut.endedAt).toBeGreaterThan(lostAt);
      // The stream of a service that goes on would never end: it ended because the session did.
      expect(cut.endedAt - lostAt).toBeLessThan(15_000);
    } finally {
      upstream.closeAllConnections();
    }
  });
});

/** Checks of one service 'svc' at `url` on the clock `now`, lost after 5 s, and the losses they called. */
/** Checks of one service 'svc' whose upstream is `url` (a function: the URL it has now, an operator may change it). */
function checksOf(url: string | (() => string), now: () => number, options: Pick<ConstructorParameters<typeof UpstreamHealth>[0], 'intervalMs' | 'store'>) {
  const lost: [string, number][] = [];
  const urlNow = typeof url === 'string' ? () => url : url;
  let upstream = upstreamOf(urlNow(), 's');
  const current = () => (upstream.url.href === new URL(urlNow()).href ? upstream : (upstream = upstreamOf(urlNow(), 's')));
  const health = new UpstreamHealth({
    upstreams: () => [['svc', current()]],
    upstreamOf: () => current(),
    now,
    log: createLogger('silent'),
    timeoutMs: 500,
    lostAfterMs: 5_000,
    onLost: async (serviceId, since) => void lost.push([serviceId, since]),
    ...options,
  });
  return { health, lost };
}

/** Checks run one round at a time, at the instants a test names. */
function steppedChecksOf(url: string | (() => string)) {
  let now = 1_000;
  const checks = checksOf(url, () => now, { intervalMs: 0 });
  const checkAt = async (at: number) => {
    now = at;
    await checks.health.checkAll();
    await checks.health.stop();
  };
  return { ...checks, checkAt };
}

describe('upstream checks', () => {
  it('call a service lost only once its checks have failed for the whole lost-after time, since the last check that connected', async () => {
    const port = await freePort();
    let upstream = await upstreamOn(port);
    const { health, lost, checkAt } = steppedChecksOf(`http://127.0.0.1:${port}/api`);
    try {
      await checkAt(1_000);
      await closeUpstream(upstream);
      await checkAt(2_000);
      await checkAt(6_000);
      expect(health.stateOf('svc')).toMatchObject({ reachable: false, reachableAt: 1_000, failingSince: 2_000 });
      // Back before the lost-after time: a blip, nothing ended.
      upstream = await upstreamOn(port);
      await checkAt(6_500);
      expect(lost).toEqual([]);
      await closeUpstream(upstream);
      await checkAt(7_000);
      await checkAt(11_999);
      expect(lost).toEqual([]);
      await checkAt(12_000);
      expect(lost).toEqual([['svc', 6_500]]);
    } finally {
      if (upstream.listening) await closeUpstream(upstream);
    }
  });

  it('count a service pointed from an upstream that connected to one that does not as reached until the first check of the new one', async () => {
    const port = await freePort();
    const upstream = await upstreamOn(port);
    const dead = await freePort();
    let url = `http://127.0.0.1:${port}/api`;
    const { health, lost, checkAt } = steppedChecksOf(() => url);
    try {
      await checkAt(1_000);
      // The operator points the service at an address nobody answers; the old upstream served until then.
      url = `http://127.0.0.1:${dead}/api`;
      await checkAt(3_000);
      expect(health.stateOf('svc')).toMatchObject({ reachable: false, reachableAt: 3_000, failingSince: 3_000 });
      await checkAt(6_000);
      await checkAt(8_000);
      expect(lost).toEqual([['svc', 3_000]]);
    } finally {
      await closeUpstream(upstream);
    }
  });

  it('keep the old upstream\'s last success for a service found pointed elsewhere after a long stop', async () => {
    const old = `http://127.0.0.1:${await freePort()}/api`;
    const { health } = checksOf(`http://127.0.0.1:${await freePort()}/api`, () => 3_601_000, {
      intervalMs: 1_000,
      store: { load: async () => new Map([['svc', { url: old, reachableAt: 1_000, failingSince: null, checkedAt: 1_000 }]]), save: async () => {} },
    });
    await health.start();
    await health.stop();
    // Nobody watched for an hour: the service is known reached at 1 000, not at this first check.
    expect(health.stateOf('svc')).toMatchObject({ reachable: false, reachableAt: 1_000 });
  });

  it.each([
    // A crash loop: the last run saw the failures begin, and stopped half a second before this run's check.
    ['half a second', 6_500, [['svc', 1_000]], { failingSince: 2_000 }],
    // A long stop: nobody knows what happened meanwhile; the failures count from now, the last success stays.
    ['a minute', 2_000, [], { failingSince: 61_000 }],
  ] as const)('go on after a restart stopped for %s from what the last run kept', async (_, lastCheck, expectedLost, expectedStreak) => {
    const port = await freePort();
    const upstream = await upstreamOn(port);
    await closeUpstream(upstream);
    const url = `http://127.0.0.1:${port}/api`;
    const kept = new Map<string, RememberedCheck>([['svc', { url, reachableAt: 1_000, failingSince: 2_000, checkedAt: lastCheck }]]);
    const now = lastCheck === 2_000 ? 61_000 : 7_000;
    const { health, lost } = checksOf(url, () => now, {
      intervalMs: 1_000,
      store: { load: async () => kept, save: async (checks) => checks.forEach(([id, check]) => kept.set(id, check)) },
    });
    await health.start();
    await health.stop();
    expect(lost).toEqual(expectedLost);
    expect(kept.get('svc')).toEqual({ url, reachableAt: 1_000, checkedAt: now, ...expectedStreak });
  });
});

/** A service on its own server (of `maxUsers`) whose upstream is `port`, made through tollgate's own API. */
async function serviceOn(t: TestTollgate, port: number, maxUsers = 100) {
  const { serviceId } = await createService(t.app, t.adminToken, { pricePerMinute: '0.60', maxUsers });
  const patched = await t.app.inject({
    method: 'PATCH',
    url: `/v1/services/${serviceId}`,
    headers: { authorization: `Bearer ${t.adminToken}` },
    payload: { upstreamUrl: `http://127.0.0.1:${port}/api` },
  });
  expect(patched.statusCode, patched.body).toBe(200);
  return serviceId;
}

const reachableIn = async (t: TestTollgate, serviceId: string) =>
  (await t.app.inject({ url: '/v1/services' })).json().services.find((s: { id: string }) => s.id === serviceId).reachable as boolean | null;

describe('an open waiting for a seat of a service that is lost meanwhile', () => {
  it('is refused 503 SERVICE_UNREACHABLE when the seat comes free, with no hold placed', async () => {
    const port = await freePort();
    const upstream = await upstreamOn(port);
    const serviceId = await serviceOn(tollgate, port, 1);
    await expect.poll(() => reachableIn(tollgate, serviceId)).toBe(true);
    const first = await signUp(tollgate.app);
    const seated = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: first.auth, payload: { serviceId, maxCharge: '1.00' } });
    expect(seated.statusCode, seated.body).toBe(201);
    const second = await signUp(tollgate.app);
    const waiting = tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: second.auth, payload: { serviceId, maxCharge: '1.00', waitSeconds: 15 } });
    const queued = async () => {
      const servers = (await tollgate.app.inject({ url: '/v1/ops/servers', headers: { authorization: `Bearer ${tollgate.adminToken}` } })).json().servers;
      return servers.flatMap((server: { services: { id: string; queued: number }[] }) => server.services).find((s: { id: string }) => s.id === serviceId).queued;
    };
    await expect.poll(queued).toBe(1);
    const holdsBefore = (await sandbox(tollgate.cardNetworkUrl).holds()).length;

    // The service goes: the seated session ends with it, and its seat comes free for the one waiting.
    await closeUpstream(upstream);
    const answer = await waiting;
    expect([answer.statusCode, answer.json().code]).toEqual([503, 'SERVICE_UNREACHABLE']);
    const seatedView = async () => (await tollgate.app.inject({ url: `/v1/sessions/${seated.json().id}`, headers: first.auth })).json();
    await expect.poll(async () => (await seatedView()).state).toBe('settled');
    expect((await seatedView()).endReason).toBe('service_unreachable');
    expect((await sandbox(tollgate.cardNetworkUrl).holds()).length).toBe(holdsBefore);
  });
});

/** A tollgate of its own checking upstreams every 100 ms, a service whose upstream it found reachable, and a customer's session of it. */
async function ownTollgateWithSession(lostAfterMs: string, maxCharge: string) {
  const t = await startTestTollgate({ env: { EDGE_UPSTREAM_CHECK_MS: '100', EDGE_UPSTREAM_CHECK_TIMEOUT_MS: '500', EDGE_UPSTREAM_LOST_AFTER_MS: lostAfterMs } });
  const port = await freePort();
  const upstream = await upstreamOn(port);
  const serviceId = await serviceOn(t, port);
  await expect.poll(() => reachableIn(t, serviceId)).toBe(true);
  const ada = await signUp(t.app);
  const opened = await t.app.inject({ method: 'POST', url: '/v1/sessions', headers: ada.auth, payload: { serviceId, maxCharge } });
  expect(opened.statusCode, opened.body).toBe(201);
  return { t, port, upstream, serviceId, ada, sessionId: opened.json().id as string };
}

describe('a restart while an upstream is down', () => {
  it('goes on from what the last run found: the session ends charged up to the last check before the outage, not the first after the restart', async () => {
    const own = await ownTollgateWithSession('2000', '5.00');
    let t = own.t;
    const { upstream, serviceId, ada, sessionId } = own;
    try {
      const lostAt = Date.now();
      await closeUpstream(upstream);
      await expect.poll(() => reachableIn(t, serviceId)).toBe(false);
      // Down before the lost-after time is up: this run ends nothing. The next one knows since when.
      t = await t.restart();
      const view = async () => (await t.app.inject({ url: `/v1/sessions/${sessionId}`, headers: ada.auth })).json();
      await expect.poll(async () => (await view()).state, { timeout: 15_000 }).toBe('settled');
      const settled = await view();
      expect(settled.endReason).toBe('service_unreachable');
      expect(Date.parse(settled.endedAt)).toBeLessThanOrEqual(lostAt);
    } finally {
      await t.stop();
    }
  });
});

describe('EDGE_UPSTREAM_LOST_AFTER_MS=0', () => {
  it('never ends a session for its service, and refuses to raise its limit while the service does not answer', async () => {
    const { t, port, serviceId, ada, sessionId, ...own } = await ownTollgateWithSession('0', '1.00');
    let upstream = own.upstream;
    try {
      const extend = () => t.app.inject({ method: 'POST', url: `/v1/sessions/${sessionId}/extend`, headers: ada.auth, payload: { maxCharge: '2.00' } });
      await closeUpstream(upstream);
      await expect.poll(() => reachableIn(t, serviceId)).toBe(false);
      const refused = await extend();
      expect([refused.statusCode, refused.json().code]).toEqual([503, 'SERVICE_UNREACHABLE']);
      expect(refused.json().detail).toContain('the limit was not raised');
      expect((await t.app.inject({ url: `/v1/sessions/${sessionId}`, headers: ada.auth })).json()).toMatchObject({ state: 'active', maxCharge: '1.00' });
      upstream = await upstreamOn(port);
      await expect.poll(() => reachableIn(t, serviceId)).toBe(true);
      expect((await extend()).json()).toMatchObject({ state: 'active', maxCharge: '2.00' });
    } finally {
      if (upstream.listening) await closeUpstream(upstream);
      await t.stop();
    }
  });
});
