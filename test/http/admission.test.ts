import { setTimeout as sleep } from 'node:timers/promises';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUp } from '../helpers/customers.js';
import { expectLedgerBalanced, settledSessions } from '../helpers/ledger.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

let tollgate: TestTollgate;
let baseUrl: string;
let ops: Record<string, string>;
/** Every session an answer showed settled: the ledger check expects exactly these. */
const settled = settledSessions();

async function listen() {
  await tollgate.app.listen({ port: 0, host: '127.0.0.1' });
  baseUrl = `http://127.0.0.1:${(tollgate.app.server.address() as AddressInfo).port}`;
  ops = { authorization: `Bearer ${tollgate.adminToken}` };
}

beforeAll(async () => {
  tollgate = await startTestTollgate();
  await listen();
});
afterAll(async () => {
  await expectLedgerBalanced(tollgate.sql, { settled: settled.count });
  await tollgate.stop();
});

async function call(method: string, path: string, headers: Record<string, string>, body?: object) {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : null,
  });
  const answer = { status: response.status, headers: response.headers, body: (await response.json()) as any };
  settled.note(answer.body);
  return answer;
}

async function addService(serverId: string, maxUsers: number, pricePerMinute = '1.00') {
  const { body } = await call('POST', '/v1/services', ops, {
    name: `svc-${Math.random().toString(36).slice(2)}`,
    serverId,
    pricePerMinute,
    maxUsers,
  });
  return body.id as string;
}

async function addServer(maxUsers: number) {
  const { body } = await call('POST', '/v1/servers', ops, { name: `srv-${Math.random().toString(36).slice(2)}`, maxUsers });
  return body.id as string;
}

async function holdsAtSandbox(): Promise<number> {
  return ((await (await fetch(`${tollgate.cardNetworkUrl}/v1/holds`)).json()) as { holds: unknown[] }).holds.length;
}

async function opsServer(serverId: string) {
  const { body } = await call('GET', '/v1/ops/servers', ops);
  return body.servers.find((s: { id: string }) => s.id === serverId);
}

/** Fires `count` opens at once and samples the active sessions per cap while they run. */
async function race(auth: Record<string, string>, serviceId: string, serverId: string, count: number) {
  const peaks = { service: 0, server: 0, serviceRows: 0 };
  let running = true;
  const sampler = (async () => {
    while (running) {
      const service = tollgate.occupancy.getSnapshot().context.gates[`service:${serviceId}`]!;
      const server = tollgate.occupancy.getSnapshot().context.gates[`server:${serverId}`]!;
      const [rows] = await tollgate.sql<{ n: number }[]>`
        select count(*)::int as n from sessions where service_id = ${serviceId} and state in ('authorizing', 'active')`;
      peaks.service = Math.max(peaks.service, service.activeUsers);
      peaks.server = Math.max(peaks.server, server.activeUsers);
      peaks.serviceRows = Math.max(peaks.serviceRows, rows!.n);
      await sleep(2);
    }
  })();
  const holdsBefore = await holdsAtSandbox();
  const results = await Promise.all(
    Array.from({ length: count }, () => call('POST', '/v1/sessions', auth, { serviceId, maxCharge: '1.00' })),
  );
  running = false;
  await sampler;
  const byStatus = (status: number) => results.filter((r) => r.status === status);
  return { results, byStatus, peaks, newHolds: (await holdsAtSandbox()) - holdsBefore };
}

