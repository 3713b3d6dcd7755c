import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandbox } from '../helpers/card-network.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { call, customer, listen, openSession, serviceWithUpstream } from './edge-client.js';
import { startUpstream } from './upstream.js';

/** A service priced per request: the edge charges each request before it passes, and cuts at the limit. */
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

describe('a service priced per request through the edge', () => {
  it('charges each request, refuses the one past the limit with 402, and settles at exactly the limit', async () => {
    // Time costs next to nothing (0.000001 a minute): the charge is the requests'.
    const service = await serviceWithUpstream(base, tollgate.adminToken, `${upstream.url}/api`, '0.000001');
    upstream.setSecret(service.signingSecret);
    const priced = await call(base, 'PATCH', `/v1/services/${service.id}`, tollgate.adminToken, { tariff: { perUse: { unit: 'request', price: '0.10' } } });
    expect(priced.status, JSON.stringify(priced.body)).toBe(200);
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '0.50' });
    const headers = { authorization: `Bearer ${session.access.token}` };

    for (let i = 1; i <= 4; i++) {
      const passed = await fetch(`${session.access.url}/json`, { headers });
      expect(passed.status).toBe(200);
      await passed.arrayBuffer();
      const view = await call(base, 'GET', `/v1/sessions/${session.id}`, ada.token);
      expect(view.body.uses).toEqual({ units: i, charge: `0.${i}0` });
    }
    // The fifth reaches the limit: charged, and the session is cut.
    const fifth = await fetch(`${session.access.url}/json`, { headers });
    await fifth.arrayBuffer();
    const sixth = await fetch(`${session.access.url}/json`, { headers });
    expect(sixth.status).toBe(402);
    expect(['SESSION_ENDED', 'USE_LIMIT_REACHED']).toContain(((await sixth.json()) as { code: string }).code);

    let view = await call(base, 'GET', `/v1/sessions/${session.id}`, ada.token);
    for (let i = 0; i < 50 && view.body.state !== 'settled'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      view = await call(base, 'GET', `/v1/sessions/${session.id}`, ada.token);
    }
    expect(view.body).toMatchObject({ state: 'settled', endReason: 'charge_limit', charge: '0.50', uses: { units: 5, charge: '0.50' } });
    const captures = await sandbox(tollgate.cardNetworkUrl).captures();
    expect(captures.find((c) => c.id === view.body.chargeSlip.id)?.amount).toBe('0.50');
    // Five requests reached the upstream, not six.
    expect(upstream.seen.filter((seen) => seen.headers["x-tollgate-session-id"] === session.id || JSON.stringify(seen.signed ?? {}).includes(session.id))).toHaveLength(5);
  });

  it('lets requests to a service priced by time alone through without a use', async () => {
    const service = await serviceWithUpstream(base, tollgate.adminToken, `${upstream.url}/api`);
    upstream.setSecret(service.signingSecret);
    const ada = await customer(base);
    const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge: '1.00' });
    const passed = await fetch(`${session.access.url}/json`, { headers: { authorization: `Bearer ${session.access.token}` } });
    expect(passed.status).toBe(200);
    const view = await call(base, 'GET', `/v1/sessions/${session.id}`, ada.token);
    expect(view.body.uses).toEqual({ units: 0, charge: '0.00' });
  });
});
