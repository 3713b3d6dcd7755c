import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/db/free-port.js';
import { UpstreamHealth } from '../../src/edge/upstream-health.js';
import { createLogger } from '../../src/logger.js';
import { sandbox } from '../helpers/card-network.js';
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

describe('upstream checks', () => {
  it('call a service lost only once its checks have failed for the whole lost-after time, since the last check that connected', async () => {
    const port = await freePort();
    let upstream = await upstreamOn(port);
    let now = 1_000;
    const lost: [string, number][] = [];
    const health = new UpstreamHealth({
      upstreams: () => [['svc', { url: new URL(`http://127.0.0.1:${port}/api`), signingSecret: 's' }]],
      upstreamOf: () => ({ url: new URL(`http://127.0.0.1:${port}/api`), signingSecret: 's' }),
      now: () => now,
      log: createLogger('silent'),
      intervalMs: 0,
      timeoutMs: 500,
      lostAfterMs: 5_000,
      onLost: async (serviceId, since) => void lost.push([serviceId, since]),
    });
    const checkAt = async (at: number) => {
      now = at;
      await health.checkAll();
      await health.stop();
    };
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
});
