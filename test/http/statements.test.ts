import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'csv-parse/sync';
import { ManualClock } from '../../src/clock.js';
import { createService, signUp } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

// 2026-11-30 is a Monday: November's statements are due at midnight, the first weekly one a week later.
const clock = new ManualClock(Date.UTC(2026, 10, 30, 9, 0, 0));
let tollgate: TestTollgate;
let serviceId: string;
beforeAll(async () => {
  tollgate = await startTestTollgate({ clock });
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' }));
});
afterAll(() => tollgate.stop());

type Headers = Record<string, string>;
const call = (method: 'GET' | 'POST' | 'PATCH', url: string, headers: Headers, payload?: object) =>
  tollgate.app.inject({ method, url, headers, ...(payload && { payload }) });

/** A session of `ms` on the test's clock, logged off: its charge is 0.01 a second. */
async function useFor(auth: Headers, ms: number) {
  const opened = (await call('POST', '/v1/sessions', auth, { serviceId, maxCharge: '5.00' })).json();
  clock.advance(ms);
  const settled = (await call('POST', `/v1/sessions/${opened.id}/logoff`, auth)).json();
  expect(settled.state).toBe('settled');
  return settled;
}

const statementsOf = async (auth: Headers) => (await call('GET', '/v1/account/statements', auth)).json().statements as any[];

