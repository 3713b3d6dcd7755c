import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createService, signUp } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

let tollgate: TestTollgate;
let serviceId: string;
beforeAll(async () => {
  tollgate = await startTestTollgate();
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' }));
});
afterAll(() => tollgate.stop());

type Headers = Record<string, string>;
const call = (method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, headers: Headers, payload?: object) =>
  tollgate.app.inject({ method, url, headers, ...(payload && { payload }) });
const logIn = (email: string, password: string) => tollgate.app.inject({ method: 'POST', url: '/v1/auth/tokens', payload: { email, password } });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function openSession(auth: Headers, maxCharge: string) {
  const opened = await call('POST', '/v1/sessions', auth, { serviceId, maxCharge });
  expect(opened.statusCode).toBe(201);
  return opened.json().id as string;
}

describe('changing the card', () => {
  it('tokenizes the new card, shows it, and forgets the old token', async () => {
    const customer = await signUp(tollgate.app);
    const [before] = await tollgate.sql<{ token: string }[]>`select card_token as token from accounts where id = ${customer.account.id}`;
    const changed = await call('PUT', '/v1/account/card', customer.auth, { card: { number: '5555 5555 5555 4444', expMonth: 3, expYear: 2030, cvc: '321' } });
    expect(changed.statusCode).toBe(200);
    expect(changed.json().account.card).toEqual({ brand: 'mastercard', last4: '4444', expMonth: 3, expYear: 2030 });
    const [after] = await tollgate.sql<{ token: string }[]>`select card_token as token from accounts where id = ${customer.account.id}`;
    expect(after!.token).not.toBe(before!.token);
    const tokensKept = await tollgate.sql`select 1 from accounts where card_token = ${before!.token}`;
    expect(tokensKept).toHaveLength(0);
  });

  it('keeps the old card when the card network refuses the new one, or it is malformed', async () => {
    const customer = await signUp(tollgate.app);
    const invalid = await call('PUT', '/v1/account/card', customer.auth, { card: { number: '4242424242424241', expMonth: 3, expYear: 2030, cvc: '321' } });
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json()).toMatchObject({ code: 'CARD_INVALID', field: 'number' });
    const malformed = await call('PUT', '/v1/account/card', customer.auth, { card: { number: '42', expMonth: 13, expYear: 2030, cvc: '1' } });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().code).toBe('VALIDATION_FAILED');
    const me = await call('GET', '/v1/account', customer.auth);
    expect(me.json().account.card.last4).toBe('4242');
  });
});

describe('changing the outstanding limit', () => {
  it('refuses a limit below what open sessions hold now with 409 LIMIT_BELOW_RESERVED, and takes one above', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '100.00' });
    const sessionId = await openSession(customer.auth, '30.00');
    // Refused, it changes nothing, not the rest of the request either.
    const below = await call('PATCH', '/v1/account', customer.auth, { outstandingLimit: '29.99', statementPeriod: 'week', paymentMode: 'prepaid' });
    expect(below.statusCode).toBe(409);
    expect((await call('GET', '/v1/account', customer.auth)).json().account).toMatchObject({ outstandingLimit: '100.00', statementPeriod: 'month', paymentMode: 'card' });
    expect(below.headers['content-type']).toContain('application/problem+json');
    expect(below.json()).toMatchObject({ code: 'LIMIT_BELOW_RESERVED', reserved: '30.00' });
    const fits = await call('PATCH', '/v1/account', customer.auth, { outstandingLimit: '30.00' });
    expect(fits.statusCode).toBe(200);
    expect(fits.json().account).toMatchObject({ outstandingLimit: '30.00', reserved: '30.00' });
    // Nothing is left: the next open is refused by the new limit.
    const refused = await call('POST', '/v1/sessions', customer.auth, { serviceId, maxCharge: '1.00' });
    expect(refused.json().code).toBe('OUTSTANDING_LIMIT_REACHED');
    await call('POST', `/v1/sessions/${sessionId}/logoff`, customer.auth);
    const lower = await call('PATCH', '/v1/account', customer.auth, { outstandingLimit: '5.00' });
    expect(lower.json().account).toMatchObject({ outstandingLimit: '5.00', reserved: '0.00' });
  });

  it.each([['zero', '0.00'], ['fractions of a cent', '1.001'], ['a number', 5], ['past MAX_AMOUNT', '100000.01']])(
    'answers a limit of %s with 400 VALIDATION_FAILED',
    async (_name, outstandingLimit) => {
      const customer = await signUp(tollgate.app);
      const response = await call('PATCH', '/v1/account', customer.auth, { outstandingLimit } as object);
      expect(response.statusCode).toBe(400);
      expect(response.json().code).toBe('VALIDATION_FAILED');
    },
  );
});

