import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { expectLedgerBalanced } from '../helpers/ledger.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

let tollgate: TestTollgate;
let serviceId: string;

beforeAll(async () => {
  tollgate = await startTestTollgate();
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' }));
});
afterAll(async () => {
  await tollgate.stop();
});

const reservedOf = async (accountId: string) => {
  const [row] = await tollgate.db.sql<{ account: bigint; sessions: bigint }[]>`
    select a.reserved_micros as account,
      coalesce((select sum(reserved_micros) from sessions s where s.account_id = a.id and s.state not in ('settled', 'declined')), 0)::int8 as sessions
    from accounts a where a.id = ${accountId}`;
  return row!;
};

describe('two extensions of one session at once', () => {
  it('lets one through and answers the other 409 EXTENSION_IN_PROGRESS, with the reservation exactly the winner’s', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '100.00' });
    const opened = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '2.00' } })).json();
    const extend = (maxCharge: string) =>
      tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${opened.id}/extend`, headers: customer.auth, payload: { maxCharge } });
    const answers = await Promise.all([extend('5.00'), extend('9.00')]);
    const statuses = answers.map((a) => a.statusCode).sort();
    expect(statuses).toEqual([200, 409]);
    const refused = answers.find((a) => a.statusCode === 409)!;
    expect(refused.json().code).toBe('EXTENSION_IN_PROGRESS');
    const winner = answers.find((a) => a.statusCode === 200)!.json();
    const limit = BigInt(Math.round(Number(winner.maxCharge) * 100)) * 10_000n;
    expect(await reservedOf(customer.account.id)).toEqual({ account: limit, sessions: limit });
    const hold = (await sandbox(tollgate.cardNetworkUrl).holds()).find((h) => h.reference === opened.id);
    expect(hold?.amount).toBe(winner.maxCharge);

    await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${opened.id}/logoff`, headers: customer.auth });
    expect(await reservedOf(customer.account.id)).toEqual({ account: 0n, sessions: 0n });
    await expectLedgerBalanced(tollgate.sql, { settled: 1 });
  });

  it('gives back an extension’s reservation when the card company declines it, once', async () => {
    const customer = await signUp(tollgate.app, {
      outstandingLimit: '100.00',
      card: { number: '4000000000003055', expMonth: 12, expYear: 2031, cvc: '123' },
    });
    const opened = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '2.00' } })).json();
    const declined = await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${opened.id}/extend`, headers: customer.auth, payload: { maxCharge: '7.00' } });
    expect(declined.statusCode).toBe(402);
    expect(declined.json()).toMatchObject({ code: 'CARD_DECLINED', reason: 'insufficient_funds' });
    expect(await reservedOf(customer.account.id)).toEqual({ account: 2_000_000n, sessions: 2_000_000n });
  });

  it('refuses an extension beyond what is left of the outstanding limit, reserving nothing', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '10.00' });
    const opened = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '4.00' } })).json();
    const refused = await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${opened.id}/extend`, headers: customer.auth, payload: { maxCharge: '12.00' } });
    expect(refused.statusCode).toBe(402);
    expect(refused.json()).toMatchObject({ code: 'OUTSTANDING_LIMIT_REACHED', available: '6.00' });
    expect(await reservedOf(customer.account.id)).toEqual({ account: 4_000_000n, sessions: 4_000_000n });
  });
});

describe('an extension and a logoff at once', () => {
  it('answers the extension 409 SESSION_NOT_ACTIVE when the logoff ends the session before it is decided, and charges the old limit', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '100.00' });
    const opened = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '2.00' } })).json();
    const card = sandbox(tollgate.cardNetworkUrl);
    // The card company takes a while to answer the increment: the logoff comes meanwhile.
    await card.setFaults([{ phase: 'increment', fault: 'slow', delayMs: 800, times: 1 }]);
    try {
      const extended = tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${opened.id}/extend`, headers: customer.auth, payload: { maxCharge: '5.00' } });
      await new Promise((resolve) => setTimeout(resolve, 200));
      const loggedOff = await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${opened.id}/logoff`, headers: customer.auth });
      expect(loggedOff.statusCode, loggedOff.body).toBeLessThan(300);
      const answer = await extended;
      expect([answer.statusCode, answer.json().code]).toEqual([409, 'SESSION_NOT_ACTIVE']);
    } finally {
      await card.clearFaults();
    }
    const view = (await tollgate.app.inject({ url: `/v1/sessions/${opened.id}`, headers: customer.auth })).json();
    expect(view.maxCharge).toBe('2.00');
  });
});

