import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { signUpBody } from '../helpers/customers.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { type ServerProcess, serverProcessIn } from '../crash/server-process.js';
import { readUntilEnd } from './edge-client.js';
import { startUpstream } from './upstream.js';

const BOOTSTRAP = 'edge-restart-bootstrap-token-0123456789';

let upstream: Awaited<ReturnType<typeof startUpstream>>;
let db: TestDatabase;
let dataDir: string;
let server: ServerProcess;

beforeAll(async () => {
  upstream = await startUpstream();
  db = await createTestDatabase();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'tollgate-edge-restart-'));
  server = await serverProcessIn(dataDir, { bootstrapToken: BOOTSTRAP, databaseUrl: db.url, env: { LOG_LEVEL: 'warn', TOLLGATE_SEED_DEMO: 'false' } });
  await server.start();
});
afterAll(async () => {
  await server.destroy();
  await upstream.close();
  await db.drop();
  await rm(dataDir, { recursive: true, force: true });
});

const answerOf = async (method: string, url: string, token: string, body?: unknown) => {
  const answer = await server.api(method, url, { token, body });
  if (answer.kind !== 'answer') throw new Error(`${method} ${url}: ${answer.kind}`);
  return answer;
};

/** A service on a server of its own, in front of the test's upstream, which checks its signatures. */
async function echoService(name: string, pricePerMinute: string) {
  const serverRow = await answerOf('POST', '/v1/servers', server.operatorKey, { name: `${name}-server`, maxUsers: 10 });
  const service = await answerOf('POST', '/v1/services', server.operatorKey, { name, serverId: serverRow.body.id, pricePerMinute, maxUsers: 10, upstreamUrl: upstream.url });
  upstream.setSecret(service.body.signingSecret);
  return service;
}

it('keeps access working after a SIGKILL and a restart, and cuts at the stored cutoff', { timeout: 120_000 }, async () => {
  const service = await echoService('echo', '0.60');
  const signedUp = await server.api('POST', '/v1/accounts', { body: signUpBody() });
  if (signedUp.kind !== 'answer') throw new Error('sign-up');
  const customerToken = signedUp.body.token as string;
  // Long enough for a restart under load; the cut is checked against the stored instant.
  const opened = await answerOf('POST', '/v1/sessions', customerToken, { serviceId: service.body.id, maxMinutes: 30 / 60 });
  expect(opened.status).toBe(201);
  const { access, cutoffAt } = opened.body as { access: { url: string; token: string }; cutoffAt: string };
  const edgeUrl = `${server.url}/edge/${opened.body.id}`;
  const before = await fetch(`${edgeUrl}/json`, { headers: { authorization: `Bearer ${access.token}` } });
  expect(before.status).toBe(200);

  await server.kill('server');
  await server.start();
  expect(Date.now()).toBeLessThan(Date.parse(cutoffAt) - 2000);

  const after = await fetch(`${edgeUrl}/json`, { headers: { authorization: `Bearer ${access.token}` } });
  expect(after.status).toBe(200);
  expect(await after.json()).toMatchObject({ signed: true });
  const viewed = await answerOf('GET', `/v1/sessions/${opened.body.id}`, customerToken);
  expect(viewed.body.access.token).toBe(access.token);

  const read = await readUntilEnd(`${edgeUrl}/events`, access.token);
  expect(read.text).toContain('data: tick');
  const late = read.endedAt - Date.parse(cutoffAt);
  expect(late).toBeGreaterThanOrEqual(-20);
  expect(late).toBeLessThan(1000);
  const ended = await fetch(`${edgeUrl}/json`, { headers: { authorization: `Bearer ${access.token}` } });
  expect(ended.status).toBe(402);
  expect(await ended.json()).toMatchObject({ code: 'SESSION_ENDED', endReason: 'time_limit' });
});

it('gives back the units of requests in flight when the server was killed, so the session can use them again', { timeout: 120_000 }, async () => {
  const admin = server.operatorKey;
  const service = await echoService('priced-echo', '0.01');
  await answerOf('PATCH', `/v1/services/${service.body.id}`, admin, { tariff: { perUse: { unit: 'request', price: '0.40' } } });
  const signedUp = await server.api('POST', '/v1/accounts', { body: signUpBody() });
  if (signedUp.kind !== 'answer') throw new Error('sign-up');
  const customerToken = signedUp.body.token as string;
  // 1.00 holds two requests at 0.40 and the minutes, not three.
  const opened = await answerOf('POST', '/v1/sessions', customerToken, { serviceId: service.body.id, maxCharge: '1.00' });
  expect(opened.status).toBe(201);
  const { access } = opened.body as { access: { token: string } };
  const edgeUrl = `${server.url}/edge/${opened.body.id}`;
  const get = (path: string) => fetch(`${edgeUrl}${path}`, { headers: { authorization: `Bearer ${access.token}` } });

  // Two requests the service is still working on when the server dies: each reserved its unit before it went.
  const inFlight = [get('/a/after?ms=60000'), get('/b/after?ms=60000')].map((p) => p.catch(() => null));
  await expect.poll(() => upstream.seen.filter((s) => s.path.endsWith('/after?ms=60000')).length, { timeout: 10_000 }).toBe(2);
  await server.kill('server');
  await Promise.all(inFlight);
  await server.start();

  // Those requests died with the server and were never answered: their units are free again.
  const after = await get('/json');
  expect(after.status, await after.clone().text()).toBe(200);
  const again = await get('/json');
  expect(again.status).toBe(200);
  const third = await get('/json');
  expect(third.status).toBe(402);
  const settled = await answerOf('POST', `/v1/sessions/${opened.body.id}/logoff`, customerToken);
  expect(settled.body.uses).toEqual({ units: 2, charge: '0.80' });
});