describe('caps on concurrent users', () => {
  it('admits exactly the service cap out of 300 simultaneous opens and authorizes no one else', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '100000.00' });
    const serverId = await addServer(60);
    const serviceId = await addService(serverId, 40);
    const sibling = await addService(serverId, 40);
    const { byStatus, peaks, newHolds, results } = await race(customer.auth, serviceId, serverId, 300);

    expect(byStatus(201)).toHaveLength(40);
    const rejected = byStatus(409);
    expect(rejected).toHaveLength(260);
    expect(rejected.every((r) => r.body.code === 'SERVICE_AT_CAPACITY')).toBe(true);
    expect(rejected[0]!.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(results.every((r) => r.status === 201 || r.status === 409)).toBe(true);
    // The sampler saw the sessions come in, and never more than the cap.
    expect(peaks.service).toBeGreaterThan(0);
    expect(peaks.service).toBeLessThanOrEqual(40);
    expect(peaks.serviceRows).toBeLessThanOrEqual(40);
    expect(peaks.server).toBeLessThanOrEqual(60);
    // No hold was placed for a session that could not run.
    expect(newHolds).toBe(40);

    // The server has 20 seats left, for the other service.
    const siblingRace = await race(customer.auth, sibling, serverId, 30);
    expect(siblingRace.byStatus(201)).toHaveLength(20);
    expect(siblingRace.byStatus(409).every((r) => r.body.code === 'SERVER_AT_CAPACITY')).toBe(true);
    expect((await opsServer(serverId)).activeUsers).toBe(60);

    for (const r of [...byStatus(201), ...siblingRace.byStatus(201)]) {
      expect((await call('POST', `/v1/sessions/${r.body.id}/logoff`, customer.auth)).status).toBe(200);
    }
    const after = await opsServer(serverId);
    expect(after.activeUsers).toBe(0);
    expect(after.services.map((s: { activeUsers: number }) => s.activeUsers)).toEqual([0, 0]);
  });

  it('admits exactly the server cap when it is the tighter one', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '100000.00' });
    const serverId = await addServer(25);
    const serviceId = await addService(serverId, 40);
    await addService(serverId, 40);
    const { byStatus, peaks, newHolds, results } = await race(customer.auth, serviceId, serverId, 300);
    // Every request is answered as admitted or full: never an error.
    expect(results.filter((r) => r.status !== 201 && r.status !== 409).map((r) => r.body)).toEqual([]);
    expect(byStatus(201)).toHaveLength(25);
    expect(byStatus(409)).toHaveLength(275);
    expect(byStatus(409).every((r) => r.body.code === 'SERVER_AT_CAPACITY')).toBe(true);
    expect(peaks.server).toBeLessThanOrEqual(25);
    expect(peaks.service).toBeLessThanOrEqual(40);
    expect(newHolds).toBe(25);
    for (const r of byStatus(201)) await call('POST', `/v1/sessions/${r.body.id}/logoff`, customer.auth);
    expect((await opsServer(serverId)).activeUsers).toBe(0);
  });

  it('shows the seats free of a service within what its server has left, in the catalogue and on the web site', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '100.00' });
    const serverId = await addServer(1);
    const first = await addService(serverId, 20);
    const second = await addService(serverId, 20);
    const seatsFree = async (serviceId: string) => (await call('GET', '/v1/services', {})).body.services.find((s: { id: string }) => s.id === serviceId).seatsFree;
    const row = async (serviceId: string) =>
      (await (await fetch(`${baseUrl}/`)).text()).match(new RegExp(`<tr data-service="${serviceId}">[\\s\\S]*?</tr>`))![0];
    expect([await seatsFree(first), await seatsFree(second)]).toEqual([1, 1]);
    const opened = await call('POST', '/v1/sessions', customer.auth, { serviceId: first, maxCharge: '1.00' });
    expect(opened.status).toBe(201);
    // The server's one seat is taken: neither service has a seat for an open, whatever its own cap.
    expect([await seatsFree(first), await seatsFree(second)]).toEqual([0, 0]);
    expect(await row(second)).toContain('<span data-field="seatsFree">0</span> of 20');
    expect((await call('POST', '/v1/sessions', customer.auth, { serviceId: second, maxCharge: '1.00' })).body.code).toBe('SERVER_AT_CAPACITY');
    await call('POST', `/v1/sessions/${opened.body.id}/logoff`, customer.auth);
    expect(await seatsFree(second)).toBe(1);
  });

  it('lets a customer hold several sessions at once, each counted against the caps', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '100.00' });
    const serverId = await addServer(10);
    const a = await addService(serverId, 10);
    const b = await addService(serverId, 10);
    const opened = [
      await call('POST', '/v1/sessions', customer.auth, { serviceId: a, maxCharge: '1.00' }),
      await call('POST', '/v1/sessions', customer.auth, { serviceId: a, maxCharge: '1.00' }),
      await call('POST', '/v1/sessions', customer.auth, { serviceId: b, maxCharge: '1.00' }),
    ];
    expect(opened.map((o) => o.status)).toEqual([201, 201, 201]);
    const server = await opsServer(serverId);
    expect(server.activeUsers).toBe(3);
    expect(server.services.find((s: { id: string }) => s.id === a).activeUsers).toBe(2);
    // Each customer's estimates count once, however many sessions they hold.
    expect(server).toMatchObject({ connectedCustomers: 1, estimatedStorageGb: 20, estimatedProcessingHours: 3.5 });
    const { body } = await call('GET', '/v1/services', {});
    expect(body.services.find((s: { id: string }) => s.id === a).activeUsers).toBe(2);
    for (const o of opened) await call('POST', `/v1/sessions/${o.body.id}/logoff`, customer.auth);
  });
});

