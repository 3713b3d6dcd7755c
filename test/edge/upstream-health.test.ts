import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/db/free-port.js';
import { sandbox } from '../helpers/card-network.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { call, customer, listen, serviceWithUpstream } from './edge-client.js';

/** A service whose upstream takes no connections is not sold: opens are refused until it does again. */
let tollgate: TestTollgate;
let base: string;

beforeAll(async () => {
  tollgate = await startTestTollgate({ env: { EDGE_UPSTREAM_CHECK_MS: '100', EDGE_UPSTREAM_CHECK_TIMEOUT_MS: '500' } });
  base = await listen(tollgate);
});
afterAll(() => tollgate.stop());

async function upstreamOn(port: number): Promise<Server> {
  const server = createServer((_request, response) => response.end('{}'));
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
    // The retry of the open that made its session is answered from it, not told nothing was opened.
    const retried = await open({ 'idempotency-key': 'first-open' });
    expect([retried.statusCode, retried.json().id]).toEqual([201, first.json().id]);

    upstream = await upstreamOn(port);
    try {
      await expect.poll(async () => (await open()).statusCode, { timeout: 5000 }).toBe(201);
      expect(await listed()).toMatchObject({ reachable: true });
    } finally {
      await closeUpstream(upstream);
    }
  });
});
