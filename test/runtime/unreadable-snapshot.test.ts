import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createService, signUp } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/** One stored session this build cannot read must not stop the others from starting. */
let tollgate: TestTollgate;

beforeAll(async () => {
  tollgate = await startTestTollgate();
});
afterAll(async () => {
  await tollgate.stop();
});

describe('a snapshot of a machine version this build does not know', () => {
  it('holds that session with its reason and starts the rest', async () => {
    const customer = await signUp(tollgate.app);
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' });
    const open = () => tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '2.00' } });
    const unreadable = (await open()).json();
    const readable = (await open()).json();
    await tollgate.close();
    await tollgate.db.sql`update sessions set machine_version = 99 where id = ${unreadable.id}`;

    tollgate = await tollgate.restart();
    const ops = { authorization: `Bearer ${tollgate.adminToken}` };
    expect((await tollgate.app.inject({ url: '/ready' })).statusCode).toBe(200);
    const logoff = await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${readable.id}/logoff`, headers: customer.auth });
    expect(logoff.json().state).toBe('settled');

    const { sessions } = (await tollgate.app.inject({ url: '/v1/ops/sessions?stuck=true', headers: ops })).json();
    expect(sessions.map((s: { id: string }) => s.id)).toEqual([unreadable.id]);
    expect(sessions[0]).toMatchObject({ held: true, stuck: true });
    expect(sessions[0].stuckReason).toMatch(/^snapshot cannot be read: no migration for session snapshots of version 99/);
    expect((await tollgate.app.inject({ url: `/v1/sessions/${unreadable.id}`, headers: customer.auth })).statusCode).toBe(200);
    const retry = await tollgate.app.inject({ method: 'POST', url: `/v1/ops/sessions/${unreadable.id}/retry`, headers: ops });
    expect(retry.statusCode).toBe(409);
    expect(retry.json().code).toBe('ACTION_NOT_ALLOWED');
  });
});
