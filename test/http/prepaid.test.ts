import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { expectLedgerBalanced } from '../helpers/ledger.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

// The test moves the clock: a session's charge is exactly the time the test says it ran.
const clock = new ManualClock(Date.UTC(2026, 10, 30, 9, 0, 0));
let tollgate: TestTollgate;
let serviceId: string;
beforeAll(async () => {
  tollgate = await startTestTollgate({ clock });
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' }));
});
afterAll(() => tollgate.stop());

type Headers = Record<string, string>;
const call = (method: 'GET' | 'POST' | 'PATCH', url: string, headers: Headers, payload?: object) =>
  tollgate.app.inject({ method, url, headers, ...(payload && { payload }) });

async function prepaidCustomer(topUp: string) {
  const customer = await signUp(tollgate.app);
  expect((await call('PATCH', '/v1/account', customer.auth, { paymentMode: 'prepaid' })).json().account.paymentMode).toBe('prepaid');
  const toppedUp = await call('POST', '/v1/account/top-ups', customer.auth, { amount: topUp });
  expect(toppedUp.statusCode).toBe(201);
  return { ...customer, topUp: toppedUp.json().topUp };
}

describe('a prepaid balance', () => {
  it('is topped up by a card charge, once per Idempotency-Key', async () => {
    const customer = await signUp(tollgate.app);
    await call('PATCH', '/v1/account', customer.auth, { paymentMode: 'prepaid' });
    const headers = { ...customer.auth, 'idempotency-key': 'top-up-1' };
    const first = await call('POST', '/v1/account/top-ups', headers, { amount: '20.00' });
    expect(first.statusCode).toBe(201);
    expect(first.json().topUp).toMatchObject({ amount: '20.00', state: 'charged' });
    expect(first.json().account).toMatchObject({ balance: '20.00', balanceHeld: '0.00' });
    const again = await call('POST', '/v1/account/top-ups', headers, { amount: '20.00' });
    expect(again.json().topUp.id).toBe(first.json().topUp.id);
    expect((await call('GET', '/v1/account', customer.auth)).json().account.balance).toBe('20.00');
    const captures = await sandbox(tollgate.cardNetworkUrl).captures();
    expect(captures.filter((c) => c.id === first.json().topUp.chargeId)).toEqual([expect.objectContaining({ amount: '20.00' })]);
  });

  it('opens a session with no card call, holds from the balance, and gives back what was not used', async () => {
    const customer = await prepaidCustomer('20.00');
    const network = sandbox(tollgate.cardNetworkUrl);
    const holdsBefore = await network.holds();
    const callsBefore = await network.calls();

    const opened = await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '5.00' });
    expect(opened.statusCode).toBe(201);
    const session = opened.json();
    expect(session.state).toBe('active');
    // No card call at open: the card network has no new hold and answered no authorization.
    expect(await network.holds()).toEqual(holdsBefore);
    expect((await network.calls()).authorize ?? 0).toBe(callsBefore.authorize ?? 0);
    expect((await call('GET', '/v1/account', customer.auth)).json().account).toMatchObject({ balance: '15.00', balanceHeld: '5.00', reserved: '5.00' });

    clock.advance(60_000);
    const ended = (await call('POST', `/v1/sessions/${session.id}/logoff`, customer.auth)).json();
    expect(ended).toMatchObject({ state: 'settled', charge: '0.60', chargeSlip: { amount: '0.60' } });
    // 5.00 held, 0.60 used: 4.40 back.
    expect((await call('GET', '/v1/account', customer.auth)).json().account).toMatchObject({ balance: '19.40', balanceHeld: '0.00', reserved: '0.00' });
    expect((await network.captures()).some((c) => c.id === ended.chargeSlip.id)).toBe(false);
    await expectLedgerBalanced(tollgate.sql, { settled: 1 });
  });

  it('declines a session that needs more than the balance, and holds nothing', async () => {
    const customer = await prepaidCustomer('2.00');
    const refused = await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '5.00' });
    expect(refused.statusCode).toBe(402);
    expect(refused.json()).toMatchObject({ code: 'BALANCE_TOO_LOW', reason: 'balance_too_low' });
    expect((await call('GET', '/v1/account', customer.auth)).json().account).toMatchObject({ balance: '2.00', balanceHeld: '0.00', reserved: '0.00' });
  });

  it('refuses an open that names no charge limit on an empty balance as the balance, not the outstanding limit', async () => {
    const customer = await signUp(tollgate.app);
    expect((await call('PATCH', '/v1/account', customer.auth, { paymentMode: 'prepaid' })).json().account).toMatchObject({ paymentMode: 'prepaid', balance: '0.00' });
    const refused = await call('POST', '/v1/sessions', customer.auth, { serviceId });
    expect([refused.statusCode, refused.json().code]).toEqual([402, 'BALANCE_TOO_LOW']);
  });

  it('holds no more than the free balance when the open names no charge limit', async () => {
    const customer = await prepaidCustomer('2.00');
    const opened = await call('POST', '/v1/sessions', customer.auth, { serviceId });
    expect(opened.statusCode, opened.body).toBe(201);
    expect(opened.json()).toMatchObject({ state: 'active', maxCharge: '2.00' });
    expect((await call('GET', '/v1/account', customer.auth)).json().account).toMatchObject({ balance: '0.00', balanceHeld: '2.00', reserved: '2.00' });
    clock.advance(30_000);
    expect((await call('POST', `/v1/sessions/${opened.json().id}/logoff`, customer.auth)).json()).toMatchObject({ state: 'settled', charge: '0.30' });
  });

  it('charges the whole hold at the limit and raises it from the balance on extension', async () => {
    const customer = await prepaidCustomer('10.00');
    const session = (await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '1.00' })).json();
    const extended = await call('POST', `/v1/sessions/${session.id}/extend`, customer.auth, { maxCharge: '2.00' });
    expect(extended.json().maxCharge).toBe('2.00');
    expect((await call('GET', '/v1/account', customer.auth)).json().account).toMatchObject({ balance: '8.00', balanceHeld: '2.00' });
    clock.advance(200_000);
    await expect.poll(async () => (await call('GET', `/v1/sessions/${session.id}`, customer.auth)).json().state).toBe('settled');
    expect((await call('GET', '/v1/account', customer.auth)).json().account).toMatchObject({ balance: '8.00', balanceHeld: '0.00' });
  });

  it('keeps a top-up whose capture the network declined pending, with its hold, and charges it once when asked again', async () => {
    const customer = await signUp(tollgate.app);
    await call('PATCH', '/v1/account', customer.auth, { paymentMode: 'prepaid' });
    const network = sandbox(tollgate.cardNetworkUrl);
    const headers = { ...customer.auth, 'idempotency-key': 'top-up-capture-declined' };
    await network.setFaults([{ phase: 'capture', fault: 'decline', times: 1 }]);
    const first = await call('POST', '/v1/account/top-ups', headers, { amount: '20.00' });
    await network.clearFaults();
    // The card approved the hold: the capture's decline was the network's, so nothing is decided yet.
    expect(first.statusCode, first.body).toBe(503);
    expect(first.json().code).toBe('CARD_NETWORK_UNAVAILABLE');
    const [pending] = (await call('GET', '/v1/account/top-ups', customer.auth)).json().topUps;
    expect(pending).toMatchObject({ amount: '20.00', state: 'pending' });
    expect(first.json().topUpId).toBe(pending.id);
    expect(first.json().detail).not.toMatch(/nothing was charged/);
    expect(await network.holds(`?reference=topup:${pending.id}`)).toEqual([expect.objectContaining({ state: 'open', amount: '20.00' })]);

    const again = await call('POST', '/v1/account/top-ups', headers, { amount: '20.00' });
    expect(again.statusCode, again.body).toBe(201);
    expect(again.json().topUp).toMatchObject({ id: pending.id, state: 'charged' });
    expect(again.json().account).toMatchObject({ balance: '20.00' });
    expect(await network.holds(`?reference=topup:${pending.id}`)).toEqual([expect.objectContaining({ state: 'captured', amount: '20.00' })]);
    expect((await network.captures()).filter((c) => c.id === again.json().topUp.chargeId)).toEqual([expect.objectContaining({ amount: '20.00' })]);
  });

  it('charges no top-up for an account that closed after the request got past its token check', async () => {
    const customer = await prepaidCustomer('10.00');
    const network = sandbox(tollgate.cardNetworkUrl);
    const closed = await call('POST', '/v1/account/close', customer.auth, { reason: 'leaving' });
    expect(closed.statusCode, closed.body).toBe(200);
    const capturesBefore = (await network.calls()).capture ?? 0;
    // The request a close overtook: its token was good when it was checked (HTTP cannot reach this now).
    await expect(tollgate.topUps.topUp(customer.account.id, 2_000_000n)).rejects.toMatchObject({ code: 'ACCOUNT_NOT_ACTIVE' });
    expect((await network.calls()).capture ?? 0).toBe(capturesBefore);
    const [row] = await tollgate.sql<{ count: number }[]>`select count(*)::int as count from top_ups where account_id = ${customer.account.id}`;
    expect(row!.count).toBe(1);
  });

  it('tells a top-up charged while its account closed that it goes back to the card, and sends it back', async () => {
    const customer = await prepaidCustomer('10.00');
    const network = sandbox(tollgate.cardNetworkUrl);
    await network.setFaults([{ phase: 'authorize', fault: 'slow', times: 1, delayMs: 800 }]);
    try {
      const topUp = call('POST', '/v1/account/top-ups', customer.auth, { amount: '2.00' });
      // The top-up's row is written and its card call under way when the close commits.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await call('POST', '/v1/account/close', customer.auth, { reason: 'leaving' })).statusCode).toBe(200);
      const answer = await topUp;
      expect(answer.statusCode).toBe(409);
      expect(answer.json()).toMatchObject({ code: 'ACCOUNT_NOT_ACTIVE', state: 'closed', detail: expect.stringContaining('goes back to the card') });
    } finally {
      await network.clearFaults();
    }
    const [account] = await tollgate.sql<{ balance: bigint }[]>`select balance_micros as balance from accounts where id = ${customer.account.id}`;
    expect(account!.balance).toBe(0n);
    const [refunded] = await tollgate.sql<{ total: string }[]>`
      select coalesce(sum(amount_micros), 0)::text as total from balance_refunds where account_id = ${customer.account.id} and state = 'refunded'`;
    expect(refunded!.total).toBe('12000000');
  });

  it('answers an open of an account that may not open ACCOUNT_NOT_ACTIVE, not that its empty balance is too low', async () => {
    const customer = await signUp(tollgate.app);
    expect((await call('PATCH', '/v1/account', customer.auth, { paymentMode: 'prepaid' })).statusCode).toBe(200);
    const ops = { authorization: `Bearer ${tollgate.adminToken}` };
    expect((await call('POST', `/v1/ops/accounts/${customer.account.id}/suspend`, ops, { reason: 'review' })).statusCode).toBe(200);
    const refused = await call('POST', '/v1/sessions', customer.auth, { serviceId });
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({ code: 'ACCOUNT_NOT_ACTIVE', state: 'suspended' });
  });

  it('refuses a top-up for an account that is not prepaid, and a customer choosing postpaid', async () => {
    const customer = await signUp(tollgate.app);
    expect((await call('POST', '/v1/account/top-ups', customer.auth, { amount: '5.00' })).json().code).toBe('NOT_PREPAID');
    expect((await call('PATCH', '/v1/account', customer.auth, { paymentMode: 'postpaid' })).json().code).toBe('VALIDATION_FAILED');
  });
});
