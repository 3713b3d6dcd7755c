import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandbox } from '../helpers/card-network.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { request as httpRequest } from 'node:http';
import { WebSocket } from 'ws';
import { freePort } from '../../src/db/free-port.js';
import { call, customer, listen, openSession, readUntilEnd, serviceWithUpstream } from './edge-client.js';
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

/** A service at 0.10 a request (its time next to free) on `upstreamUrl`, and a session of it with `maxCharge`. */
async function perRequestSession(upstreamUrl: string, maxCharge: string) {
  const service = await serviceWithUpstream(base, tollgate.adminToken, upstreamUrl, '0.000001');
  upstream.setSecret(service.signingSecret);
  const priced = await call(base, 'PATCH', `/v1/services/${service.id}`, tollgate.adminToken, { tariff: { perUse: { unit: 'request', price: '0.10' } } });
  expect(priced.status, JSON.stringify(priced.body)).toBe(200);
  const ada = await customer(base);
  const session = await openSession(base, ada.token, { serviceId: service.id, maxCharge });
  return { ada, session, headers: { authorization: `Bearer ${session.access.token}` } };
}

const viewOf = async (token: string, sessionId: string) => (await call(base, 'GET', `/v1/sessions/${sessionId}`, token)).body;

/** The session's view once it has settled (its cut and capture run on their own), or as it stands after 5 s. */
async function settledViewOf(token: string, sessionId: string) {
  let view = await viewOf(token, sessionId);
  for (let i = 0; i < 100 && view.state !== 'settled'; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    view = await viewOf(token, sessionId);
  }
  return view;
}

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
      // Charged once the service answered (its reserved unit committed just after).
      await expect.poll(async () => (await call(base, 'GET', `/v1/sessions/${session.id}`, ada.token)).body.uses).toEqual({ units: i, charge: `0.${i}0` });
    }
    // The fifth reaches the limit: its small answer is served, it is charged, and the session is cut.
    const fifth = await fetch(`${session.access.url}/json`, { headers });
    expect([fifth.status, fifth.status === 200 ? null : await fifth.clone().text()]).toEqual([200, null]);
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

  it('charges nothing for a request or a WebSocket that never reached the service, nor for an upgrade it refuses', async () => {
    const closed = `http://127.0.0.1:${await freePort()}/api`;
    const { ada, session, headers } = await perRequestSession(closed, '1.00');
    const unreachable = await fetch(`${session.access.url}/json`, { headers });
    expect(unreachable.status).toBe(502);
    await unreachable.arrayBuffer();
    const socket = new WebSocket(`${session.access.url.replace(/^http/, 'ws')}/chat`, { headers });
    const refusal = await new Promise<number>((resolve) => socket.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0)));
    expect(refusal).toBe(502);
    // An upgrade that is not a WebSocket handshake (curl --http2 on plain HTTP asks for h2c).
    const h2c = await new Promise<number>((resolve, reject) => {
      const url = new URL(`${session.access.url}/json`);
      const asked = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, headers: { ...headers, connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAARAAAAAAAIAAAAA' } });
      asked.on('response', (response) => (response.resume(), resolve(response.statusCode ?? 0)));
      asked.on('upgrade', (response, upgraded) => (upgraded.destroy(), resolve(response.statusCode ?? 0)));
      asked.on('error', reject);
      asked.end();
    });
    expect(h2c).toBe(400);
    await expect.poll(async () => (await viewOf(ada.token, session.id)).uses).toEqual({ units: 0, charge: '0.00' });
  });

  it('never serves a stream past the end: the one whose unit reaches the limit is refused, and its unit given back', async () => {
    const { ada, session, headers } = await perRequestSession(`${upstream.url}/api`, '0.20');
    const first = await fetch(`${session.access.url}/json`, { headers });
    expect(first.status).toBe(200);
    await first.arrayBuffer();
    // The second takes the rest of the limit: the session ends while it waits for the service.
    const stream = await readUntilEnd(`${session.access.url}/events`, session.access.token);
    expect(stream.status).toBe(402);
    const view = await settledViewOf(ada.token, session.id);
    expect(view).toMatchObject({ state: 'settled', endReason: 'charge_limit', charge: '0.10', uses: { units: 1, charge: '0.10' } });
  });

  it('counts every byte of a request body, those that came while the request was being charged included', async () => {
    const { ada, session, headers } = await perRequestSession(`${upstream.url}/api`, '1.00');
    for (const size of [100, 200_000]) {
      const echoed = await fetch(`${session.access.url}/echo`, { method: 'POST', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: new Uint8Array(size) });
      expect((await echoed.arrayBuffer()).byteLength).toBe(size);
    }
    await expect.poll(async () => (await viewOf(ada.token, session.id)).traffic).toMatchObject({ requests: 2, bytesIn: 200_100 });
  });

  it('charges a slow answer that came after its session went cold, and serves no answer free to a request in flight at a logoff', async () => {
    const { ada, session, headers } = await perRequestSession(`${upstream.url}/api`, '1.00');
    // /slow answers after a second: meanwhile the session rests cold, and is woken to be charged.
    const slow = fetch(`${session.access.url}/slow`, { headers });
    await expect.poll(() => upstream.seen.some((seen) => seen.path === '/api/slow' && seen.headers['tollgate-session-id'] === session.id)).toBe(true);
    expect(tollgate.supervisor.sweepCold(0)).toBeGreaterThan(0);
    expect((await slow).status).toBe(200);
    await expect.poll(async () => (await viewOf(ada.token, session.id)).uses).toEqual({ units: 1, charge: '0.10' });

    const second = await perRequestSession(`${upstream.url}/api`, '1.00');
    const inFlight = fetch(`${second.session.access.url}/slow`, { headers: second.headers });
    await expect.poll(() => upstream.seen.filter((seen) => seen.path === '/api/slow').length).toBe(2);
    const loggedOff = await call(base, 'POST', `/v1/sessions/${second.session.id}/logoff`, second.ada.token);
    expect(loggedOff.status).toBe(200);
    const answer = await inFlight;
    expect([answer.status, ((await answer.json()) as { code: string }).code]).toEqual([402, 'SESSION_ENDED']);
    expect(await viewOf(second.ada.token, second.session.id)).toMatchObject({ state: 'settled', endReason: 'logoff', uses: { units: 0, charge: '0.00' } });
  });

  it('sends a small answer only once charged: cut by a logoff while it arrives, 402 and not charged; reaching the limit, served whole and charged', async () => {
    const loggedOff = await perRequestSession(`${upstream.url}/api`, '1.00');
    const arriving = fetch(`${loggedOff.session.access.url}/dribble`, { headers: loggedOff.headers });
    await expect.poll(() => upstream.seen.some((seen) => seen.path === '/api/dribble' && seen.headers['tollgate-session-id'] === loggedOff.session.id)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await call(base, 'POST', `/v1/sessions/${loggedOff.session.id}/logoff`, loggedOff.ada.token)).status).toBe(200);
    const cut = await arriving;
    expect([cut.status, ((await cut.json()) as { code: string }).code]).toEqual([402, 'SESSION_ENDED']);
    expect(await viewOf(loggedOff.ada.token, loggedOff.session.id)).toMatchObject({ state: 'settled', uses: { units: 0, charge: '0.00' } });

    // 0.10 of 0.10: the use that reaches the limit ends the session while its answer arrives, and is served.
    const last = await perRequestSession(`${upstream.url}/api`, '0.10');
    const served = await fetch(`${last.session.access.url}/dribble`, { headers: last.headers });
    expect([served.status, await served.text()]).toEqual([200, '{"dribble":42}']);
    const view = await settledViewOf(last.ada.token, last.session.id);
    expect(view).toMatchObject({ state: 'settled', endReason: 'charge_limit', charge: '0.10', uses: { units: 1, charge: '0.10' } });
  });

  it('charges exactly the answers that went out when a logoff lands among streamed answers', async () => {
    const { ada, session, headers } = await perRequestSession(`${upstream.url}/api`, '5.00');
    // Answers chunked (no content-length: each goes out as a stream), spread over 300 ms; the logoff lands among them.
    const answers = Array.from({ length: 30 }, async (_, i) => {
      const answer = await fetch(`${session.access.url}/after?ms=${200 + i * 10}`, { headers });
      const body = await answer.text().catch(() => '');
      return answer.status === 200 && body === '{"after":true}';
    });
    await Promise.race(answers);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await call(base, 'POST', `/v1/sessions/${session.id}/logoff`, ada.token);
    const delivered = (await Promise.all(answers)).filter(Boolean).length;
    const view = await settledViewOf(ada.token, session.id);
    expect(view.state).toBe('settled');
    expect(view.uses.units).toBe(delivered);
  });

  it('refuses a WebSocket that would take the last of the limit, without ending the session, and connects one that leaves room', async () => {
    const { ada, session, headers } = await perRequestSession(`${upstream.url}/api`, '0.20');
    const ws = `${session.access.url.replace(/^http/, 'ws')}/chat`;
    const first = new WebSocket(ws, { headers });
    await new Promise((resolve, reject) => first.once('open', resolve).once('error', reject));
    // A second would take the last 0.10: a socket cannot be served past the end it would cause.
    const second = new WebSocket(ws, { headers });
    const refusal = await new Promise<{ status: number; body: string }>((resolve) =>
      second.once('unexpected-response', (_request, response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      }),
    );
    expect([refusal.status, JSON.parse(refusal.body).code]).toEqual([402, 'USE_LIMIT_REACHED']);
    expect((await viewOf(ada.token, session.id)).state).toBe('active');
    // A request takes it instead, and is served; the session ends at its limit.
    const last = await fetch(`${session.access.url}/json`, { headers });
    expect(last.status).toBe(200);
    await last.arrayBuffer();
    const view = await settledViewOf(ada.token, session.id);
    expect(view).toMatchObject({ state: 'settled', endReason: 'charge_limit', charge: '0.20', uses: { units: 2, charge: '0.20' } });
    first.terminate();
  });
});
