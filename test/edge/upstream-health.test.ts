import { createServer } from 'node:http';
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

describe('an upstream nobody can reach', () => {
  it('refuses opens with 503 SERVICE_UNREACHABLE, holding nothing, and opens again once the upstream answers', async () => {
    const port = await freePort();
    const service = await serviceWithUpstream(base, tollgate.adminToken, `http://127.0.0.1:${port}/api`);
    const ada = await customer(base);
    const open = () => call(base, 'POST', '/v1/sessions', ada.token, { serviceId: service.id, maxCharge: '1.00' });
    await expect.poll(async () => (await open()).body.code, { timeout: 5000 }).toBe('SERVICE_UNREACHABLE');
    const holdsBefore = (await sandbox(tollgate.cardNetworkUrl).holds()).length;
    const refused = await open();
    expect([refused.status, refused.body.retryAfterSeconds]).toEqual([503, 5]);
    expect((await sandbox(tollgate.cardNetworkUrl).holds()).length).toBe(holdsBefore);
    const listed = async () => (await call(base, 'GET', '/v1/services', null)).body.services.find((s: { id: string }) => s.id === service.id);
    expect(await listed()).toMatchObject({ reachable: false });

    const upstream = createServer((_request, response) => response.end('{}'));
    upstream.listen(port, '127.0.0.1');
    await once(upstream, 'listening');
    try {
      await expect.poll(async () => (await open()).status, { timeout: 5000 }).toBe(201);
      expect(await listed()).toMatchObject({ reachable: true });
    } finally {
      upstream.closeAllConnections();
      await new Promise<void>((resolve) => upstream.close(() => resolve()));
    }
  });
});