describe('waiting for a seat', () => {
  it('queues first in, first out, and admits a waiter only when a seat frees', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '100.00' });
    const serverId = await addServer(10);
    const serviceId = await addService(serverId, 1);
    const first = await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '1.00' });
    expect(first.status).toBe(201);
    const order: string[] = [];
    const queued = async (count: number) => {
      while ((await opsServer(serverId)).services[0].queued < count) await sleep(10);
    };
    const second = call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '1.00', waitSeconds: 20 }).then(
      (r) => (order.push('second'), r),
    );
    // The third arrives once the second is in the queue.
    await queued(1);
    const third = call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '1.00', waitSeconds: 20 }).then(
      (r) => (order.push('third'), r),
    );
    await queued(2);
    const queuedView = (await opsServer(serverId)).services[0];
    expect(queuedView).toMatchObject({ activeUsers: 1, queued: 2 });
    expect(queuedView.oldestWaitSeconds).toEqual(expect.any(Number));
    // Nobody jumps the queue, even without waiting.
    expect((await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '1.00' })).body.code).toBe(
      'SERVICE_AT_CAPACITY',
    );
    // While the seat is held, both still wait.
    expect(order).toEqual([]);

    await call('POST', `/v1/sessions/${first.body.id}/logoff`, customer.auth);
    const admitted = await second;
    expect(admitted.status).toBe(201);
    expect(order).toEqual(['second']);
    expect((await opsServer(serverId)).services[0]).toMatchObject({ activeUsers: 1, queued: 1 });
    await call('POST', `/v1/sessions/${admitted.body.id}/logoff`, customer.auth);
    const last = await third;
    expect(last.status).toBe(201);
    expect(order).toEqual(['second', 'third']);
    await call('POST', `/v1/sessions/${last.body.id}/logoff`, customer.auth);
    expect((await opsServer(serverId)).services[0]).toMatchObject({ activeUsers: 0, queued: 0, oldestWaitSeconds: null });
  });

  it('answers 409 when the wait ends with no seat, and refuses a wait beyond the configured bound', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '100.00' });
    const serverId = await addServer(1);
    const serviceId = await addService(serverId, 5);
    const holder = await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '1.00' });
    expect(holder.status).toBe(201);
    let answered = false;
    const waiting = call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '1.00', waitSeconds: 1 }).finally(() => {
      answered = true;
    });
    // It waits in the queue rather than being turned away at once...
    while ((await opsServer(serverId)).queued === 0 && !answered) await sleep(10);
    expect(answered).toBe(false);
    // ...and, no seat having freed, leaves it with a 409 when its wait ends.
    const waited = await waiting;
    expect(waited.status).toBe(409);
    expect(waited.body.code).toBe('SERVER_AT_CAPACITY');
    expect((await opsServer(serverId)).queued).toBe(0);
    expect((await call('GET', `/v1/sessions/${holder.body.id}`, customer.auth)).body.state).toBe('active');
    const tooLong = await call('POST', '/v1/sessions', customer.auth, { serviceId, waitSeconds: 100_000 });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.code).toBe('VALIDATION_FAILED');
    await call('POST', `/v1/sessions/${holder.body.id}/logoff`, customer.auth);
  });
});

