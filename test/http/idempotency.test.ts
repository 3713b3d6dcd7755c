import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { expectLedgerBalanced } from '../helpers/ledger.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/**
 * Idempotency-Key on open, extend and logoff (as Stripe's API): a client whose answer was lost
 * retries safely. The same key and request get the first answer; another request under the
 * same key is refused.
 */
const SLOW_CARD = '4000000000000077';

let tollgate: TestTollgate;
let serviceId: string;

beforeAll(async () => {
  tollgate = await startTestTollgate();
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' }));
});
afterAll(async () => {
  await tollgate.stop();
});

const post = (url: string, auth: Record<string, string>, key: string | undefined, payload?: object) =>
  tollgate.app.inject({ method: 'POST', url, headers: { ...auth, ...(key ? { 'idempotency-key': key } : {}) }, ...(payload ? { payload } : {}) });

const sessionCount = async (accountId: string) =>
  (await tollgate.db.sql<{ n: number }[]>`select count(*)::int as n from sessions where account_id = ${accountId}`)[0]!.n;

describe('Idempotency-Key', () => {
  it('answers a retried open with the first answer and opens nothing more', async () => {
    const customer = await signUp(tollgate.app);
    const first = await post('/v1/sessions', customer.auth, 'open-1', { serviceId, maxCharge: '2.00' });
    expect(first.statusCode).toBe(201);
    const again = await post('/v1/sessions', customer.auth, 'open-1', { serviceId, maxCharge: '2.00' });
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(first.json());
    expect(await sessionCount(customer.account.id)).toBe(1);
    const holds = await sandbox(tollgate.cardNetworkUrl).holds();
    expect(holds.filter((h) => h.reference === first.json().id)).toHaveLength(1);
  });

  it('refuses the same key with another request: 422 IDEMPOTENCY_KEY_REUSED', async () => {
    const customer = await signUp(tollgate.app);
    expect((await post('/v1/sessions', customer.auth, 'open-2', { serviceId, maxCharge: '2.00' })).statusCode).toBe(201);
    const other = await post('/v1/sessions', customer.auth, 'open-2', { serviceId, maxCharge: '3.00' });
    expect(other.statusCode).toBe(422);
    expect(other.json().code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await sessionCount(customer.account.id)).toBe(1);
  });

  it('keeps keys per customer: another customer may use the same key', async () => {
    const a = await signUp(tollgate.app);
    const b = await signUp(tollgate.app);
    const first = await post('/v1/sessions', a.auth, 'shared', { serviceId, maxCharge: '1.00' });
    const second = await post('/v1/sessions', b.auth, 'shared', { serviceId, maxCharge: '1.00' });
    expect([first.statusCode, second.statusCode]).toEqual([201, 201]);
    expect(second.json().id).not.toBe(first.json().id);
  });

  it('answers 409 IDEMPOTENCY_KEY_IN_USE while the first request with the key is still being answered', async () => {
    const customer = await signUp(tollgate.app, { card: { number: SLOW_CARD, expMonth: 12, expYear: 2031, cvc: '123' } });
    const first = post('/v1/sessions', customer.auth, 'slow-1', { serviceId, maxCharge: '1.00' });
    await sleep(300);
    const during = await post('/v1/sessions', customer.auth, 'slow-1', { serviceId, maxCharge: '1.00' });
    expect(during.statusCode).toBe(409);
    expect(during.json().code).toBe('IDEMPOTENCY_KEY_IN_USE');
    expect(during.headers['retry-after']).toBe('1');
    expect((await first).statusCode).toBe(201);
  });

  it('gives a client that hung up with a key the session it made, still running, when it retries', async () => {
    const customer = await signUp(tollgate.app, { card: { number: SLOW_CARD, expMonth: 12, expYear: 2031, cvc: '123' } });
    await tollgate.app.listen({ port: 0, host: '127.0.0.1' });
    const address = tollgate.app.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    await new Promise<void>((resolve) => {
      const request = http.request(`http://127.0.0.1:${port}/v1/sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${customer.token}`, 'content-type': 'application/json', 'idempotency-key': 'lost-1' },
      });
      request.on('error', () => resolve());
      request.end(JSON.stringify({ serviceId, maxCharge: '1.00' }));
      setTimeout(() => (request.destroy(), resolve()), 300);
    });
    // The first request is still waiting for the slow card; the retry waits for the same session.
    await sleep(2_500);
    const retry = await post('/v1/sessions', customer.auth, 'lost-1', { serviceId, maxCharge: '1.00' });
    expect(retry.statusCode).toBe(201);
    expect(retry.json().state).toBe('active');
    expect(await sessionCount(customer.account.id)).toBe(1);
  });

  it('answers a retried logoff and a retried extend as the first time, charging and raising once', async () => {
    const customer = await signUp(tollgate.app);
    const opened = (await post('/v1/sessions', customer.auth, undefined, { serviceId, maxCharge: '2.00' })).json();
    const extend = await post(`/v1/sessions/${opened.id}/extend`, customer.auth, 'extend-1', { maxCharge: '3.00' });
    expect(extend.statusCode).toBe(200);
    const extendAgain = await post(`/v1/sessions/${opened.id}/extend`, customer.auth, 'extend-1', { maxCharge: '3.00' });
    expect(extendAgain.json()).toEqual(extend.json());
    expect((await sandbox(tollgate.cardNetworkUrl).holds()).find((h) => h.reference === opened.id)?.amount).toBe('3.00');

    const logoff = await post(`/v1/sessions/${opened.id}/logoff`, customer.auth, 'logoff-1');
    expect(logoff.statusCode).toBe(200);
    const logoffAgain = await post(`/v1/sessions/${opened.id}/logoff`, customer.auth, 'logoff-1');
    expect(logoffAgain.statusCode).toBe(200);
    expect(logoffAgain.json()).toEqual(logoff.json());
    const captures = (await sandbox(tollgate.cardNetworkUrl).captures()).filter((c) => c.authorizationNumber === opened.authorizationNumber);
    expect(captures).toHaveLength(logoff.json().chargeSlip ? 1 : 0);
    await expectLedgerBalanced(tollgate.sql, { settled: 1 });
  });

  it('refuses a key that is not 1 to 255 printable characters, and keeps no answer for a request that failed validation', async () => {
    const customer = await signUp(tollgate.app);
    const tooLong = await post('/v1/sessions', customer.auth, 'k'.repeat(256), { serviceId });
    expect(tooLong.statusCode).toBe(400);
    const invalid = await post('/v1/sessions', customer.auth, 'valid-later', { serviceId: 'not-a-uuid' });
    expect(invalid.statusCode).toBe(400);
    const valid = await post('/v1/sessions', customer.auth, 'valid-later', { serviceId, maxCharge: '1.00' });
    expect(valid.statusCode).toBe(201);
  });
});
