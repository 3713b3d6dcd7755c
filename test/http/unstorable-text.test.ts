import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUp, signUpBody } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/**
 * Text no column can hold (NUL) or no JSON can carry (half of a UTF-16 surrogate pair) is a 400
 * naming the field, on every route, not a 500 from the statement that met it.
 */
let tollgate: TestTollgate;
let ops: Record<string, string>;
beforeAll(async () => {
  tollgate = await startTestTollgate();
  ops = { authorization: `Bearer ${tollgate.adminToken}` };
});
afterAll(() => tollgate.stop());

// The JSON text itself carries the escapes, as a client would send them.
const rawJson = (body: Record<string, unknown>, field: string, escaped: string) =>
  JSON.stringify({ ...body, [field]: '@@' }).replace('"@@"', `"a${escaped}b"`);

describe('text that cannot be stored', () => {
  it('is refused with 400 VALIDATION_FAILED naming the field, and nothing is kept', async () => {
    const body = signUpBody();
    for (const escaped of ['\\ud800', '\\udfff', '\\u0000']) {
      const refused = await tollgate.app.inject({ method: 'POST', url: '/v1/accounts', headers: { 'content-type': 'application/json' }, payload: rawJson(body, 'name', escaped) });
      expect(refused.statusCode, refused.body).toBe(400);
      expect(refused.json()).toMatchObject({ code: 'VALIDATION_FAILED', issues: [{ path: 'body.name' }] });
    }
    // A whole surrogate pair is text like any other; the e-mail was never taken by the refusals.
    const accepted = await tollgate.app.inject({ method: 'POST', url: '/v1/accounts', payload: { ...body, name: 'Ada 🧮' } });
    expect(accepted.statusCode, accepted.body).toBe(201);

    const customer = await signUp(tollgate.app);
    const close = await tollgate.app.inject({
      method: 'POST',
      url: '/v1/account/close',
      headers: { ...customer.auth, 'content-type': 'application/json' },
      payload: rawJson({}, 'reason', '\\udfff'),
    });
    expect([close.statusCode, close.json().issues]).toEqual([400, [expect.objectContaining({ path: 'body.reason' })]]);
    expect((await tollgate.app.inject({ url: '/v1/account', headers: customer.auth })).json().account.state).toBe('active');
  });

  it('in a query is refused the same way', async () => {
    const search = await tollgate.app.inject({ url: '/v1/ops/accounts?search=a%00b', headers: ops });
    expect(search.statusCode, search.body).toBe(400);
    expect(search.json()).toMatchObject({ code: 'VALIDATION_FAILED', issues: [{ path: 'querystring.search' }] });
  });
});
