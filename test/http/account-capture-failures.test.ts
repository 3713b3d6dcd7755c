import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

const clock = new ManualClock(Date.UTC(2026, 10, 30, 9, 0, 0));
let tollgate: TestTollgate;
beforeAll(async () => {
  tollgate = await startTestTollgate({ clock, env: { CAPTURE_RETRY_BASE_MS: '50', CAPTURE_RETRY_MAX_MS: '100', LOGOFF_WAIT_MS: '2000', WEBHOOK_POLL_MS: '50' } });
});
afterAll(() => tollgate.stop());

describe('a capture the card company refuses for good', () => {
  it('suspends the account by tollgate itself, ending its other sessions', async () => {
    const customer = await signUp(tollgate.app);
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '60.00' });
    const open = async () => (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '5.00' } })).json();
    const doomed = await open();
    const other = await open();
    const hold = (await sandbox(tollgate.cardNetworkUrl).holds()).find((h) => h.reference === doomed.id)!;
    // Someone voids the hold at the card company: its capture can never succeed.
    await fetch(`${tollgate.cardNetworkUrl}/v1/holds/${hold.id}/void`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': `outside-${hold.id}` },
      body: '{}',
    });
    clock.advance(1_100);
    expect((await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${doomed.id}/logoff`, headers: customer.auth })).json().state).toBe('closing');

    const account = async () => (await tollgate.app.inject({ url: '/v1/account', headers: customer.auth })).json().account;
    await expect.poll(async () => (await account()).state, { timeout: 10_000 }).toBe('suspended');
    const history = (await tollgate.app.inject({ url: '/v1/account/history', headers: customer.auth })).json().history;
    expect(history.at(-1)).toMatchObject({ event: 'SUSPEND', by: { kind: 'system', name: 'tollgate' }, reason: `the card company refused the capture of session ${doomed.id} for good` });
    await expect
      .poll(async () => (await tollgate.app.inject({ url: `/v1/sessions/${other.id}`, headers: customer.auth })).json())
      .toMatchObject({ state: 'settled', endReason: 'ops_terminated', charge: '1.00' });
  });
});
