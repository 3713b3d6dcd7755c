import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

// The test moves the clock: the cutoff passes while the card company is still answering.
const clock = new ManualClock(Date.UTC(2026, 10, 30, 9));
let tollgate: TestTollgate;
let serviceId: string;

beforeAll(async () => {
  tollgate = await startTestTollgate({ clock });
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' }));
});
afterAll(async () => {
  await tollgate.stop();
});

describe('an extension its session’s cutoff overtakes', () => {
  it('answers 409 EXTENSION_TOO_LATE, and the session ends at its old limit holding nothing more', async () => {
    // The slow test card: the card company answers each call after two seconds.
    const customer = await signUp(tollgate.app, { outstandingLimit: '100.00', card: { number: '4000000000000077', expMonth: 12, expYear: 2031, cvc: '123' } });
    // 0.05 at 0.60 a minute: five seconds.
    const opened = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '0.05' } })).json();
    expect(opened.state).toBe('active');
    const network = sandbox(tollgate.cardNetworkUrl);
    const increments = async () => (await network.calls()).increment ?? 0;
    const before = await increments();
    const extending = tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${opened.id}/extend`, headers: customer.auth, payload: { maxCharge: '0.10' } });
    // The raise is at the card company; the cutoff passes before it answers.
    await expect.poll(increments, { timeout: 5_000, interval: 20 }).toBeGreaterThan(before);
    clock.advance(5_000);
    const late = await extending;
    expect(late.statusCode).toBe(409);
    expect(late.json()).toMatchObject({ code: 'EXTENSION_TOO_LATE', endReason: 'charge_limit' });
    const view = async () => (await tollgate.app.inject({ url: `/v1/sessions/${opened.id}`, headers: customer.auth })).json();
    await expect.poll(async () => (await view()).state, { timeout: 15_000 }).toBe('settled');
    expect(await view()).toMatchObject({ endReason: 'charge_limit', charge: '0.05' });
    expect((await tollgate.app.inject({ url: '/v1/account', headers: customer.auth })).json().account.reserved).toBe('0.00');
  });
});
