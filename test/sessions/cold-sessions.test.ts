import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/**
 * A resting session lets its actor go (it is "cold": its row, its deadline and its seat) and
 * wakes from its row when something happens to it. Whatever a customer or an operator does, a
 * cold session must answer, charge and end exactly as a live one does.
 */
const clock = new ManualClock(Date.UTC(2026, 10, 30, 12, 0));
let tollgate: TestTollgate;
let serviceId: string;
let ops: Record<string, string>;

beforeAll(async () => {
  tollgate = await startTestTollgate({ clock });
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60', maxUsers: 5 }));
  ops = { authorization: `Bearer ${tollgate.adminToken}` };
});
afterAll(async () => {
  await tollgate.stop();
});

async function open(customer: { auth: Record<string, string> }, payload: Record<string, unknown> = {}) {
  const response = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '3.00', ...payload } });
  expect(response.statusCode, response.body).toBe(201);
  return response.json() as { id: string; cutoffAt: string; state: string };
}

const view = async (customer: { auth: Record<string, string> }, id: string) =>
  (await tollgate.app.inject({ url: `/v1/sessions/${id}`, headers: customer.auth })).json();

/** Lets every resting session go cold, and says how many did. */
const chill = () => tollgate.supervisor.sweepCold(0);

describe('a cold session', () => {
  it('keeps no actor, is shown as before, and is logged off at the same charge', async () => {
    const customer = await signUp(tollgate.app);
    const session = await open(customer);
    clock.advance(90_000);
    const warm = await view(customer, session.id);
    expect(chill()).toBeGreaterThanOrEqual(1);
    expect(tollgate.supervisor.snapshotOf(session.id)).toBeNull();
    expect(tollgate.supervisor.has(session.id)).toBe(true);
    expect(await view(customer, session.id)).toEqual(warm);

    const ended = (await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth })).json();
    expect(ended).toMatchObject({ state: 'settled', charge: '0.90', endReason: 'logoff' });
    const captures = await sandbox(tollgate.cardNetworkUrl).captures();
    expect(captures.filter((c) => c.id === ended.chargeSlip.id).map((c) => c.amount)).toEqual(['0.90']);
  });

  it('is cut at its limit by its deadline, woken from its row, and charged exactly the limit', async () => {
    const customer = await signUp(tollgate.app);
    const session = await open(customer, { maxCharge: '1.20' });
    chill();
    expect(tollgate.supervisor.snapshotOf(session.id)).toBeNull();
    clock.set(Date.parse(session.cutoffAt));
    await expect.poll(async () => (await view(customer, session.id)).state, { timeout: 10_000 }).toBe('settled');
    expect(await view(customer, session.id)).toMatchObject({ charge: '1.20', endReason: 'charge_limit' });
  });

  it('warns its customer before the cutoff when its warning deadline wakes it', async () => {
    const customer = await signUp(tollgate.app);
    const session = await open(customer, { maxCharge: '6.00' });
    const { warnAt } = await view(customer, session.id);
    chill();
    clock.set(Date.parse(warnAt) + 1);
    await expect.poll(() => tollgate.supervisor.snapshotOf(session.id)?.context.warnedAt ?? null, { timeout: 10_000 }).not.toBeNull();
    await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth });
  });

  it('is extended: the new limit moves its cutoff', async () => {
    const customer = await signUp(tollgate.app);
    const session = await open(customer, { maxCharge: '1.20' });
    chill();
    const extended = await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/extend`, headers: customer.auth, payload: { maxCharge: '2.40' } });
    expect(extended.statusCode, extended.body).toBe(200);
    expect(Date.parse(extended.json().cutoffAt) - Date.parse(session.cutoffAt)).toBe(120_000);
    await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth });
  });

  it('is terminated by an operator, and counted as active by the metrics meanwhile', async () => {
    const customer = await signUp(tollgate.app);
    const session = await open(customer);
    chill();
    const metrics = await tollgate.app.inject({ url: '/metrics', headers: ops });
    expect(metrics.body).toMatch(/tollgate_sessions\{state="active"\} [1-9]/);
    const terminated = await tollgate.app.inject({ method: 'POST', url: `/v1/ops/sessions/${session.id}/terminate`, headers: ops });
    expect(terminated.statusCode, terminated.body).toBeLessThan(300);
    expect(await view(customer, session.id)).toMatchObject({ state: 'settled', endReason: 'ops_terminated' });
  });

  it('keeps its seat: a full service stays full while its sessions are cold', async () => {
    const { serviceId: tiny } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60', maxUsers: 1 });
    const first = await signUp(tollgate.app);
    const second = await signUp(tollgate.app);
    const seated = await open(first, { serviceId: tiny });
    chill();
    const refused = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: second.auth, payload: { serviceId: tiny, maxCharge: '1.00' } });
    expect(refused.json().code).toBe('SERVICE_AT_CAPACITY');
    await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${seated.id}/logoff`, headers: first.auth });
    const admitted = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: second.auth, payload: { serviceId: tiny, maxCharge: '1.00' } });
    expect(admitted.statusCode, admitted.body).toBe(201);
  });

  it('does not go cold while a call is in flight or a write is pending, nor before it has been left alone long enough', async () => {
    const customer = await signUp(tollgate.app);
    const session = await open(customer);
    expect(tollgate.supervisor.sweepCold(60_000)).toBe(0);
    expect(tollgate.supervisor.snapshotOf(session.id)).not.toBeNull();
    clock.advance(60_000);
    await sandbox(tollgate.cardNetworkUrl).setFaults([{ phase: 'capture', fault: 'slow', delayMs: 500, times: 1 }]);
    const logoff = tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth });
    await expect.poll(() => tollgate.supervisor.snapshotOf(session.id)?.value ?? null).toMatchObject({ closing: expect.anything() });
    chill();
    expect(tollgate.supervisor.snapshotOf(session.id)).not.toBeNull();
    expect((await logoff).json()).toMatchObject({ state: 'settled', charge: '0.60' });
    await sandbox(tollgate.cardNetworkUrl).clearFaults();
  });

  it('comes back cold after a restart: no actor until its cutoff, then settled at the limit', async () => {
    const customer = await signUp(tollgate.app);
    const session = await open(customer, { maxCharge: '1.80' });
    tollgate = await tollgate.restart();
    expect(tollgate.supervisor.has(session.id)).toBe(true);
    expect(tollgate.supervisor.snapshotOf(session.id)).toBeNull();
    clock.set(Date.parse(session.cutoffAt));
    await expect.poll(async () => (await view(customer, session.id)).state, { timeout: 10_000 }).toBe('settled');
    expect(await view(customer, session.id)).toMatchObject({ charge: '1.80', endReason: 'charge_limit' });
  });
});
