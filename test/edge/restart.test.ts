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

it('keeps access working after a SIGKILL and a restart, and cuts at the stored cutoff', { timeout: 120_000 }, async () => {
  const admin = server.operatorKey;
  const serverRow = await answerOf('POST', '/v1/servers', admin, { name: 'edge-restart', maxUsers: 10 });
  const service = await answerOf('POST', '/v1/services', admin, {
    name: 'echo',
    serverId: serverRow.body.id,
    pricePerMinute: '0.60',
    maxUsers: 10,
    upstreamUrl: upstream.url,
  });
  upstream.setSecret(service.body.signingSecret);
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
