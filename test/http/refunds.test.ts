import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { sandbox } from '../helpers/card-network.js';
import { parse } from 'csv-parse/sync';
import { createService, signUp } from '../helpers/customers.js';
import { createOperator } from '../helpers/operators.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { WebClient } from '../helpers/web-client.js';

// 2026-11-30, 09:00 UTC: November's statements are due at midnight, when the test moves the clock there.
const clock = new ManualClock(Date.UTC(2026, 10, 30, 9, 0, 0));
let tollgate: TestTollgate;
let serviceId: string;
beforeAll(async () => {
  tollgate = await startTestTollgate({ clock });
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' }));
});
afterAll(() => tollgate.stop());
afterEach(() => sandbox(tollgate.cardNetworkUrl).clearFaults());

type Headers = Record<string, string>;
const call = (method: 'GET' | 'POST' | 'PATCH', url: string, headers: Headers, payload?: object) =>
  tollgate.app.inject({ method, url, headers, ...(payload && { payload }) });
const ops = () => ({ authorization: `Bearer ${tollgate.adminToken}` });

/** A prepaid customer topped up with each amount in turn (the last is the newest capture). */
async function prepaidCustomer(...topUps: string[]) {
  const customer = await signUp(tollgate.app);
  await call('PATCH', '/v1/account', customer.auth, { paymentMode: 'prepaid' });
  const charged: { id: string; chargeId: string }[] = [];
  for (const amount of topUps) {
    clock.advance(1000);
    const answer = await call('POST', '/v1/account/top-ups', customer.auth, { amount });
    expect(answer.statusCode, answer.body).toBe(201);
    charged.push(answer.json().topUp);
  }
  return { ...customer, topUps: charged };
}

/** One minute of the service (0.60), logged off and settled from the balance. */
async function useOneMinute(auth: Headers) {
  const opened = (await call('POST', '/v1/sessions', auth, { serviceId, maxCharge: '5.00' })).json();
  clock.advance(60_000);
  expect((await call('POST', `/v1/sessions/${opened.id}/logoff`, auth)).json()).toMatchObject({ state: 'settled', charge: '0.60' });
}

const opsRefunds = async (id: string) => (await call('GET', `/v1/ops/accounts/${id}/refunds`, ops())).json().refunds as any[];
const refundsAt = async (captureId: string) => (await sandbox(tollgate.cardNetworkUrl).refunds(captureId)).map((r) => r.amount);
const eventsOf = async (accountId: string, type: string) =>
  tollgate.sql<{ payload: any }[]>`select payload from domain_events where stream = ${`account:${accountId}`} and type = ${type} order by position`;

