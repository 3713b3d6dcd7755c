import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { createOperator } from '../helpers/operators.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

// The clock is the test's: a session's charge and a suspension's end are exactly what it says.
const clock = new ManualClock(Date.UTC(2026, 10, 30, 9, 0, 0));
const HOUR = 3_600_000;
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
const call = (method: 'GET' | 'POST', url: string, headers: Headers, payload?: object) =>
  tollgate.app.inject({ method, url, headers, ...(payload && { payload }) });
const open = (auth: Headers) => call('POST', '/v1/sessions', auth, { serviceId, maxCharge: '5.00' });
const suspend = (accountId: string, body: object, headers = ops) => call('POST', `/v1/ops/accounts/${accountId}/suspend`, headers, body);

describe('suspending an account', () => {
  it('ends and settles its running sessions, refuses new ones, and records who and why', async () => {
    const customer = await signUp(tollgate.app);
    const running = (await open(customer.auth)).json();
    expect(running.state).toBe('active');
    clock.advance(60_000);

    const suspended = await suspend(customer.account.id, { reason: 'chargeback under review' });
    expect(suspended.statusCode).toBe(200);
    expect(suspended.json().account.state).toBe('suspended');

    const session = (await call('GET', `/v1/sessions/${running.id}`, customer.auth)).json();
    expect(session).toMatchObject({ state: 'settled', endReason: 'ops_terminated', charge: '0.60' });
    const captures = await sandbox(tollgate.cardNetworkUrl).captures();
    expect(captures).toContainEqual(expect.objectContaining({ id: session.chargeSlip.id, amount: '0.60' }));
    expect((await call('GET', '/v1/account', customer.auth)).json().account).toMatchObject({ state: 'suspended', reserved: '0.00' });

    const refused = await open(customer.auth);
    expect(refused.statusCode).toBe(409);
    expect(refused.headers['content-type']).toContain('application/problem+json');
    expect(refused.json()).toMatchObject({ code: 'ACCOUNT_NOT_ACTIVE', state: 'suspended' });
    // Nothing was held for the refused open, and its seat was given back.
    expect(await sandbox(tollgate.cardNetworkUrl).holds('?state=open')).toEqual([]);

    const { history } = suspended.json();
    expect(history.at(-1)).toMatchObject({
      event: 'SUSPEND',
      from: 'active',
      to: 'suspended',
      reason: 'chargeback under review',
      by: { kind: 'operator', name: 'test-admin' },
      at: new Date(clock.now()).toISOString(),
    });
    const audit = (await call('GET', `/v1/ops/audit?targetType=account&targetId=${customer.account.id}`, ops)).json();
    expect(audit.entries[0]).toMatchObject({ action: 'account.suspend', before: { state: 'active' }, after: { state: 'suspended', reason: 'chargeback under review' } });
    const [event] = await tollgate.sql`select type, payload from domain_events where stream = ${`account:${customer.account.id}`} and type = 'account.suspended'`;
    expect(event!.payload).toMatchObject({ accountId: customer.account.id, reason: 'chargeback under review' });
  });

  it('audits suspensions sent at once each with the state the one before it left', async () => {
    const customer = await signUp(tollgate.app);
    const all = await Promise.all(['first', 'second', 'third', 'fourth', 'fifth'].map((look) => suspend(customer.account.id, { reason: `${look} look` })));
    expect(all.map((answer) => answer.statusCode)).toEqual([200, 200, 200, 200, 200]);
    const audit = (await call('GET', `/v1/ops/audit?targetType=account&targetId=${customer.account.id}`, ops)).json();
    // One found it active; each of the others, suspended already.
    expect(audit.entries.map((entry: { before: { state: string } }) => entry.before.state).sort()).toEqual(['active', 'suspended', 'suspended', 'suspended', 'suspended']);
    expect(audit.entries.map((entry: { after: { state: string } }) => entry.after.state)).toEqual(['suspended', 'suspended', 'suspended', 'suspended', 'suspended']);
  });

  it('opens sessions again once an operator resumes it', async () => {
    const customer = await signUp(tollgate.app);
    await suspend(customer.account.id, { reason: 'look into it' });
    const resumed = await call('POST', `/v1/ops/accounts/${customer.account.id}/resume`, ops, { reason: 'all clear' });
    expect(resumed.json().account.state).toBe('active');
    const opened = await open(customer.auth);
    expect(opened.statusCode).toBe(201);
    await call('POST', `/v1/sessions/${opened.json().id}/logoff`, customer.auth);
  });

  it('resumes by itself at the end it was given, also after a restart', async () => {
    const customer = await signUp(tollgate.app);
    const until = new Date(clock.now() + 2 * HOUR).toISOString();
    expect((await suspend(customer.account.id, { reason: 'cooling off', until })).json().account.state).toBe('suspended');
    tollgate = await tollgate.restart();
    clock.advance(2 * HOUR - 1);
    expect((await call('GET', '/v1/account', customer.auth)).json().account.state).toBe('suspended');
    clock.advance(1);
    await expect.poll(async () => (await call('GET', '/v1/account', customer.auth)).json().account.state).toBe('active');
    const history = (await call('GET', '/v1/account/history', customer.auth)).json().history;
    expect(history.at(-1)).toMatchObject({ event: 'RESUME', by: { kind: 'system', name: 'tollgate' }, reason: 'suspension ended', at: until });
  });

  it('lets support suspend and refuses read-only operators', async () => {
    const customer = await signUp(tollgate.app);
    const readOnly = await createOperator(tollgate.app, tollgate.adminToken, { name: 'reader', role: 'read_only' });
    const support = await createOperator(tollgate.app, tollgate.adminToken, { name: 'helper', role: 'support' });
    const refused = await suspend(customer.account.id, { reason: 'x' }, { authorization: `Bearer ${readOnly.apiKey}` });
    expect(refused.statusCode).toBe(403);
    const done = await suspend(customer.account.id, { reason: 'card reported stolen' }, { authorization: `Bearer ${support.apiKey}` });
    expect(done.json().history.at(-1).by).toEqual({ kind: 'operator', id: support.operator.id, name: 'helper' });
  });

  it.each([
    ['no reason', {}, 400, 'VALIDATION_FAILED'],
    ['an end in the past', { reason: 'x', until: '2020-01-01T00:00:00Z' }, 400, 'VALIDATION_FAILED'],
  ])('answers a suspension with %s with %i %s', async (_name, body, status, code) => {
    const customer = await signUp(tollgate.app);
    const response = await suspend(customer.account.id, body);
    expect(response.statusCode).toBe(status);
    expect(response.json().code).toBe(code);
  });

  it('answers 404 ACCOUNT_NOT_FOUND for no such account and 409 ACCOUNT_NOT_ACTIVE for a closed one', async () => {
    expect((await suspend('00000000-0000-4000-8000-000000000000', { reason: 'x' })).json().code).toBe('ACCOUNT_NOT_FOUND');
    const customer = await signUp(tollgate.app);
    await call('POST', `/v1/ops/accounts/${customer.account.id}/close`, ops, { reason: 'fraud' });
    const response = await suspend(customer.account.id, { reason: 'x' });
    expect(response.statusCode).toBe(409);
    expect(response.json()).toMatchObject({ code: 'ACCOUNT_NOT_ACTIVE', state: 'closed' });
  });
});
