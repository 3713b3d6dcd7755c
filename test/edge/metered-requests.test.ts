import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { call, customer, listen, openSession } from './edge-client.js';
import { startUpstream } from './upstream.js';

let tollgate: TestTollgate;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
let base: string;

beforeAll(async () => {
  upstream = await startUpstream();
  tollgate = await startTestTollgate();
  base = await listen(tollgate);
});
afterAll(async () => {
  await tollgate.stop();
  await upstream.close();
});

it('charges each request through the edge to a service priced per request, and refuses the one that would pass the limit', async () => {
  const server = await call(base, 'POST', '/v1/servers', tollgate.adminToken, { name: `server-${randomUUID()}`, maxUsers: 10 });
  const service = await call(base, 'POST', '/v1/services', tollgate.adminToken, {
    name: `api-${randomUUID()}`,
    serverId: server.body.id,
    pricePerMinute: '0.000001',
    maxUsers: 10,
    upstreamUrl: upstream.url,
    tariff: { perUse: { unit: 'request', price: '0.30' } },
  });
  expect(service.status).toBe(201);
  upstream.setSecret(service.body.signingSecret);
  const ada = await customer(base);
  const session = await openSession(base, ada.token, { serviceId: service.body.id, maxCharge: '1.00' });
  const get = () => fetch(`${session.access.url}/json`, { headers: { authorization: `Bearer ${session.access.token}` } });
  for (let i = 0; i < 3; i++) expect((await get()).status).toBe(200);
  const viewed = await call(base, 'GET', `/v1/sessions/${session.id}`, ada.token);
  expect(viewed.body.uses).toEqual({ units: 3, charge: '0.90' });
  // The fourth would take the uses to 1.20, past the 1.00 limit: refused whole, and nothing reaches the service.
  const seen = upstream.seen.length;
  const fourth = await get();
  expect(fourth.status).toBe(402);
  expect(((await fourth.json()) as { code: string }).code).toBe('USE_LIMIT_REACHED');
  expect(upstream.seen.length).toBe(seen);
});
