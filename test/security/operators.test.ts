import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { createOperator, type CreatedOperator } from '../helpers/operators.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/**
 * Operators (issue 15): named accounts with roles and keys of their own, a bootstrap token that
 * only creates the first admin, and an append-only audit log of every change and rescue.
 */
const clock = new ManualClock(Date.UTC(2026, 5, 1, 9, 0, 0));
let tollgate: TestTollgate;
let admin: Record<string, string>;
let support: CreatedOperator;
let readOnly: CreatedOperator;

beforeAll(async () => {
  tollgate = await startTestTollgate({ clock, env: { CAPTURE_RETRY_BASE_MS: '20000', CAPTURE_RETRY_MAX_MS: '20000', STUCK_AFTER_ATTEMPTS: '1' } });
  admin = { authorization: `Bearer ${tollgate.adminToken}` };
  support = await createOperator(tollgate.app, tollgate.adminToken, { name: 'sam-support', role: 'support' });
  readOnly = await createOperator(tollgate.app, tollgate.adminToken, { name: 'rita-readonly', role: 'read_only', password: 'a long console password' });
});
afterAll(async () => {
  await tollgate?.stop();
});

const as = (operator: CreatedOperator) => ({ authorization: `Bearer ${operator.apiKey}` });
const inject = (method: 'GET' | 'POST' | 'PATCH', url: string, headers: Record<string, string>, payload?: object) =>
  tollgate.app.inject({ method, url, headers, ...(payload && { payload }) });

async function audit(query = ''): Promise<{ action: string; operatorName: string; operatorId: string | null; targetId: string; before: any; after: any; at: string }[]> {
  const answer = await inject('GET', `/v1/ops/audit${query}`, admin);
  expect(answer.statusCode, answer.body).toBe(200);
  return answer.json().entries;
}

describe('the bootstrap token', () => {
  it('created the first admin and is refused for everything else, a second admin included', async () => {
    const bootstrap = { authorization: `Bearer ${tollgate.bootstrapToken}` };
    for (const [method, url, body] of [
      ['GET', '/v1/ops/servers', undefined],
      ['POST', '/v1/servers', { name: 'nope', maxUsers: 1 }],
      ['GET', '/metrics', undefined],
      ['POST', '/v1/ops/operators', { name: 'second-admin', role: 'admin' }],
    ] as const) {
      const answer = await inject(method, url, bootstrap, body);
      expect(answer.statusCode, `${method} ${url}`).toBe(403);
      expect(answer.json().code).toBe('FORBIDDEN');
    }
    const [created] = await audit('?action=operator.create&targetType=operator&limit=500').then((entries) => entries.filter((e) => e.after?.name === 'test-admin'));
    expect(created).toMatchObject({ operatorName: 'bootstrap token', operatorId: null, after: { role: 'admin' } });
  });
});