describe('closing a prepaid account', () => {
  it('refunds the unused balance to the card, newest top-up first, and its statement adds up', async () => {
    const customer = await prepaidCustomer('10.00', '5.00');
    const [older, newer] = customer.topUps as [{ id: string; chargeId: string }, { id: string; chargeId: string }];
    await useOneMinute(customer.auth);
    expect((await call('GET', '/v1/account', customer.auth)).json().account.balance).toBe('14.40');

    const closed = await call('POST', '/v1/account/close', customer.auth, { reason: 'done with it' });
    expect(closed.statusCode, closed.body).toBe(200);
    expect(closed.json().account).toMatchObject({ state: 'closed', balance: '0.00', balanceHeld: '0.00' });
    // 15.00 topped up, 0.60 used: the newer capture gives back all of its 5.00, the older the other 9.40.
    expect(closed.json().refunds).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ topUpId: newer.id, captureId: newer.chargeId, amount: '5.00', state: 'refunded' }),
        expect.objectContaining({ topUpId: older.id, captureId: older.chargeId, amount: '9.40', state: 'refunded' }),
      ]),
    );
    expect(closed.json().refunds).toHaveLength(2);
    expect(await refundsAt(newer.chargeId)).toEqual(['5.00']);
    expect(await refundsAt(older.chargeId)).toEqual(['9.40']);

    const refunded = await eventsOf(customer.account.id, 'account.refunded');
    expect(refunded.map((e) => e.payload.amount).sort()).toEqual(['5.00', '9.40']);
    const audit = (await call('GET', `/v1/ops/audit?targetType=account&targetId=${customer.account.id}`, ops())).json().entries as any[];
    expect(audit.map((e) => e.action).sort()).toEqual(['account.refund_planned', 'account.refunded', 'account.refunded']);

    // Midnight, 1 December: the statement of the period the account closed in.
    clock.set(Date.UTC(2026, 11, 1, 0, 0, 0));
    let statements: any[] = [];
    for (let i = 0; i < 100 && statements.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      statements = (await call('GET', `/v1/ops/accounts/${customer.account.id}/statements`, ops())).json().statements;
    }
    const [statement] = statements;
    expect(statement.totals).toMatchObject({ topUps: '15.00', paidFromBalance: '0.60', refunds: '14.40' });
    expect(statement.refunds.map((r: any) => [r.amount, r.state]).sort()).toEqual([
      ['5.00', 'refunded'],
      ['9.40', 'refunded'],
    ]);
    // What came onto the balance, less what sessions took and what went back: the balance left, none.
    const micros = (amount: string) => BigInt(amount.replace('.', ''));
    expect(micros(statement.totals.topUps) - micros(statement.totals.paidFromBalance) - micros(statement.totals.refunds)).toBe(0n);
    // The CSV an operator downloads says the same.
    await createOperator(tollgate.app, tollgate.adminToken, { name: 'refund-reader', role: 'read_only', password: 'correct horse battery staple' });
    const web = new WebClient(tollgate.app);
    await web.get('/ops/login');
    await web.post('/ops/login', { name: 'refund-reader', password: 'correct horse battery staple' });
    const csv = await web.get(`/ops/accounts/${customer.account.id}/statements/${statement.id}?format=csv`);
    const rows = parse(csv.body, { columns: true }) as Record<string, string>[];
    expect(rows.filter((r) => r.kind === 'refund_refunded').map((r) => r.amount).sort()).toEqual(['5.00', '9.40']);
    expect(rows.find((r) => r.kind === 'total_refunds')!.amount).toBe('14.40');
    clock.set(Date.UTC(2026, 10, 30, 9, 0, 0));
  });

  it('closes while the card network is down, and refunds later exactly once', async () => {
    const network = sandbox(tollgate.cardNetworkUrl);
    const customer = await prepaidCustomer('8.00');
    const [topUp] = customer.topUps as [{ id: string; chargeId: string }];
    await network.setFaults([{ phase: 'refund', fault: 'error' }]);

    const closed = await call('POST', '/v1/account/close', customer.auth);
    expect(closed.statusCode, closed.body).toBe(200);
    expect(closed.json().account).toMatchObject({ state: 'closed', balance: '0.00' });
    expect(closed.json().refunds).toEqual([expect.objectContaining({ amount: '8.00', state: 'pending', refundId: null })]);
    // Operators see it waiting, with the attempt and why it failed.
    const [waiting] = await opsRefunds(customer.account.id);
    expect(waiting).toMatchObject({ state: 'pending', attempts: 1 });
    expect(waiting.lastError).toContain('card network');
    expect(await refundsAt(topUp.chargeId)).toEqual([]);

    // Still down: the housekeeping's run leaves it pending.
    await tollgate.refunds.recover();
    expect((await opsRefunds(customer.account.id))[0]).toMatchObject({ state: 'pending', attempts: 2 });

    await network.clearFaults();
    await tollgate.refunds.recover();
    await tollgate.refunds.recover();
    expect((await opsRefunds(customer.account.id))[0]).toMatchObject({ state: 'refunded', amount: '8.00' });
    expect(await refundsAt(topUp.chargeId)).toEqual(['8.00']);
    expect(await eventsOf(customer.account.id, 'account.refunded')).toHaveLength(1);
  });

  it('refunds once when the card network refunded but its answer was lost, however often it is driven again', async () => {
    const network = sandbox(tollgate.cardNetworkUrl);
    const customer = await prepaidCustomer('6.00');
    const [topUp] = customer.topUps as [{ id: string; chargeId: string }];
    // The first attempt commits and hangs up; every retry of the client replays and hangs up too.
    await network.setFaults([{ phase: 'refund', fault: 'drop_after_commit' }]);
    const closed = (await call('POST', '/v1/account/close', customer.auth)).json();
    expect(closed.refunds).toEqual([expect.objectContaining({ state: 'pending' })]);
    expect(await refundsAt(topUp.chargeId)).toEqual(['6.00']);

    await network.clearFaults();
    // Two drivers at once (a second node's housekeeping, a restart's), then once more.
    await Promise.all([tollgate.refunds.recover(), tollgate.refunds.recover()]);
    await tollgate.refunds.recover();
    const [refund] = await opsRefunds(customer.account.id);
    expect(refund).toMatchObject({ state: 'refunded', amount: '6.00' });
    const atNetwork = await network.refunds(topUp.chargeId);
    expect(atNetwork).toEqual([expect.objectContaining({ id: refund.refundId, amount: '6.00', reference: refund.id })]);
    expect(await eventsOf(customer.account.id, 'account.refunded')).toHaveLength(1);
  });

  it('drives a refund left pending by a process that stopped, after a restart, once', async () => {
    const network = sandbox(tollgate.cardNetworkUrl);
    const customer = await prepaidCustomer('3.00');
    const [topUp] = customer.topUps as [{ id: string; chargeId: string }];
    await network.setFaults([{ phase: 'refund', fault: 'timeout_before_commit', delayMs: 0 }]);
    expect((await call('POST', '/v1/account/close', customer.auth)).json().refunds).toEqual([expect.objectContaining({ state: 'pending' })]);
    await network.clearFaults();

    tollgate = await tollgate.restart();
    expect((await opsRefunds(customer.account.id))[0]).toMatchObject({ state: 'refunded', amount: '3.00' });
    expect(await refundsAt(topUp.chargeId)).toEqual(['3.00']);
  });

  it('refunds a top-up whose charge was answered only after the close', async () => {
    const network = sandbox(tollgate.cardNetworkUrl);
    const customer = await prepaidCustomer();
    await call('PATCH', '/v1/account', customer.auth, { paymentMode: 'prepaid' });
    await network.setFaults([{ phase: 'capture', fault: 'error' }]);
    const late = await call('POST', '/v1/account/top-ups', customer.auth, { amount: '2.00' });
    expect(late.json().code).toBe('CARD_NETWORK_UNAVAILABLE');
    const closed = (await call('POST', '/v1/account/close', customer.auth)).json();
    expect(closed).toMatchObject({ account: { state: 'closed', balance: '0.00' }, refunds: [] });
    await network.clearFaults();

    // The restart charges the pending top-up, then finds the closed account with a balance and refunds it.
    tollgate = await tollgate.restart();
    const [refund] = await opsRefunds(customer.account.id);
    expect(refund).toMatchObject({ state: 'refunded', amount: '2.00' });
    expect(await refundsAt(refund.captureId)).toEqual(['2.00']);
    expect((await call('GET', `/v1/ops/accounts/${customer.account.id}`, ops())).json().account.balance).toBe('0.00');
  });

  it('marks a refund the card network refuses for good as refused, for an operator, and keeps the close', async () => {
    const customer = await prepaidCustomer('4.00');
    const [topUp] = customer.topUps as [{ id: string; chargeId: string }];
    // Refunded by someone else first (a dispute, a manual refund at the card company): nothing is left to refund.
    await fetch(`${tollgate.cardNetworkUrl}/v1/refunds`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': `elsewhere-${topUp.id}` },
      body: JSON.stringify({ capture: topUp.chargeId, amount: '4.00' }),
    });
    const closed = (await call('POST', '/v1/account/close', customer.auth)).json();
    expect(closed.account.state).toBe('closed');
    const [refused] = await opsRefunds(customer.account.id);
    expect(refused).toMatchObject({ state: 'refused', amount: '4.00', refundId: null });
    expect(refused.lastError).toContain('amount_exceeds_refundable');
    expect(await eventsOf(customer.account.id, 'account.refund_refused')).toHaveLength(1);
    await tollgate.refunds.recover();
    expect(await refundsAt(topUp.chargeId)).toEqual(['4.00']);
  });

  it('refunds nothing for an account closed with no balance', async () => {
    const customer = await prepaidCustomer('0.60');
    // The whole balance held and used: the session is cut at its limit and settles.
    const opened = (await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '0.60' })).json();
    clock.advance(60_000);
    await expect.poll(async () => (await call('GET', `/v1/sessions/${opened.id}`, customer.auth)).json().state).toBe('settled');
    const closed = (await call('POST', '/v1/account/close', customer.auth)).json();
    expect(closed).toMatchObject({ account: { state: 'closed', balance: '0.00' }, refunds: [] });
    expect(await refundsAt(customer.topUps[0]!.chargeId)).toEqual([]);
  });

  it('refunds the balance when an operator closes the account', async () => {
    const customer = await prepaidCustomer('2.50');
    const closed = await call('POST', `/v1/ops/accounts/${customer.account.id}/close`, ops(), { reason: 'asked by phone' });
    expect(closed.statusCode, closed.body).toBe(200);
    expect(closed.json().account).toMatchObject({ state: 'closed', balance: '0.00' });
    expect((await opsRefunds(customer.account.id))[0]).toMatchObject({ state: 'refunded', amount: '2.50' });
    expect(await refundsAt(customer.topUps[0]!.chargeId)).toEqual(['2.50']);
  });
});
