import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp, VISA_DECLINED, VISA_OK } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

const clock = new ManualClock(Date.UTC(2026, 10, 30, 9, 0, 0));
let tollgate: TestTollgate;
let serviceId: string;
let ops: Record<string, string>;
beforeAll(async () => {
  tollgate = await startTestTollgate({ clock });
  ops = { authorization: `Bearer ${tollgate.adminToken}` };
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' }));
});
afterAll(() => tollgate.stop());

type Headers = Record<string, string>;
const call = (method: 'GET' | 'POST' | 'PATCH', url: string, headers: Headers, payload?: object) =>
  tollgate.app.inject({ method, url, headers, ...(payload && { payload }) });

/** A postpaid customer whose card the card company declines, owing `charge` for `minutes` of use at 0.60. */
async function owingOnDecliningCard(minutes: number, charge: string) {
  const customer = await signUp(tollgate.app, { card: { number: VISA_DECLINED, expMonth: 12, expYear: 2031, cvc: '123' } });
  await call('POST', `/v1/ops/accounts/${customer.account.id}/payment-mode`, ops, { paymentMode: 'postpaid', reason: 'ISP contract' });
  const opened = (await call('POST', '/v1/sessions', customer.auth, { serviceId })).json();
  clock.advance(minutes * 60_000);
  expect((await call('POST', `/v1/sessions/${opened.id}/logoff`, customer.auth)).json()).toMatchObject({ state: 'settled', charge });
  return customer;
}

