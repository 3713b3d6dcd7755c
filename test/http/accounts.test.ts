import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUpBody } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

let tollgate: TestTollgate;
beforeAll(async () => {
  tollgate = await startTestTollgate();
});
afterAll(() => tollgate.stop());

const post = (url: string, payload: unknown) => tollgate.app.inject({ method: 'POST', url, payload: payload as object });

describe('sign-up', () => {
  it('creates an account with a tokenized card and answers a bearer token', async () => {
    const body = signUpBody();
    const response = await post('/v1/accounts', body);
    expect(response.statusCode).toBe(201);
    const { account, token } = response.json();
    expect(token).toMatch(/^tg_/);
    expect(account).toMatchObject({
      email: body.email,
      card: { brand: 'visa', last4: '4242', expMonth: 12, expYear: 2031 },
      outstandingLimit: '100.00',
      estimatedStorageGb: 20,
      estimatedProcessingHours: 3.5,
    });
    const me = await tollgate.app.inject({ url: '/v1/account', headers: { authorization: `Bearer ${token}` } });
    expect(me.json().account.id).toBe(account.id);
  });

  it('refuses a second account with a known e-mail, whatever its case', async () => {
    const body = signUpBody();
    expect((await post('/v1/accounts', body)).statusCode).toBe(201);
    const again = await post('/v1/accounts', { ...body, email: body.email.toUpperCase() });
    expect(again.statusCode).toBe(409);
    expect(again.headers['content-type']).toContain('application/problem+json');
    expect(again.json().code).toBe('EMAIL_TAKEN');
    expect(again.json().closed).toBeUndefined();
  });

  it('says so when the e-mail is a closed account\'s, which logs in no more', async () => {
    const body = signUpBody();
    const created = await post('/v1/accounts', body);
    const auth = { authorization: `Bearer ${created.json().token as string}` };
    expect((await tollgate.app.inject({ method: 'POST', url: '/v1/account/close', headers: auth, payload: {} })).statusCode).toBe(200);
    const again = await post('/v1/accounts', body);
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ code: 'EMAIL_TAKEN', closed: true, detail: expect.stringContaining('sign up with another e-mail') });
  });

  it.each([
    ['a card number that fails the Luhn check', { card: { number: '4242424242424241', expMonth: 12, expYear: 2031, cvc: '123' } }, 'CARD_INVALID'],
    ['an expired card', { card: { number: '4242424242424242', expMonth: 1, expYear: 2020, cvc: '123' } }, 'CARD_INVALID'],
    ['a CVC of two digits', { card: { number: '4242424242424242', expMonth: 12, expYear: 2031, cvc: '12' } }, 'VALIDATION_FAILED'],
    ['a card number with letters', { card: { number: '4242abcd42424242', expMonth: 12, expYear: 2031, cvc: '123' } }, 'VALIDATION_FAILED'],
    ['a missing name', { name: undefined }, 'VALIDATION_FAILED'],
    ['a missing card', { card: undefined }, 'VALIDATION_FAILED'],
    ['a limit given as a number', { outstandingLimit: 100 }, 'VALIDATION_FAILED'],
    ['a limit with fractions of a cent', { outstandingLimit: '10.001' }, 'VALIDATION_FAILED'],
    ['a zero limit', { outstandingLimit: '0.00' }, 'VALIDATION_FAILED'],
    ['storage given as text', { estimatedStorageGb: 'lots' }, 'VALIDATION_FAILED'],
    ['a negative processing estimate', { estimatedProcessingHours: -1 }, 'VALIDATION_FAILED'],
    ['a malformed e-mail', { email: 'not-an-email' }, 'VALIDATION_FAILED'],
    ['a short password', { password: 'short' }, 'VALIDATION_FAILED'],
  ])('answers %s with a 400 and a stable code', async (_name, overrides, code) => {
    const response = await post('/v1/accounts', signUpBody(overrides));
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.json().code).toBe(code);
  });

  it('answers a body that is not JSON with VALIDATION_FAILED, not a 500', async () => {
    const response = await tollgate.app.inject({
      method: 'POST',
      url: '/v1/accounts',
      headers: { 'content-type': 'application/json' },
      payload: '{"name": ',
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().code).toBe('VALIDATION_FAILED');
  });

  it('names the failing field of a bad card', async () => {
    const response = await post(
      '/v1/accounts',
      signUpBody({ card: { number: '4242424242424241', expMonth: 12, expYear: 2031, cvc: '123' } }),
    );
    expect(response.json().field).toBe('number');
  });
});

describe('tokens', () => {
  it('issues a new token for the right password and refuses a wrong one', async () => {
    const body = signUpBody();
    await post('/v1/accounts', body);
    const ok = await post('/v1/auth/tokens', { email: body.email, password: body.password });
    expect(ok.statusCode).toBe(201);
    expect(ok.json().token).toMatch(/^tg_/);
    const wrong = await post('/v1/auth/tokens', { email: body.email, password: 'not the password' });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().code).toBe('INVALID_CREDENTIALS');
  });

  it('stores the password as argon2id and the token only as a hash', async () => {
    const body = signUpBody();
    const { token, account } = (await post('/v1/accounts', body)).json();
    const [row] = await tollgate.sql`select password_hash from accounts where id = ${account.id}`;
    expect(row!.password_hash).toMatch(/^\$argon2id\$/);
    const tokens = await tollgate.sql`select token_hash from api_tokens where account_id = ${account.id}`;
    expect(tokens).toHaveLength(1);
    expect(Buffer.from(tokens[0]!.token_hash as Buffer).includes(Buffer.from(token))).toBe(false);
  });

  it('refuses customer routes without a valid bearer token', async () => {
    const none = await tollgate.app.inject({ url: '/v1/sessions' });
    expect(none.statusCode).toBe(401);
    expect(none.json().code).toBe('UNAUTHENTICATED');
    const bad = await tollgate.app.inject({ url: '/v1/sessions', headers: { authorization: 'Bearer tg_nope' } });
    expect(bad.statusCode).toBe(401);
  });
});