describe('statements', () => {
  let card: Awaited<ReturnType<typeof signUp>>;
  let prepaid: Awaited<ReturnType<typeof signUp>>;
  let weekly: Awaited<ReturnType<typeof signUp>>;
  let closed: Awaited<ReturnType<typeof signUp>>;

  beforeAll(async () => {
    card = await signUp(tollgate.app, { name: 'Card Customer' });
    prepaid = await signUp(tollgate.app);
    weekly = await signUp(tollgate.app);
    await useFor(card.auth, 60_000);
    await useFor(card.auth, 120_000);
    await call('PATCH', '/v1/account', prepaid.auth, { paymentMode: 'prepaid' });
    await call('POST', '/v1/account/top-ups', prepaid.auth, { amount: '10.00' });
    await useFor(prepaid.auth, 60_000);
    expect((await call('PATCH', '/v1/account', weekly.auth, { statementPeriod: 'week' })).json().account.statementPeriod).toBe('week');
    await useFor(weekly.auth, 30_000);
    closed = await signUp(tollgate.app);
    await call('PATCH', '/v1/account', closed.auth, { statementPeriod: 'week' });
    await useFor(closed.auth, 60_000);
    expect((await call('POST', '/v1/account/close', closed.auth)).json().account.state).toBe('closed');
    // Midnight, 1 December: November has ended.
    clock.set(Date.UTC(2026, 11, 1, 0, 0, 0));
    // The statement job makes them account by account: wait for all four (the closed account's through
    // the operators' API, since its customer can no longer sign in).
    const ops = { authorization: `Bearer ${tollgate.adminToken}` };
    const made = async () =>
      (await Promise.all([card, prepaid, weekly, closed].map(async (c) => (await call('GET', `/v1/ops/accounts/${c.account.id}/statements`, ops)).json().statements.length))).every((n) => n > 0);
    for (let i = 0; i < 300 && !(await made()); i++) await new Promise((r) => setTimeout(r, 50));
  });

  it('lists each session with service, start, minutes, uses and charge, and adds up to the period’s captures', async () => {
    const [statement] = await statementsOf(card.auth);
    expect(statement).toMatchObject({
      period: 'month',
      periodStart: '2026-11-01T00:00:00.000Z',
      periodEnd: '2026-12-01T00:00:00.000Z',
      totals: { charges: '1.80', paidByCard: '1.80', paidFromBalance: '0.00', topUps: '0.00', due: '0.00' },
      topUps: [],
    });
    expect(statement.sessions.map((s: any) => [s.minutes, s.uses, s.charge, s.paidFrom])).toEqual([
      [1, 0, '0.60', 'card'],
      [2, 0, '1.20', 'card'],
    ]);
    expect(statement.sessions[0].service).toMatch(/^service-/);
    const [captured] = await tollgate.sql<{ total: bigint }[]>`
      select coalesce(sum(c.amount_micros), 0)::int8 as total from charge_slips c join sessions s on s.id = c.session_id
      where s.account_id = ${card.account.id} and c.created_at >= '2026-11-01' and c.created_at < '2026-12-01'`;
    expect(captured!.total).toBe(1_800_000n);
  });

  it('shows a prepaid account’s top-ups and what its sessions took from the balance', async () => {
    const [statement] = await statementsOf(prepaid.auth);
    expect(statement.totals).toEqual({ charges: '0.60', paidByCard: '0.00', paidFromBalance: '0.60', topUps: '10.00', refunds: '0.00', due: '0.00' });
    expect(statement.charge).toEqual({ state: 'none', chargeId: null, declineReason: null });
    expect(statement.topUps).toEqual([expect.objectContaining({ amount: '10.00' })]);
  });

  it('answers CSV and PDF', async () => {
    const [statement] = await statementsOf(card.auth);
    const csv = await call('GET', `/v1/account/statements/${statement.id}?format=csv`, card.auth);
    expect(csv.headers['content-type']).toContain('text/csv');
    const rows = parse(csv.body, { columns: true }) as Record<string, string>[];
    expect(rows.filter((r) => r.kind === 'session').map((r) => r.amount)).toEqual(['0.60', '1.20']);
    expect(rows.find((r) => r.kind === 'total_charges')!.amount).toBe('1.80');
    const pdf = await call('GET', `/v1/account/statements/${statement.id}?format=pdf`, card.auth);
    expect(pdf.statusCode).toBe(200);
    expect(pdf.headers['content-type']).toBe('application/pdf');
    expect(pdf.rawPayload.subarray(0, 5).toString()).toBe('%PDF-');
    expect(pdf.rawPayload.length).toBeGreaterThan(1000);
  });

  it('produces each statement once, announces it once, and refuses other customers', async () => {
    clock.advance(1000);
    await expect.poll(async () => (await statementsOf(card.auth)).length).toBe(1);
    const [statement] = await statementsOf(card.auth);
    const events = await tollgate.sql`select payload from domain_events where type = 'statement.ready' and stream = ${`account:${card.account.id}`}`;
    expect(events.map((e) => e.payload.statementId)).toEqual([statement.id]);
    const other = await call('GET', `/v1/account/statements/${statement.id}`, prepaid.auth);
    expect(other.statusCode).toBe(404);
    expect(other.json().code).toBe('STATEMENT_NOT_FOUND');
    const ops = await call('GET', `/v1/ops/accounts/${card.account.id}/statements`, { authorization: `Bearer ${tollgate.adminToken}` });
    expect(ops.json().statements.map((s: any) => s.id)).toEqual([statement.id]);
  });

  it('goes weekly from the period after the customer asked', async () => {
    const [november] = await statementsOf(weekly.auth);
    expect(november).toMatchObject({ period: 'month', totals: { charges: '0.30' } });
    await useFor(weekly.auth, 60_000);
    // The ISO week of 1 December ends on Monday 7 December.
    clock.set(Date.UTC(2026, 11, 7, 0, 0, 0));
    await expect.poll(async () => (await statementsOf(weekly.auth)).length).toBe(2);
    const [week] = await statementsOf(weekly.auth);
    expect(week).toMatchObject({ period: 'week', periodStart: '2026-12-01T00:00:00.000Z', periodEnd: '2026-12-07T00:00:00.000Z', totals: { charges: '0.60' } });
  });

  it('gives a closed account the statement of the period it closed in, and none after', async () => {
    const ops = { authorization: `Bearer ${tollgate.adminToken}` };
    const statements = (await call('GET', `/v1/ops/accounts/${closed.account.id}/statements`, ops)).json().statements;
    expect(statements.map((s: any) => [s.periodStart, s.totals.charges])).toEqual([['2026-11-01T00:00:00.000Z', '0.60']]);
  });
});