describe('a postpaid account', () => {
  it('is set by an operator, runs sessions past its outstanding limit with no card call, and pays with its statement', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '10.00' });
    const set = await call('POST', `/v1/ops/accounts/${customer.account.id}/payment-mode`, ops, { paymentMode: 'postpaid', reason: 'ISP contract' });
    expect(set.json().account.paymentMode).toBe('postpaid');
    const audit = (await call('GET', `/v1/ops/audit?targetType=account&targetId=${customer.account.id}`, ops)).json().entries;
    expect(audit[0]).toMatchObject({ action: 'account.payment_mode', before: { paymentMode: 'card' }, after: { paymentMode: 'postpaid', reason: 'ISP contract' } });
    expect((await call('PATCH', '/v1/account', customer.auth, { paymentMode: 'card' })).json().code).toBe('PAYMENT_MODE_SET_BY_OPERATORS');
    // A refused mode changes nothing else asked with it.
    const refused = await call('PATCH', '/v1/account', customer.auth, { outstandingLimit: '12.00', statementPeriod: 'week', paymentMode: 'prepaid' });
    expect(refused.json().code).toBe('PAYMENT_MODE_SET_BY_OPERATORS');
    expect((await call('GET', '/v1/account', customer.auth)).json().account).toMatchObject({ outstandingLimit: '10.00', statementPeriod: 'month', paymentMode: 'postpaid' });

    const network = sandbox(tollgate.cardNetworkUrl);
    const authorizationsBefore = (await network.calls()).authorize ?? 0;
    const first = (await call('POST', '/v1/sessions', customer.auth, { serviceId })).json();
    const second = (await call('POST', '/v1/sessions', customer.auth, { serviceId })).json();
    expect([first.state, second.state]).toEqual(['active', 'active']);
    expect((await network.calls()).authorize ?? 0).toBe(authorizationsBefore);

    // 20 minutes at 0.60: 12.00, past the 10.00 outstanding limit; metered, shown, not cut.
    clock.advance(20 * 60_000);
    const running = (await call('GET', `/v1/sessions/${first.id}`, customer.auth)).json();
    expect(running).toMatchObject({ state: 'active', accrued: '12.00' });
    const ended = await Promise.all([first, second].map(async (s) => (await call('POST', `/v1/sessions/${s.id}/logoff`, customer.auth)).json()));
    expect(ended.map((s) => [s.state, s.charge])).toEqual([
      ['settled', '12.00'],
      ['settled', '12.00'],
    ]);
    expect((await call('GET', '/v1/account', customer.auth)).json().account).toMatchObject({ reserved: '0.00', balance: '0.00' });
    expect((await network.calls()).authorize ?? 0).toBe(authorizationsBefore);

    clock.set(Date.UTC(2026, 11, 1, 0, 0, 0));
    const charged = async () => (await call('GET', '/v1/account/statements', customer.auth)).json().statements[0];
    await expect.poll(async () => (await charged())?.charge.state, { timeout: 10_000 }).toBe('charged');
    const statement = await charged();
    expect(statement.totals).toEqual({ charges: '24.00', paidByCard: '0.00', paidFromBalance: '0.00', topUps: '0.00', refunds: '0.00', due: '24.00' });
    expect(statement.sessions.map((s: { paidFrom: string }) => s.paidFrom)).toEqual(['postpaid', 'postpaid']);
    const captures = await network.captures();
    expect(captures.filter((c) => c.id === statement.charge.chargeId)).toEqual([expect.objectContaining({ amount: '24.00' })]);
  });

  it('extends a session past the outstanding limit, as it opens past it: trusted accounts are never held to it', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '10.00' });
    await call('POST', `/v1/ops/accounts/${customer.account.id}/payment-mode`, ops, { paymentMode: 'postpaid', reason: 'ISP contract' });
    const opened = (await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '8.00' })).json();
    expect(opened.state).toBe('active');
    const extended = await call('POST', `/v1/sessions/${opened.id}/extend`, customer.auth, { maxCharge: '30.00' });
    expect(extended.statusCode).toBe(200);
    expect(extended.json()).toMatchObject({ state: 'active', maxCharge: '30.00' });
    // 40 minutes at 0.60 would be 24.00: past the old limit of 8.00 and the outstanding limit, within the new one.
    clock.advance(40 * 60_000);
    expect((await call('POST', `/v1/sessions/${opened.id}/logoff`, customer.auth)).json()).toMatchObject({ state: 'settled', charge: '24.00' });
    expect((await call('GET', '/v1/account', customer.auth)).json().account.reserved).toBe('0.00');

    // A card account is still held to its limit.
    const card = await signUp(tollgate.app, { outstandingLimit: '10.00' });
    const held = (await call('POST', '/v1/sessions', card.auth, { serviceId, maxCharge: '8.00' })).json();
    expect((await call('POST', `/v1/sessions/${held.id}/extend`, card.auth, { maxCharge: '30.00' })).json().code).toBe('OUTSTANDING_LIMIT_REACHED');
    // Made postpaid while its card session runs: that session is held on the card, and to the limit, still.
    await call('POST', `/v1/ops/accounts/${card.account.id}/payment-mode`, ops, { paymentMode: 'postpaid', reason: 'ISP contract' });
    const stillCard = await call('POST', `/v1/sessions/${held.id}/extend`, card.auth, { maxCharge: '30.00' });
    expect(stillCard.json().code).toBe('OUTSTANDING_LIMIT_REACHED');
    const [hold] = await sandbox(tollgate.cardNetworkUrl).holds(`?reference=${held.id}`);
    expect(hold?.amount).toBe('8.00');
    clock.advance(1_000);
    await call('POST', `/v1/sessions/${held.id}/logoff`, card.auth);
  });

  it('is suspended when the card company declines its statement, and a new card pays what it owes', async () => {
    const customer = await owingOnDecliningCard(10, '6.00');
    const running = (await call('POST', '/v1/sessions', customer.auth, { serviceId })).json();
    expect(running.state).toBe('active');

    // The period ends: its statement owes 6.00 (and what the running session is charged goes on the next).
    clock.set(Date.UTC(2027, 0, 1, 0, 0, 0));
    // A month on, the sign-up's token has expired: the customer logs in again.
    const login = await call('POST', '/v1/auth/tokens', {}, { email: customer.account.email, password: 'analytical engine' });
    customer.auth = { authorization: `Bearer ${login.json().token}` };
    const latest = async () => (await call('GET', '/v1/account/statements', customer.auth)).json().statements[0];
    await expect.poll(async () => (await latest())?.charge.state, { timeout: 10_000 }).toBe('declined');
    const declined = await latest();
    expect(declined).toMatchObject({ totals: { due: '6.00' }, charge: { state: 'declined', chargeId: null, declineReason: 'generic_decline' } });
    const csv = await call('GET', `/v1/account/statements/${declined.id}?format=csv`, customer.auth);
    expect(csv.body).toContain(',6.00,,,declined: generic_decline');

    // Suspended by tollgate: nothing more runs up on a card that does not pay.
    const suspended = async () => (await call('GET', '/v1/account', customer.auth)).json().account.state;
    await expect.poll(suspended, { timeout: 10_000 }).toBe('suspended');
    await expect.poll(async () => (await call('GET', `/v1/sessions/${running.id}`, customer.auth)).json().state, { timeout: 10_000 }).toBe('settled');
    expect((await call('POST', '/v1/sessions', customer.auth, { serviceId })).json().code).toBe('ACCOUNT_NOT_ACTIVE');
    // Nor is the debt left behind by closing.
    const close = await call('POST', '/v1/account/close', customer.auth, { reason: 'leaving' });
    expect(close.statusCode).toBe(409);
    expect(close.json()).toMatchObject({ code: 'STATEMENT_UNPAID', due: '6.00' });

    // A new card is charged what the old one was refused, with keys of its own.
    const network = sandbox(tollgate.cardNetworkUrl);
    const changed = await tollgate.app.inject({ method: 'PUT', url: '/v1/account/card', headers: customer.auth, payload: { card: { number: VISA_OK, expMonth: 12, expYear: 2031, cvc: '123' } } });
    expect(changed.statusCode).toBe(200);
    await expect.poll(async () => (await latest())?.charge.state, { timeout: 10_000 }).toBe('charged');
    const paid = await latest();
    expect(paid.id).toBe(declined.id);
    const captures = await network.captures();
    expect(captures.filter((c) => c.id === paid.charge.chargeId)).toEqual([expect.objectContaining({ amount: '6.00' })]);
    const paidCsv = await call('GET', `/v1/account/statements/${paid.id}?format=csv`, customer.auth);
    expect(paidCsv.body).toContain(`due_charge,${paid.charge.chargeId},,,,,,6.00,,,charged`);
    // Resuming stays an operator's call, as after refused captures.
    expect(await suspended()).toBe('suspended');
  });

  it('says how much of the limit is free as no less than nothing, and refuses what a postpaid or closed account cannot do', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '20.00' });
    await call('POST', `/v1/ops/accounts/${customer.account.id}/payment-mode`, ops, { paymentMode: 'postpaid', reason: 'ISP contract' });
    const topUp = await call('POST', '/v1/account/top-ups', customer.auth, { amount: '3.00' });
    expect(topUp.json()).toMatchObject({ code: 'NOT_PREPAID', detail: expect.stringContaining('only operators change') });
    const postpaid = (await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '50.00' })).json();
    expect(postpaid.state).toBe('active');
    await call('POST', `/v1/ops/accounts/${customer.account.id}/payment-mode`, ops, { paymentMode: 'card', reason: 'contract ended' });
    const refused = (await call('POST', '/v1/sessions', customer.auth, { serviceId, maxMinutes: 1 })).json();
    expect(refused).toMatchObject({ code: 'OUTSTANDING_LIMIT_REACHED', available: '0.00', detail: expect.stringContaining('only 0.00 of the outstanding limit is free') });
    clock.advance(1_000);
    await call('POST', `/v1/sessions/${postpaid.id}/logoff`, customer.auth);
    expect((await call('POST', '/v1/account/close', customer.auth, { reason: 'moving on' })).statusCode).toBe(200);
    const closed = await call('POST', `/v1/ops/accounts/${customer.account.id}/payment-mode`, ops, { paymentMode: 'prepaid', reason: 'too late' });
    expect(closed.statusCode).toBe(409);
    expect(closed.json().code).toBe('ACCOUNT_NOT_ACTIVE');
  });

  it('charges a new card given while the old one is being declined, and suspends nothing', async () => {
    const customer = await owingOnDecliningCard(5, '3.00');

    // The old card's answer is slow: the customer gives a new card while it is on its way.
    const network = sandbox(tollgate.cardNetworkUrl);
    await network.setFaults([{ phase: 'authorize', fault: 'slow', delayMs: 1_500, times: 1 }]);
    const authorizations = (await network.calls()).authorize ?? 0;
    clock.set(Date.UTC(2027, 1, 1, 0, 0, 0));
    const login = await call('POST', '/v1/auth/tokens', {}, { email: customer.account.email, password: 'analytical engine' });
    customer.auth = { authorization: `Bearer ${login.json().token}` };
    await expect.poll(async () => (await network.calls()).authorize ?? 0, { timeout: 10_000, interval: 20 }).toBeGreaterThan(authorizations);
    // Nor may the customer close while the charge is on its way (its decline would be left behind).
    const closing = await call('POST', '/v1/account/close', customer.auth, { reason: 'leaving' });
    expect(closing.json()).toMatchObject({ code: 'STATEMENT_UNPAID', due: '3.00', detail: expect.stringContaining('still on its way') });
    const changed = await tollgate.app.inject({ method: 'PUT', url: '/v1/account/card', headers: customer.auth, payload: { card: { number: VISA_OK, expMonth: 12, expYear: 2031, cvc: '123' } } });
    expect(changed.statusCode).toBe(200);

    const latest = async () => (await call('GET', '/v1/account/statements', customer.auth)).json().statements[0];
    await expect.poll(async () => (await latest())?.charge.state, { timeout: 10_000 }).toBe('charged');
    const paid = await latest();
    expect((await network.captures()).filter((c) => c.id === paid.charge.chargeId)).toEqual([expect.objectContaining({ amount: '3.00' })]);
    // The old card's decline was no decline of the account's: it stays active.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await call('GET', '/v1/account', customer.auth)).json().account.state).toBe('active');
    await network.clearFaults();
  });

  it('stays suspended past an operator\'s timed suspension when its statement is declined meanwhile', async () => {
    const customer = await owingOnDecliningCard(1, '0.60');
    const state = async () => (await call('GET', `/v1/ops/accounts/${customer.account.id}`, ops)).json().account.state;
    const suspend = (until: number) => call('POST', `/v1/ops/accounts/${customer.account.id}/suspend`, ops, { reason: 'a look', until: new Date(until).toISOString() });
    expect((await suspend(Date.UTC(2027, 2, 1, 12))).statusCode).toBe(200);

    // Declined while the operator's suspension runs: suspended again by tollgate, with no end.
    clock.set(Date.UTC(2027, 2, 1, 0, 0, 0));
    const history = async () => (await call('GET', `/v1/ops/accounts/${customer.account.id}`, ops)).json().history as { by: { kind: string }; to: string }[];
    await expect.poll(async () => (await history()).filter((h) => h.by.kind === 'system' && h.to === 'suspended').length, { timeout: 10_000 }).toBe(1);
    clock.set(Date.UTC(2027, 2, 1, 12, 0, 1));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await state()).toBe('suspended');

    // An operator's timed suspension laid over it ends into the decline's suspension, not into opens.
    expect((await suspend(clock.now() + 60_000)).statusCode).toBe(200);
    clock.advance(61_000);
    await expect.poll(async () => (await history()).filter((h) => h.by.kind === 'system' && h.to === 'suspended').length, { timeout: 10_000 }).toBe(2);
    expect(await state()).toBe('suspended');
    // Resuming is the operator's call, and it holds: nothing suspends it again.
    expect((await call('POST', `/v1/ops/accounts/${customer.account.id}/resume`, ops, { reason: 'paid by other means' })).statusCode).toBe(200);
    clock.advance(60_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await state()).toBe('active');
    expect((await history()).filter((h) => h.by.kind === 'system' && h.to === 'suspended')).toHaveLength(2);
  });
});