describe('operators changing caps and prices', () => {
  it('stops admissions below a lowered cap without ending running sessions, and admits again when raised', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '100.00' });
    const serverId = await addServer(10);
    const serviceId = await addService(serverId, 3);
    const running = [];
    for (let i = 0; i < 3; i++) running.push((await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '1.00' })).body);
    const lowered = await call('PATCH', `/v1/services/${serviceId}`, ops, { maxUsers: 1 });
    expect(lowered.status).toBe(200);
    expect(lowered.body).toMatchObject({ maxUsers: 1, activeUsers: 3 });
    for (const session of running) {
      expect((await call('GET', `/v1/sessions/${session.id}`, customer.auth)).body.state).toBe('active');
    }
    await call('POST', `/v1/sessions/${running[0].id}/logoff`, customer.auth);
    expect((await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '1.00' })).status).toBe(409);
    expect((await call('PATCH', `/v1/servers/${serverId}`, ops, { maxUsers: 2 })).body.maxUsers).toBe(2);
    await call('PATCH', `/v1/services/${serviceId}`, ops, { maxUsers: 5 });
    // Two running on a server now capped at two: still full.
    expect((await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '1.00' })).body.code).toBe(
      'SERVER_AT_CAPACITY',
    );
    await call('PATCH', `/v1/servers/${serverId}`, ops, { maxUsers: 10 });
    const admitted = await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '1.00' });
    expect(admitted.status).toBe(201);
    for (const s of [running[1], running[2], admitted.body]) await call('POST', `/v1/sessions/${s.id}/logoff`, customer.auth);
  });

  it('applies a new price to new sessions only', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '100.00' });
    const serverId = await addServer(10);
    const serviceId = await addService(serverId, 5, '1.00');
    const before = (await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '2.00' })).body;
    const changed = await call('PATCH', `/v1/services/${serviceId}`, ops, { pricePerMinute: '3.00' });
    expect(changed.body.pricePerMinute).toBe('3.00');
    const after = (await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '2.00' })).body;
    expect(before.pricePerMinute).toBe('1.00');
    expect(after.pricePerMinute).toBe('3.00');
    // The first session keeps its tariff: 2.00 lasts 120 s at 1.00, 40 s at 3.00.
    expect(Date.parse(before.cutoffAt) - Date.parse(before.startedAt)).toBe(120_000);
    expect(Date.parse(after.cutoffAt) - Date.parse(after.startedAt)).toBe(40_000);
    for (const s of [before, after]) await call('POST', `/v1/sessions/${s.id}/logoff`, customer.auth);
  });

  it('opens a session that waited for its seat at a price lowered meanwhile, and refuses it, holding nothing, at one raised', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '1000.00' });
    const serverId = await addServer(10);
    const serviceId = await addService(serverId, 1, '60.00');
    const waitBehind = async (holderCharge: string, pricePerMinute: string) => {
      // A minute at least: the seat frees when the holder logs off, not at its limit.
      const holder = (await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: holderCharge })).body;
      const waiting = call('POST', '/v1/sessions', customer.auth, { serviceId, maxMinutes: 0.5, waitSeconds: 20 });
      while ((await opsServer(serverId)).services[0].queued < 1) await sleep(10);
      expect((await call('PATCH', `/v1/services/${serviceId}`, ops, { pricePerMinute })).status).toBe(200);
      await call('POST', `/v1/sessions/${holder.id}/logoff`, customer.auth);
      return waiting;
    };
    const lowered = await waitBehind('60.00', '0.60');
    expect(lowered.status, JSON.stringify(lowered.body)).toBe(201);
    // Half a minute at 0.60 holds 0.30, not the 30.00 of the price it asked at.
    expect(lowered.body).toMatchObject({ pricePerMinute: '0.60', maxCharge: '0.30' });
    await call('POST', `/v1/sessions/${lowered.body.id}/logoff`, customer.auth);
    const raised = await waitBehind('1.00', '600.00');
    expect(raised.status).toBe(409);
    expect(raised.body).toMatchObject({ code: 'PRICE_CHANGED', pricePerMinute: '600.00' });
    expect((await call('GET', '/v1/account', customer.auth)).body.account.reserved).toBe('0.00');
    expect((await opsServer(serverId)).activeUsers).toBe(0);
  });

  it('refuses bad catalogue changes with stable codes', async () => {
    const serverId = await addServer(1);
    expect((await call('PATCH', `/v1/servers/${serverId}`, ops, {})).body.code).toBe('VALIDATION_FAILED');
    expect((await call('PATCH', `/v1/servers/${serverId}`, ops, { maxUsers: -1 })).body.code).toBe('VALIDATION_FAILED');
    expect((await call('PATCH', '/v1/services/00000000-0000-4000-8000-000000000000', ops, { maxUsers: 1 })).body.code).toBe(
      'SERVICE_NOT_FOUND',
    );
    // A service does not move: asked to, with a name, it is refused whole, not renamed and left where it is.
    const serviceId = await addService(serverId, 1);
    const otherServer = await addServer(1);
    const moved = await call('PATCH', `/v1/services/${serviceId}`, ops, { serverId: otherServer, name: 'moved' });
    expect(moved.status).toBe(400);
    expect(moved.body).toMatchObject({ code: 'VALIDATION_FAILED', issues: [{ path: 'body.serverId', message: expect.stringContaining('stays on the server') }] });
    // Nor is any other field it does not take dropped with the rest applied.
    expect((await call('PATCH', `/v1/services/${serviceId}`, ops, { name: 'renamed', currency: 'EUR' })).body.code).toBe('VALIDATION_FAILED');
    expect((await call('PATCH', `/v1/servers/${serverId}`, ops, { name: 'renamed', region: 'eu' })).body.code).toBe('VALIDATION_FAILED');
    const customer = await signUp(tollgate.app);
    expect((await call('PATCH', `/v1/servers/${serverId}`, customer.auth, { maxUsers: 5 })).status).toBe(403);
  });
});

describe('restart', () => {
  it('rebuilds the gates with the seats that active sessions hold', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '100.00' });
    const serverId = await addServer(10);
    const a = await addService(serverId, 4);
    const b = await addService(serverId, 4);
    const opened = [];
    for (const serviceId of [a, a, b, b]) {
      opened.push((await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '1.00' })).body);
    }
    await call('POST', `/v1/sessions/${opened[3].id}/logoff`, customer.auth);
    const before = await opsServer(serverId);

    tollgate = await tollgate.restart();
    await listen();

    const after = await opsServer(serverId);
    expect(after).toEqual({ ...before, oldestWaitSeconds: null });
    expect(after.activeUsers).toBe(3);
    expect(after.services.find((s: { id: string }) => s.id === a).activeUsers).toBe(2);
    expect(after.services.find((s: { id: string }) => s.id === b).activeUsers).toBe(1);
    for (const s of opened.slice(0, 3)) {
      expect((await call('POST', `/v1/sessions/${s.id}/logoff`, customer.auth)).status).toBe(200);
    }
    expect((await opsServer(serverId)).activeUsers).toBe(0);
  });
});
