import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { createService, signUp } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/** Usage per service, customer and period, as an operator and a customer read it over HTTP. */
const clock = new ManualClock(Date.UTC(2026, 10, 2, 22, 0));
let tollgate: TestTollgate;
let ops: Record<string, string>;
let serviceId: string;
let alice: Awaited<ReturnType<typeof signUp>>;
let bob: Awaited<ReturnType<typeof signUp>>;

async function open(customer: { auth: Record<string, string> }) {
  const opened = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '100.00' } });
  expect(opened.statusCode, opened.body).toBe(201);
  return opened.json().id as string;
}
async function logoff(customer: { auth: Record<string, string> }, id: string) {
  const ended = await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${id}/logoff`, headers: customer.auth });
  expect(ended.json().state).toBe('settled');
}
const report = (query: string, headers = ops) => tollgate.app.inject({ url: `/v1/ops/reports/usage?${query}`, headers });

beforeAll(async () => {
  tollgate = await startTestTollgate({ clock });
  ops = { authorization: `Bearer ${tollgate.adminToken}` };
  serviceId = (await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' })).serviceId;
  alice = await signUp(tollgate.app, { name: 'Alice Report', outstandingLimit: '1000.00' });
  bob = await signUp(tollgate.app, { name: 'Bob Report', outstandingLimit: '1000.00' });
  // 2 Nov 22:00 UTC: Alice opens one for 10 minutes and, at 22:05, a second that runs past midnight
  // until 00:30 on 3 Nov; Bob opens one at 23:50 that ends at 00:10.
  const a1 = await open(alice);
  clock.set(Date.UTC(2026, 10, 2, 22, 5));
  const a2 = await open(alice);
  clock.set(Date.UTC(2026, 10, 2, 22, 10));
  await logoff(alice, a1);
  clock.set(Date.UTC(2026, 10, 2, 23, 50));
  const b1 = await open(bob);
  clock.set(Date.UTC(2026, 10, 3, 0, 10));
  await logoff(bob, b1);
  clock.set(Date.UTC(2026, 10, 3, 0, 30));
  await logoff(alice, a2);
  clock.set(Date.UTC(2026, 10, 4, 12, 0));
});
afterAll(async () => {
  await tollgate.stop();
});

describe('usage reports', () => {
  it('counts a session in the day it started, and the peak with those still running from the day before', async () => {
    const answer = await report(`period=day&serviceId=${serviceId}&from=2026-11-01T00:00:00Z&to=2026-11-05T00:00:00Z`);
    expect(answer.statusCode, answer.body).toBe(200);
    expect(answer.json().usage).toEqual([
      // 10 + 145 + 20 minutes at 0.60: 6.00 + 87.00 + 12.00.
      { period: '2026-11-02T00:00:00.000Z', key: serviceId, name: expect.any(String), sessions: 3, minutes: 175, uses: 0, revenue: '105.00', customers: 2, peakConcurrent: 2 },
      // Nothing started on 3 Nov, but Alice's and Bob's sessions were both still running at midnight.
      { period: '2026-11-03T00:00:00.000Z', key: serviceId, name: expect.any(String), sessions: 0, minutes: 0, uses: 0, revenue: '0.00', customers: 0, peakConcurrent: 2 },
    ]);
  });

  it('cuts periods in the time zone asked for', async () => {
    // In Tokyo (UTC+9) all three started on 3 Nov (07:00, 07:05, 08:50 local).
    const answer = await report(`period=day&serviceId=${serviceId}&timeZone=Asia/Tokyo&from=2026-11-01T00:00:00Z&to=2026-11-05T00:00:00Z`);
    expect(answer.json().usage).toEqual([expect.objectContaining({ period: '2026-11-02T15:00:00.000Z', sessions: 3, peakConcurrent: 2 })]);
  });

  it('splits per hour, and per customer', async () => {
    const hours = (await report(`period=hour&serviceId=${serviceId}&from=2026-11-02T00:00:00Z&to=2026-11-03T06:00:00Z`)).json().usage;
    expect(hours.map((row: { period: string; sessions: number; peakConcurrent: number }) => [row.period.slice(11, 13), row.sessions, row.peakConcurrent])).toEqual([
      ['22', 2, 2],
      ['23', 1, 2],
      ['00', 0, 2],
    ]);
    const customers = (await report(`period=month&by=customer&serviceId=${serviceId}&from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z`)).json().usage;
    expect(customers.map((row: { name: string; sessions: number; revenue: string }) => [row.name, row.sessions, row.revenue])).toEqual([
      ['Alice Report', 2, '93.00'],
      ['Bob Report', 1, '12.00'],
    ]);
  });

  it('answers CSV, and a customer sees only their own', async () => {
    const csv = await report(`period=day&serviceId=${serviceId}&from=2026-11-02T00:00:00Z&to=2026-11-03T00:00:00Z&format=csv`);
    expect(csv.headers['content-type']).toContain('text/csv');
    expect(csv.body.split('\r\n')[0]).toBe('period,key,name,sessions,minutes,uses,revenue,customers,peakConcurrent');
    expect(csv.body).toContain(`2026-11-02T00:00:00.000Z,${serviceId},`);
    const own = await tollgate.app.inject({ url: `/v1/account/usage?period=day&from=2026-11-01T00:00:00Z&to=2026-11-05T00:00:00Z`, headers: bob.auth });
    expect(own.json().usage.map((row: { sessions: number; revenue: string }) => [row.sessions, row.revenue])).toEqual([
      [1, '12.00'],
      [0, '0.00'],
    ]);
  });

  it('refuses a window that is backwards or too long, and a zone that does not exist', async () => {
    for (const query of ['from=2026-11-05T00:00:00Z&to=2026-11-01T00:00:00Z', 'period=hour&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z', 'timeZone=Mars/Olympus']) {
      const refused = await report(query);
      expect(refused.statusCode, query).toBe(400);
      expect(refused.json().code).toBe('VALIDATION_FAILED');
    }
    expect((await report('period=day', alice.auth)).statusCode).toBe(403);
  });

  it('counts a running session\'s minutes so far, as its uses, and not in the hours still to come', async () => {
    const { serviceId: own } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' });
    clock.set(Date.UTC(2026, 10, 4, 12, 0));
    const opened = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: alice.auth, payload: { serviceId: own, maxCharge: '100.00' } });
    clock.set(Date.UTC(2026, 10, 4, 12, 30));
    const answer = await report(`period=hour&serviceId=${own}&from=2026-11-04T12:00:00Z&to=2026-11-04T15:00:00Z`);
    expect(answer.json().usage).toEqual([
      { period: '2026-11-04T12:00:00.000Z', key: own, name: expect.any(String), sessions: 1, minutes: 30, uses: 0, revenue: '0.00', customers: 1, peakConcurrent: 1 },
    ]);
    await logoff(alice, opened.json().id as string);
  });
});