describe('roles', () => {
  it('lets a support operator read and rescue, but not change a price, a cap or an operator', async () => {
    const { serviceId, serverId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00' });
    expect((await inject('GET', '/v1/ops/servers', as(support))).statusCode).toBe(200);
    expect((await inject('GET', '/v1/ops/sessions', as(support))).statusCode).toBe(200);
    const price = await inject('PATCH', `/v1/services/${serviceId}`, as(support), { pricePerMinute: '0.01' });
    expect(price.statusCode).toBe(403);
    expect(price.json()).toMatchObject({ code: 'FORBIDDEN', role: 'support' });
    expect((await inject('PATCH', `/v1/servers/${serverId}`, as(support), { maxUsers: 1 })).statusCode).toBe(403);
    expect((await inject('POST', '/v1/ops/operators', as(support), { name: 'mallory', role: 'admin' })).statusCode).toBe(403);
    // Nothing changed.
    const services = (await tollgate.app.inject({ url: '/v1/services' })).json().services as { id: string; pricePerMinute: string }[];
    expect(services.find((s) => s.id === serviceId)!.pricePerMinute).toBe('1.00');
  });

  it('lets a read-only operator read (metrics too) and nothing else', async () => {
    expect((await inject('GET', '/v1/ops/session-log', as(readOnly))).statusCode).toBe(200);
    expect((await inject('GET', '/metrics', as(readOnly))).statusCode).toBe(200);
    expect((await inject('GET', '/v1/ops/audit', as(readOnly))).statusCode).toBe(200);
    const session = '00000000-0000-4000-8000-000000000000';
    expect((await inject('POST', `/v1/ops/sessions/${session}/terminate`, as(readOnly))).statusCode).toBe(403);
    expect((await inject('GET', '/v1/ops/operators', as(readOnly))).statusCode).toBe(403);
  });

  it('refuses a disabled operator at once, and a rotated key', async () => {
    const temp = await createOperator(tollgate.app, tollgate.adminToken, { name: 'temp-support', role: 'support' });
    expect((await inject('GET', '/v1/ops/servers', as(temp))).statusCode).toBe(200);
    const rotated = await inject('POST', `/v1/ops/operators/${temp.operator.id}/key`, admin);
    expect(rotated.statusCode).toBe(200);
    expect((await inject('GET', '/v1/ops/servers', as(temp))).statusCode).toBe(403);
    const fresh = { authorization: `Bearer ${rotated.json().apiKey}` };
    expect((await inject('GET', '/v1/ops/servers', fresh)).statusCode).toBe(200);
    expect((await inject('PATCH', `/v1/ops/operators/${temp.operator.id}`, admin, { disabled: true })).statusCode).toBe(200);
    expect((await inject('GET', '/v1/ops/servers', fresh)).statusCode).toBe(403);
  });

  it('keeps at least one enabled admin', async () => {
    const me = (await inject('GET', '/v1/ops/operators', admin)).json().operators.find((o: { name: string }) => o.name === 'test-admin');
    const answer = await inject('PATCH', `/v1/ops/operators/${me.id}`, admin, { role: 'support' });
    expect(answer.statusCode).toBe(409);
    expect(answer.json().code).toBe('LAST_ADMIN');
  });

  it('needs an operator key for /metrics', async () => {
    expect((await tollgate.app.inject({ url: '/metrics' })).statusCode).toBe(401);
  });
});

describe('the audit log', () => {
  it('records a price change with who, when, before and after', async () => {
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '2.00' });
    expect((await inject('PATCH', `/v1/services/${serviceId}`, admin, { pricePerMinute: '2.50', maxUsers: 7 })).statusCode).toBe(200);
    const [entry] = await audit(`?targetType=service&targetId=${serviceId}&action=service.update`);
    expect(entry).toMatchObject({
      operatorName: 'test-admin',
      at: new Date(clock.now()).toISOString(),
      before: { pricePerMinute: '2.00', maxUsers: 100 },
      after: { pricePerMinute: '2.50', maxUsers: 7 },
    });
  });

  it('records a change that changes nothing not at all, a webhook disabled once, and instants as ISO text', async () => {
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '2.00' });
    const entries = async (query: string) => (await audit(query)).length;
    const serviceChanges = `?targetType=service&targetId=${serviceId}&action=service.update`;
    expect((await inject('PATCH', `/v1/services/${serviceId}`, admin, { pricePerMinute: '2.00', maxUsers: 100 })).statusCode).toBe(200);
    expect(await entries(serviceChanges)).toBe(0);

    const customer = await signUp(tollgate.app);
    const modes = `?targetType=account&targetId=${customer.account.id}&action=account.payment_mode`;
    expect((await inject('POST', `/v1/ops/accounts/${customer.account.id}/payment-mode`, admin, { paymentMode: 'card', reason: 'already' })).statusCode).toBe(200);
    expect(await entries(modes)).toBe(0);

    const endpoint = (await inject('POST', '/v1/ops/webhooks', admin, { url: 'https://example.com/hook', eventTypes: ['session.settled'] })).json().endpoint;
    for (let i = 0; i < 2; i++) expect((await tollgate.app.inject({ method: 'DELETE', url: `/v1/ops/webhooks/${endpoint.id}`, headers: admin })).statusCode).toBe(200);
    const disabled = await audit(`?targetType=webhook&targetId=${endpoint.id}&action=webhook.disable`);
    expect(disabled).toHaveLength(1);
    expect(disabled[0]).toMatchObject({ before: { disabledAt: null }, after: { disabledAt: expect.any(String) } });

    const until = new Date(clock.now() + 3_600_000).toISOString();
    const suspendedAnswer = await inject('POST', `/v1/ops/accounts/${customer.account.id}/suspend`, admin, { reason: 'a look', until });
    expect(suspendedAnswer.json().account).toMatchObject({ state: 'suspended', resumesAt: until });
    const [suspended] = await audit(`?targetType=account&targetId=${customer.account.id}&action=account.suspend`);
    expect(suspended).toMatchObject({ before: { resumesAt: null }, after: { state: 'suspended', resumesAt: until } });

    // A signing secret signs calls to an upstream: a service without one says so, not that it does not exist.
    const rotated = await inject('POST', `/v1/services/${serviceId}/signing-secret`, admin);
    expect(rotated.statusCode).toBe(409);
    expect(rotated.json().code).toBe('NO_UPSTREAM');
  });

  it('records every rescue a support operator makes', async () => {
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '60.00' });
    const customer = await signUp(tollgate.app);
    const open = async () =>
      (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '5.00' } })).json();
    const terminated = await open();
    clock.advance(1_000);
    const stuck = await open();
    clock.advance(1_000);
    const rescues: [string, string][] = [
      [terminated.id, 'terminate'],
      [stuck.id, 'retry'],
      [stuck.id, 'void'],
    ];
    expect((await inject('POST', `/v1/ops/sessions/${terminated.id}/terminate`, as(support))).statusCode).toBe(200);
    const network = sandbox(tollgate.cardNetworkUrl);
    // Someone voided the hold at the card company: its capture is refused for good, and the
    // session waits, stuck; support retries it (refused again), then forgives it.
    const hold = (await network.holds(`?reference=${stuck.id}`))[0]!;
    const outside = await fetch(`${tollgate.cardNetworkUrl}/v1/holds/${hold.id}/void`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': `outside-${hold.id}` },
      body: '{}',
    });
    expect(outside.status).toBe(200);
    expect((await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${stuck.id}/logoff`, headers: customer.auth })).statusCode).toBe(202);
    for (const [id, action] of rescues.slice(1)) {
      const answer = await inject('POST', `/v1/ops/sessions/${id}/${action}`, as(support));
      expect(answer.statusCode, `${action}: ${answer.body}`).toBe(200);
    }
    const entries = await audit(`?operatorId=${support.operator.id}&targetType=session`);
    expect(entries.map((e) => [e.targetId, e.action.replace('session.', '')]).reverse()).toEqual(rescues);
    const [voided] = entries;
    expect(voided).toMatchObject({ operatorName: 'sam-support', before: { state: 'closing', stuck: true }, after: { state: 'settled' } });
    expect(entries.at(-1)).toMatchObject({ before: { state: 'active' }, after: { state: 'settled', endReason: 'ops_terminated' } });
  });

  it('pages newest first with a cursor and filters by time', async () => {
    const all = await audit('?limit=500');
    const first = (await inject('GET', '/v1/ops/audit?limit=2', admin)).json();
    expect(first.entries.map((e: { id: string }) => e.id)).toEqual(all.slice(0, 2).map((e) => (e as unknown as { id: string }).id));
    const second = (await inject('GET', `/v1/ops/audit?limit=2&cursor=${first.nextCursor}`, admin)).json();
    expect(second.entries.map((e: { id: string }) => e.id)).toEqual(all.slice(2, 4).map((e) => (e as unknown as { id: string }).id));
    expect(await audit(`?since=${new Date(clock.now() + 1000).toISOString()}`)).toEqual([]);
    // A window that ends before it starts is refused, as a usage report's is.
    const backwards = await inject('GET', `/v1/ops/audit?since=${new Date(clock.now()).toISOString()}&until=${new Date(clock.now() - 1000).toISOString()}`, admin);
    expect(backwards.statusCode).toBe(400);
    expect(backwards.json()).toMatchObject({ code: 'VALIDATION_FAILED', issues: [expect.objectContaining({ path: 'querystring.since' })] });
  });

  it('cannot be changed or emptied, even with SQL', async () => {
    await expect(tollgate.sql`update audit_log set operator_name = 'someone else'`).rejects.toThrow(/append-only/);
    await expect(tollgate.sql`delete from audit_log`).rejects.toThrow(/append-only/);
    await expect(tollgate.sql`truncate audit_log`).rejects.toThrow(/append-only/);
    expect((await audit('?limit=500')).length).toBeGreaterThan(5);
  });
});
