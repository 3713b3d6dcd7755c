import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createService, signUp, signUpBody } from '../helpers/customers.js';
import { expectLedgerBalanced } from '../helpers/ledger.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

let tollgate: TestTollgate;
beforeAll(async () => {
  tollgate = await startTestTollgate();
});
afterAll(() => tollgate.stop());

describe('restarting tollgate', () => {
  it('keeps accounts, the catalogue and settled sessions, and carries on with active ones', async () => {
    const body = signUpBody();
    const customer = await signUp(tollgate.app, body);
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00' });
    const open = (payload: object) =>
      tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload });
    const settled = (await open({ serviceId, maxCharge: '1.00' })).json();
    await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${settled.id}/logoff`, headers: customer.auth });
    const running = (await open({ serviceId, maxCharge: '2.00' })).json();
    const adminToken = tollgate.adminToken;
    const servicesBefore = (await tollgate.app.inject({ url: '/v1/services' })).json();

    tollgate = await tollgate.restart();

    expect(tollgate.adminToken).toBe(adminToken);
    expect((await tollgate.app.inject({ url: '/v1/services' })).json().services.map((s: { id: string }) => s.id)).toEqual(
      servicesBefore.services.map((s: { id: string }) => s.id),
    );
    const login = await tollgate.app.inject({
      method: 'POST',
      url: '/v1/auth/tokens',
      payload: { email: body.email, password: body.password },
    });
    expect(login.statusCode).toBe(201);
    const auth = customer.auth;
    const before = (await tollgate.app.inject({ url: `/v1/sessions/${settled.id}`, headers: auth })).json();
    expect(before).toMatchObject({ state: 'settled', chargeSlip: settled.chargeSlip ?? null });
    // The active session was restored from its snapshot and can still be logged off.
    const after = await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${running.id}/logoff`, headers: auth });
    expect(after.statusCode).toBe(200);
    expect(after.json()).toMatchObject({ state: 'settled', endReason: 'logoff', authorizationNumber: running.authorizationNumber });
    // The one logged off before the restart and the one after.
    await expectLedgerBalanced(tollgate.sql, { settled: 2 });
  });
});
