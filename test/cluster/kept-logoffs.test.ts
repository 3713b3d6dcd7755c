import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/db/free-port.js';
import { createService, signUp } from '../helpers/customers.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/**
 * A logoff asked while the session's server is between owners (its owner down, its lease not yet
 * lapsed) cannot be carried out then: it is kept, and the node that takes the server ends the
 * session as of the instant it was asked.
 */
let db: TestDatabase;
let a: TestTollgate;
let b: TestTollgate;

async function node(nodeId: string, adminToken?: string): Promise<TestTollgate> {
  const port = await freePort();
  const tollgate = await startTestTollgate({
    db,
    ...(adminToken ? { adminToken } : {}),
    env: { TOLLGATE_SEED_DEMO: 'false', HOST: '127.0.0.1', PORT: String(port), CLUSTER_NODE_ID: nodeId, CLUSTER_LEASE_MS: '1500' },
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
  a = await node('node-a');
  b = await node('node-b', a.adminToken);
});

afterAll(async () => {
  await b?.close();
  await a?.close();
  await db?.drop();
});

describe('a logoff while the session’s server is between owners', () => {
  it('is answered 503 SERVER_MOVING, and the node that takes the server ends the session as of the instant it was asked', async () => {
    const { serviceId } = await createService(a.app, a.adminToken, { pricePerMinute: '6.00' });
    const [service] = await db.sql<{ serverId: string }[]>`select server_id as "serverId" from services where id = ${serviceId}`;
    const serverId = service!.serverId;
    await until('a node runs the server', () => a.leases!.serves(serverId) || b.leases!.serves(serverId));
    const [owner, other] = a.leases!.serves(serverId) ? [a, b] : [b, a];
    const customer = await signUp(owner.app, { outstandingLimit: '100.00' });
    const opened = await owner.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '50.00' } });
    expect(opened.statusCode, opened.body).toBe(201);
    const sessionId = opened.json().id as string;

    // The owner goes (its lease handed to a node nobody can reach, as a node that died holds it until it lapses).
    await db.sql`insert into nodes (node_id, url, started_at, heartbeat_at, expires_at) values ('node-gone', 'http://127.0.0.1:9', now(), now(), now() + interval '1 hour')`;
    await db.sql`update server_leases set node_id = 'node-gone', epoch = epoch + 1 where server_id = ${serverId}`;
    await until('both nodes see the server gone', () => !owner.leases!.serves(serverId) && other.leases!.ownerOf(serverId)?.nodeId === 'node-gone');

    // Someone else's logoff of it is refused the same way, and not kept.
    const stranger = await signUp(other.app, { outstandingLimit: '10.00' });
    expect((await fetch(`${other.app.listeningOrigin}/v1/sessions/${sessionId}/logoff`, { method: 'POST', headers: stranger.auth })).status).toBe(503);
    await sleep(1_000);
    const askedAt = Date.now();
    const refused = await fetch(`${other.app.listeningOrigin}/v1/sessions/${sessionId}/logoff`, { method: 'POST', headers: customer.auth });
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { code: string }).code).toBe('SERVER_MOVING');
    await sleep(2_000);

    // Its lease lapses; a node takes the server and the logoff with it.
    await db.sql`update nodes set expires_at = now() - interval '1 second' where node_id = 'node-gone'`;
    const view = async () => (await other.app.inject({ url: `/v1/sessions/${sessionId}`, headers: customer.auth })).json();
    await until('the session settles', async () => (await view()).state === 'settled');
    const settled = await view();
    expect(settled.endReason).toBe('logoff');
    // Ended when it was asked, not two seconds later when a node could carry it out.
    expect(Math.abs(Date.parse(settled.endedAt) - askedAt)).toBeLessThan(300);
    expect(await db.sql`select 1 from session_end_requests where session_id = ${sessionId}`).toHaveLength(0);
  });
});