describe('changing the password', () => {
  it('revokes every other token at once, keeps this one, and the new password logs in', async () => {
    const customer = await signUp(tollgate.app, { password: 'analytical engine' });
    const other = bearer((await logIn(customer.account.email, 'analytical engine')).json().token);
    // Used once, so this process has it cached: the revocation must reach the cache too.
    expect((await call('GET', '/v1/account', other)).statusCode).toBe(200);
    const changed = await call('PUT', '/v1/account/password', customer.auth, { currentPassword: 'analytical engine', newPassword: 'difference engine' });
    expect(changed.statusCode).toBe(204);
    const refused = await call('GET', '/v1/account', other);
    expect(refused.statusCode).toBe(401);
    expect(refused.json().code).toBe('UNAUTHENTICATED');
    expect((await call('GET', '/v1/account', customer.auth)).statusCode).toBe(200);
    expect((await logIn(customer.account.email, 'analytical engine')).statusCode).toBe(401);
    expect((await logIn(customer.account.email, 'difference engine')).statusCode).toBe(201);
  });

  it('changes nothing when the current password is wrong, with 403 WRONG_PASSWORD', async () => {
    const customer = await signUp(tollgate.app, { password: 'analytical engine' });
    const response = await call('PUT', '/v1/account/password', customer.auth, { currentPassword: 'wrong guess!', newPassword: 'difference engine' });
    expect(response.statusCode).toBe(403);
    expect(response.json().code).toBe('WRONG_PASSWORD');
    expect((await logIn(customer.account.email, 'analytical engine')).statusCode).toBe(201);
  });

  it('refuses a new password shorter than eight characters', async () => {
    const customer = await signUp(tollgate.app, { password: 'analytical engine' });
    const response = await call('PUT', '/v1/account/password', customer.auth, { currentPassword: 'analytical engine', newPassword: 'short' });
    expect(response.json().code).toBe('VALIDATION_FAILED');
  });
});

describe('logging out', () => {
  it('refuses the revoked token on the very next request, though it was just used', async () => {
    const customer = await signUp(tollgate.app);
    expect((await call('GET', '/v1/account', customer.auth)).statusCode).toBe(200);
    expect((await call('DELETE', '/v1/auth/tokens/current', customer.auth)).statusCode).toBe(204);
    const after = await call('GET', '/v1/sessions', customer.auth);
    expect(after.statusCode).toBe(401);
    expect(after.json().code).toBe('UNAUTHENTICATED');
  });
});

describe('closing the account', () => {
  it('is refused while a session is unsettled, then closes for good: tokens refused, log-in refused, history kept', async () => {
    const customer = await signUp(tollgate.app, { name: 'Charles Babbage', password: 'analytical engine' });
    const sessionId = await openSession(customer.auth, '5.00');
    const refused = await call('POST', '/v1/account/close', customer.auth, { reason: 'moving abroad' });
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({ code: 'ACCOUNT_HAS_UNSETTLED_SESSIONS', unsettled: 1 });
    expect((await call('POST', `/v1/sessions/${sessionId}/logoff`, customer.auth)).json().state).toBe('settled');

    const closed = await call('POST', '/v1/account/close', customer.auth, { reason: 'moving abroad' });
    expect(closed.statusCode).toBe(200);
    expect(closed.json().account.state).toBe('closed');
    expect((await call('GET', '/v1/account', customer.auth)).statusCode).toBe(401);
    expect((await logIn(customer.account.email, 'analytical engine')).json().code).toBe('INVALID_CREDENTIALS');

    const ops = await call('GET', `/v1/ops/accounts/${customer.account.id}`, bearer(tollgate.adminToken));
    expect(ops.json().account.state).toBe('closed');
    expect(ops.json().history).toEqual([
      expect.objectContaining({ event: 'CARD_VERIFIED', from: 'new', to: 'active', by: { kind: 'customer', id: customer.account.id, name: 'Charles Babbage' } }),
      expect.objectContaining({ event: 'CLOSE', from: 'active', to: 'closed', reason: 'moving abroad', by: { kind: 'customer', id: customer.account.id, name: 'Charles Babbage' } }),
    ]);
  });

  it('closes with no body, giving its own reason', async () => {
    const customer = await signUp(tollgate.app);
    const closed = await tollgate.app.inject({ method: 'POST', url: '/v1/account/close', headers: customer.auth });
    expect(closed.statusCode, closed.body).toBe(200);
    const [line] = await tollgate.sql<{ reason: string }[]>`select reason from account_events where account_id = ${customer.account.id} and event = 'CLOSE'`;
    expect(line!.reason).toBe('closed by the customer');
  });
});
