import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp, signUpBody } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/**
 * Every amount, quantity and text is bounded where it comes in (DESIGN rule 16): no input
 * yields a 500, nothing is sent to the card network for a request that will be refused, and
 * one extreme session never breaks an operator's list.
 */
let tollgate: TestTollgate;
let ops: Record<string, string>;

beforeAll(async () => {
  tollgate = await startTestTollgate({ env: { MAX_AMOUNT: '100000.00' } });
  ops = { authorization: `Bearer ${tollgate.adminToken}` };
});
afterAll(async () => {
  await tollgate.stop();
});

const signUpWith = (overrides: Record<string, unknown>) =>
  tollgate.app.inject({ method: 'POST', url: '/v1/accounts', payload: signUpBody(overrides) });

describe('amounts and quantities', () => {
  it('refuses an outstanding limit above MAX_AMOUNT, and an estimate above MAX_ESTIMATE, before the card is tokenized', async () => {
    const network = sandbox(tollgate.cardNetworkUrl);
    const before = (await network.calls()).tokenize ?? 0;
    for (const overrides of [{ outstandingLimit: '999999999999.00' }, { outstandingLimit: '100000.01' }, { estimatedStorageGb: 1e9 }, { estimatedProcessingHours: 1e7 }]) {
      const response = await signUpWith(overrides);
      expect(response.statusCode, JSON.stringify(overrides)).toBe(400);
      expect(response.json().code).toBe('VALIDATION_FAILED');
    }
    expect((await network.calls()).tokenize ?? 0).toBe(before);
  });

  it('says what is wrong with a value too large or too late, and with a webhook URL too long', async () => {
    const tooLarge = await signUpWith({ outstandingLimit: '999999999999999999.99' });
    const messages = (response: { json(): { issues: { message: string }[] } }) => response.json().issues.map((issue) => issue.message).join('; ');
    expect(messages(tooLarge)).toBe('must be at most 100000.00');
    const malformed = await signUpWith({ outstandingLimit: '12.345' });
    expect(messages(malformed)).toContain('at most 2 decimals');
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' });
    const customer = await signUp(tollgate.app);
    const late = await tollgate.app.inject({ method: 'POST', url: '/v1/quotes', headers: customer.auth, payload: { serviceId, minutes: 1, startAt: '9999-12-31T23:59:00Z' } });
    expect(messages(late)).toContain('must lie between 1970-01-01T00:00:00Z and 9999-12-31T00:00:00Z');
    const url = (length: number) => `http://127.0.0.1:5311/${'a'.repeat(length - 'http://127.0.0.1:5311/'.length)}`;
    const long = await tollgate.app.inject({ method: 'POST', url: '/v1/ops/webhooks', headers: ops, payload: { url: url(2001), eventTypes: ['session.settled'] } });
    expect(long.statusCode).toBe(400);
    expect(messages(long)).toBe('must be at most 2000 characters');
    const longest = await tollgate.app.inject({ method: 'POST', url: '/v1/ops/webhooks', headers: ops, payload: { url: url(2000), eventTypes: ['session.settled'] } });
    expect(longest.statusCode).toBe(201);
  });

  it('runs a session at the largest limit and the smallest price with a cutoff that is a real instant, and lists it', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '100000.00' });
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.000001' });
    const opened = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId } });
    expect(opened.statusCode).toBe(201);
    const session = opened.json();
    expect(session.maxCharge).toBe('100000.00');
    expect(Number.isNaN(Date.parse(session.cutoffAt))).toBe(false);
    expect((await tollgate.app.inject({ url: `/v1/sessions/${session.id}`, headers: customer.auth })).statusCode).toBe(200);
    for (const url of ['/v1/ops/sessions?stuck=true', '/v1/ops/sessions', `/v1/ops/sessions/${session.id}`, '/v1/ops/session-log?format=csv']) {
      expect((await tollgate.app.inject({ url, headers: ops })).statusCode, url).toBe(200);
    }
    const logoff = await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth });
    expect(logoff.statusCode).toBe(200);
  });

  it('refuses a quote whose total is above MAX_AMOUNT, which would have been its session\'s limit', async () => {
    const customer = await signUp(tollgate.app);
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '10000.00' });
    const week = await tollgate.app.inject({ method: 'POST', url: '/v1/quotes', headers: customer.auth, payload: { serviceId, maxMinutes: 10080 } });
    expect(week.statusCode).toBe(400);
    expect(week.json()).toMatchObject({ code: 'QUOTE_OVER_MAX_AMOUNT', total: '100800000.00', most: '100000.00' });
    const tenMinutes = await tollgate.app.inject({ method: 'POST', url: '/v1/quotes', headers: customer.auth, payload: { serviceId, maxMinutes: 10 } });
    expect(tenMinutes.statusCode).toBe(201);
    expect(tenMinutes.json().total).toBe('100000.00');
  });

  it('refuses a maxCharge or an extension above MAX_AMOUNT, and a price above MAX_PRICE_PER_MINUTE', async () => {
    const customer = await signUp(tollgate.app);
    const { serviceId, serverId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00' });
    const open = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '100000.01' } });
    expect(open.statusCode).toBe(400);
    const price = await tollgate.app.inject({
      method: 'POST',
      url: '/v1/services',
      headers: ops,
      payload: { name: 'too dear', serverId, pricePerMinute: '10000.000001', maxUsers: 1 },
    });
    expect(price.statusCode).toBe(400);
  });
});

describe('text', () => {
  it('refuses a NUL or another control character, a line separator or a bidirectional override in names, e-mails and passwords with a 400', async () => {
    const attempts = [
      () => signUpWith({ name: 'Ada\u0000Lovelace' }),
      () => signUpWith({ password: 'analytical\u0000engine' }),
      () => tollgate.app.inject({ method: 'POST', url: '/v1/auth/tokens', payload: { email: 'ada\u0000@example.com', password: 'x' } }),
      () => tollgate.app.inject({ method: 'POST', url: '/v1/servers', headers: ops, payload: { name: 'nul\u0000server', maxUsers: 1 } }),
      () => tollgate.app.inject({ method: 'POST', url: '/v1/servers', headers: ops, payload: { name: 'bell\u0007', maxUsers: 1 } }),
      // The C1 controls are control characters too; a line separator breaks a line as a newline
      // does, and a bidirectional override shows a name other than the one stored.
      () => signUpWith({ name: 'Ada\u0085Lovelace' }),
      () => tollgate.app.inject({ method: 'POST', url: '/v1/servers', headers: ops, payload: { name: 'line\u2028break', maxUsers: 1 } }),
      () => tollgate.app.inject({ method: 'POST', url: '/v1/servers', headers: ops, payload: { name: 'evil\u202egnp.exe', maxUsers: 1 } }),
    ];
    for (const attempt of attempts) {
      const response = await attempt();
      expect(response.statusCode).toBe(400);
      expect(response.json().code).toBe('VALIDATION_FAILED');
    }
  });
});
