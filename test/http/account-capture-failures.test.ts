import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

const clock = new ManualClock(Date.UTC(2026, 10, 30, 9, 0, 0));
let tollgate: TestTollgate;
let serviceId: string;
beforeAll(async () => {
  // SUSPEND_AFTER_REFUSED_CAPTURES is left at its default, 2.
  tollgate = await startTestTollgate({ clock, env: { CAPTURE_RETRY_BASE_MS: '50', CAPTURE_RETRY_MAX_MS: '100', LOGOFF_WAIT_MS: '2000', WEBHOOK_POLL_MS: '50' } });
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '60.00' }));
});
afterAll(() => tollgate.stop());

type Customer = Awaited<ReturnType<typeof signUp>>;
const open = async (customer: Customer) =>
  (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '5.00' } })).json() as { id: string };
const accountOf = async (customer: Customer) => (await tollgate.app.inject({ url: '/v1/account', headers: customer.auth })).json().account;
const refusalsCounted = async (customer: Customer) =>
  Number((await tollgate.db.sql`select count(*) from account_refused_captures where account_id = ${customer.account.id}`)[0]!.count);

/** Someone voids the session's hold at the card company, then the customer logs off: its capture can never succeed. */
async function refuseCapture(customer: Customer, sessionId: string) {
  const hold = (await sandbox(tollgate.cardNetworkUrl).holds()).find((h) => h.reference === sessionId)!;
  await fetch(`${tollgate.cardNetworkUrl}/v1/holds/${hold.id}/void`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': `outside-${hold.id}` },
    body: '{}',
  });
  clock.advance(1_100);
  expect((await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${sessionId}/logoff`, headers: customer.auth })).json().state).toBe('closing');
}

describe('captures the card company refuses for good', () => {
  it('suspend the account by tollgate itself only once they repeat, ending its other sessions', async () => {
    const customer = await signUp(tollgate.app);
    const first = await open(customer);
    const second = await open(customer);
    const other = await open(customer);
    await refuseCapture(customer, first.id);
    // Counted, and one refusal is not yet a suspension: the account still opens sessions.
    await expect.poll(() => refusalsCounted(customer), { timeout: 10_000 }).toBe(1);
    expect((await accountOf(customer)).state).toBe('active');

    await refuseCapture(customer, second.id);
    await expect.poll(async () => (await accountOf(customer)).state, { timeout: 10_000 }).toBe('suspended');
    const history = (await tollgate.app.inject({ url: '/v1/account/history', headers: customer.auth })).json().history;
    expect(history.at(-1)).toMatchObject({
      event: 'SUSPEND',
      by: { kind: 'system', name: 'tollgate' },
      reason: `the card company refused the captures of 2 sessions for good, the last of session ${second.id}`,
    });
    await expect
      .poll(async () => (await tollgate.app.inject({ url: `/v1/sessions/${other.id}`, headers: customer.auth })).json())
      .toMatchObject({ state: 'settled', endReason: 'ops_terminated', charge: '2.00' });
  });

  it('counts afresh after an operator resumes the account', async () => {
    const customer = await signUp(tollgate.app);
    const ops = { authorization: `Bearer ${tollgate.adminToken}` };
    for (const _ of [1, 2]) await refuseCapture(customer, (await open(customer)).id);
    await expect.poll(async () => (await accountOf(customer)).state, { timeout: 10_000 }).toBe('suspended');
    clock.advance(1_000);
    await tollgate.app.inject({ method: 'POST', url: `/v1/ops/accounts/${customer.account.id}/resume`, headers: ops, payload: { reason: 'card company says it was theirs' } });
    clock.advance(1_000);
    await refuseCapture(customer, (await open(customer)).id);
    await expect.poll(() => refusalsCounted(customer), { timeout: 10_000 }).toBe(3);
    expect((await accountOf(customer)).state).toBe('active');
  });
});
