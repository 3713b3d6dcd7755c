import { setTimeout as sleep } from 'node:timers/promises';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { createService, signUp, signUpBody, VISA_DECLINED } from '../helpers/customers.js';
import { expectLedgerBalanced, settledSessions } from '../helpers/ledger.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { sandbox as cardNetwork } from '../helpers/card-network.js';

let tollgate: TestTollgate;
const settled = settledSessions();
beforeAll(async () => {
  tollgate = await startTestTollgate();
});
afterAll(async () => {
  await expectLedgerBalanced(tollgate.sql, { settled: settled.count });
  await tollgate.stop();
});

type Auth = Record<string, string>;

const open = (auth: Auth, payload: object) =>
  tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: auth, payload });
const logoff = async (auth: Auth, id: string) => {
  const response = await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${id}/logoff`, headers: auth });
  settled.note(response.json());
  return response;
};
const get = (auth: Auth, id: string) => tollgate.app.inject({ url: `/v1/sessions/${id}`, headers: auth });

async function sandbox(path: string) {
  return (await fetch(`${tollgate.cardNetworkUrl}${path}`)).json() as Promise<any>;
}

/** Polls the API, as a client would, until the session has ended. */
async function waitUntilEnded(auth: Auth, id: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const session = settled.note((await get(auth, id)).json());
    if (['settled', 'declined'].includes(session.state) || Date.now() > deadline) return session;
    await sleep(100);
  }
}

describe('opening a session', () => {
  it('answers 201 with an active session holding an authorization number from the card company', async () => {
    const customer = await signUp(tollgate.app);
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' });
    const response = await open(customer.auth, { serviceId, maxCharge: '5.00' });
    expect(response.statusCode).toBe(201);
    const session = response.json();
    expect(session).toMatchObject({ state: 'active', serviceId, maxCharge: '5.00', maxMinutes: null, accrued: '0.00' });
    expect(session.authorizationNumber).toMatch(/^[A-Z0-9]{6}$/);
    // 5.00 at 0.60 a minute lasts 500 s: the cutoff is exact, computed once.
    expect(Date.parse(session.cutoffAt) - Date.parse(session.startedAt)).toBe(500_000);
    const { holds } = await sandbox('/v1/holds');
    expect(holds).toContainEqual(
      expect.objectContaining({ authorizationNumber: session.authorizationNumber, amount: '5.00', state: 'open' }),
    );
    await logoff(customer.auth, session.id);
  });

  it('answers 402 CARD_DECLINED with the reason for a card whose authorizations are declined', async () => {
    const customer = await signUp(tollgate.app, {
      card: { number: VISA_DECLINED, expMonth: 12, expYear: 2031, cvc: '123' },
    });
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00' });
    const response = await open(customer.auth, { serviceId, maxCharge: '5.00' });
    expect(response.statusCode).toBe(402);
    expect(response.json()).toMatchObject({ code: 'CARD_DECLINED', reason: 'generic_decline' });
    const { sessions } = (await tollgate.app.inject({ url: '/v1/sessions', headers: customer.auth })).json();
    expect(sessions).toHaveLength(1);
    expect(sessions[0]).toMatchObject({ state: 'declined', endReason: 'declined', declineReason: 'generic_decline' });
    const account = (await tollgate.app.inject({ url: '/v1/account', headers: customer.auth })).json().account;
    expect(account.reserved).toBe('0.00');
  });

  it('answers 404 SERVICE_NOT_FOUND and 400 VALIDATION_FAILED for bad requests', async () => {
    const customer = await signUp(tollgate.app);
    const missing = await open(customer.auth, { serviceId: '00000000-0000-4000-8000-000000000000' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe('SERVICE_NOT_FOUND');
    for (const payload of [
      {},
      { serviceId: 'not-a-uuid' },
      { serviceId: '00000000-0000-4000-8000-000000000000', maxMinutes: -1 },
      { serviceId: '00000000-0000-4000-8000-000000000000', maxMinutes: '5' },
      { serviceId: '00000000-0000-4000-8000-000000000000', maxCharge: 5 },
      { serviceId: '00000000-0000-4000-8000-000000000000', maxCharge: '-1.00' },
    ]) {
      const response = await open(customer.auth, payload);
      expect(response.statusCode, JSON.stringify(payload)).toBe(400);
      expect(response.json().code).toBe('VALIDATION_FAILED');
    }
  });

  it('keeps the outstanding limit across two simultaneous sessions', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '10.00' });
    const a = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.50' });
    const b = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.75' });
    const first = await open(customer.auth, { serviceId: a.serviceId, maxCharge: '6.00' });
    expect(first.statusCode).toBe(201);
    const tooMuch = await open(customer.auth, { serviceId: b.serviceId, maxCharge: '4.01' });
    expect(tooMuch.statusCode).toBe(402);
    expect(tooMuch.json()).toMatchObject({ code: 'OUTSTANDING_LIMIT_REACHED', available: '4.00' });
    // Without a maxCharge the second session gets what is left of the limit.
    const second = await open(customer.auth, { serviceId: b.serviceId });
    expect(second.statusCode).toBe(201);
    expect(second.json().maxCharge).toBe('4.00');
    const none = await open(customer.auth, { serviceId: a.serviceId });
    expect(none.statusCode).toBe(402);
    expect(none.json().code).toBe('OUTSTANDING_LIMIT_REACHED');
    // The refusal names what the open would hold: ten minutes at 0.50, not what was free.
    const tenMinutes = await open(customer.auth, { serviceId: a.serviceId, maxMinutes: 10 });
    expect(tenMinutes.json()).toMatchObject({ code: 'OUTSTANDING_LIMIT_REACHED', available: '0.00', detail: expect.stringContaining('needs a hold of 5.00') });
    // Both run at once; settling one frees its part of the limit.
    const { sessions } = (await tollgate.app.inject({ url: '/v1/sessions', headers: customer.auth })).json();
    expect(sessions.filter((s: { state: string }) => s.state === 'active')).toHaveLength(2);
    await logoff(customer.auth, first.json().id);
    const third = await open(customer.auth, { serviceId: a.serviceId, maxCharge: '6.00' });
    expect(third.statusCode).toBe(201);
    await logoff(customer.auth, second.json().id);
    await logoff(customer.auth, third.json().id);
  });

  it('shares the outstanding limit among simultaneous opens that size their own holds, never beyond it', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '10.50' });
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.50', maxUsers: 50 });
    // Each asks for 2 minutes (1.00) with no maxCharge: the hold is that, or what is left.
    const answers = await Promise.all(Array.from({ length: 16 }, () => open(customer.auth, { serviceId, maxMinutes: 2 })));
    const opened = answers.filter((a) => a.statusCode === 201).map((a) => a.json());
    const refused = answers.filter((a) => a.statusCode !== 201).map((a) => [a.statusCode, a.json().code]);
    expect(opened.map((s) => s.maxCharge).sort()).toEqual([...Array(10).fill('1.00'), '0.50'].sort());
    expect(refused).toEqual(Array(5).fill([402, 'OUTSTANDING_LIMIT_REACHED']));
    // The card company holds exactly the limit for them, no more.
    const { holds } = await sandbox('/v1/holds?state=open');
    const held = holds.filter((h: { reference: string }) => opened.some((s) => s.id === h.reference));
    expect(held.map((h: { amount: string }) => h.amount).sort()).toEqual([...Array(10).fill('1.00'), '0.50'].sort());
    for (const session of opened) expect((await logoff(customer.auth, session.id)).statusCode).toBe(200);
  });

  it('sizes the hold to the time limit when only maxMinutes is given', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '50.00' });
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.25' });
    const response = await open(customer.auth, { serviceId, maxMinutes: 2 });
    expect(response.statusCode).toBe(201);
    expect(response.json()).toMatchObject({ maxMinutes: 2, maxCharge: '2.50', cutoffReason: 'time_limit' });
    await logoff(customer.auth, response.json().id);
  });
});

describe('ending a session', () => {
  it('ends by itself at the charge limit, charging exactly the limit', async () => {
    const customer = await signUp(tollgate.app);
    // 60.00 a minute is 1.00 a second: a 2.00 limit is reached after two seconds.
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '60.00' });
    const opened = (await open(customer.auth, { serviceId, maxCharge: '2.00' })).json();
    expect(opened.cutoffReason).toBe('charge_limit');
    const ended = await waitUntilEnded(customer.auth, opened.id);
    expect(ended).toMatchObject({ state: 'settled', endReason: 'charge_limit', charge: '2.00', endedAt: opened.cutoffAt });
    expect(ended.chargeSlip.amount).toBe('2.00');
    const history = await tollgate.sql`
      select event, to_state from session_events where session_id = ${opened.id} order by seq`;
    // Without grace, the cutoff goes over the limit and on to capturing in one step.
    expect(history.map((h) => `${h.event} → ${h.to_state}`)).toEqual([
      'OPEN → authorizing.requesting',
      'authorize done → active.running',
      'CUTOFF → closing.capturing.calling',
      'capture done → settled',
    ]);
    const events = await tollgate.sql`select type from domain_events where stream = ${`session:${opened.id}`} order by position`;
    // Warned at 90 % of the limit (the default), 1.8 s in.
    expect(events.map((e) => e.type)).toEqual(['session.opened', 'session.activated', 'session.warning', 'session.interrupted', 'session.settled']);
  });

  it('ends by itself at the time limit, charging the time used', async () => {
    const customer = await signUp(tollgate.app);
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '3.00' });
    // 0.05 minutes is three seconds: 3 × 0.05 = 0.15.
    const opened = (await open(customer.auth, { serviceId, maxMinutes: 0.05, maxCharge: '10.00' })).json();
    expect(opened.cutoffReason).toBe('time_limit');
    const ended = await waitUntilEnded(customer.auth, opened.id);
    expect(ended).toMatchObject({ state: 'settled', endReason: 'time_limit', charge: '0.15' });
    expect(Date.parse(ended.endedAt) - Date.parse(ended.startedAt)).toBe(3_000);
  });

  it('hides another customer’s session behind a 404', async () => {
    const owner = await signUp(tollgate.app);
    const other = await signUp(tollgate.app);
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00' });
    const opened = (await open(owner.auth, { serviceId, maxCharge: '1.00' })).json();
    expect((await get(other.auth, opened.id)).statusCode).toBe(404);
    expect((await logoff(other.auth, opened.id)).json().code).toBe('SESSION_NOT_FOUND');
    expect((await get(owner.auth, opened.id)).statusCode).toBe(200);
    await logoff(owner.auth, opened.id);
  });
});

describe('ending a session by logoff, on a clock the test moves', () => {
  // The charge depends on how long the session ran: with the clock in the test's hands, that is
  // exactly what the test says, however long the requests themselves take.
  const clock = new ManualClock(Date.UTC(2026, 4, 4, 9, 0, 0));
  const settledHere = settledSessions();
  let timed: TestTollgate;
  beforeAll(async () => {
    timed = await startTestTollgate({ clock });
  });
  afterAll(async () => {
    await expectLedgerBalanced(timed.sql, { settled: settledHere.count });
    await timed.stop();
  });
  const openOn = (auth: Auth, payload: object) => timed.app.inject({ method: 'POST', url: '/v1/sessions', headers: auth, payload });
  const logoffOn = async (auth: Auth, id: string) =>
    settledHere.note((await timed.app.inject({ method: 'POST', url: `/v1/sessions/${id}/logoff`, headers: auth })).json());
  const atSandbox = async (path: string) => (await fetch(`${timed.cardNetworkUrl}${path}`)).json() as Promise<any>;

  it('settles with a charge slip for price × whole seconds used, and a second logoff answers as the first', async () => {
    const customer = await signUp(timed.app);
    const { serviceId } = await createService(timed.app, timed.adminToken, { pricePerMinute: '6.00' });
    const response = await openOn(customer.auth, { serviceId, maxCharge: '20.00' });
    expect(response.statusCode).toBe(201);
    const opened = response.json();
    expect(Date.parse(opened.startedAt)).toBe(clock.now());
    // 2.999 s used: two whole seconds at 0.10 a second. The third second is not yet begun to be billed.
    clock.advance(2_999);
    const settledView = await logoffOn(customer.auth, opened.id);
    expect(settledView).toMatchObject({ state: 'settled', endReason: 'logoff', charge: '0.20' });
    expect(Date.parse(settledView.endedAt) - Date.parse(settledView.startedAt)).toBe(2_999);
    expect(settledView.chargeSlip).toMatchObject({ authorizationNumber: opened.authorizationNumber, amount: '0.20' });
    const { captures } = await atSandbox('/v1/captures');
    expect(captures).toContainEqual(expect.objectContaining({ id: settledView.chargeSlip.id, amount: '0.20' }));
    const [row] = await timed.sql`select amount_micros from charge_slips where session_id = ${opened.id}`;
    expect(row!.amount_micros).toBe(200_000n);
    // A second logoff, later, answers as the first did: same slip, same charge.
    clock.advance(5_000);
    expect(await logoffOn(customer.auth, opened.id)).toMatchObject({ charge: '0.20', chargeSlip: { id: settledView.chargeSlip.id } });
  });

  it('answers two logoffs sent at once (a double click) both with the settled session', async () => {
    const customer = await signUp(timed.app);
    const { serviceId } = await createService(timed.app, timed.adminToken, { pricePerMinute: '6.00' });
    const opened = (await openOn(customer.auth, { serviceId, maxCharge: '20.00' })).json();
    clock.advance(3_000);
    // The first one's capture takes a while: the second comes while the session is still closing.
    await cardNetwork(timed.cardNetworkUrl).setFaults([{ phase: 'capture', fault: 'slow', delayMs: 1000, times: 1 }]);
    const logoff = () => timed.app.inject({ method: 'POST', url: `/v1/sessions/${opened.id}/logoff`, headers: customer.auth });
    const first = logoff();
    await expect.poll(async () => (await timed.app.inject({ url: `/v1/sessions/${opened.id}`, headers: customer.auth })).json().state).toBe('closing');
    const both = await Promise.all([first, logoff()]);
    await cardNetwork(timed.cardNetworkUrl).clearFaults();
    expect(both.map((r) => [r.statusCode, settledHere.note(r.json()).state, r.json().charge])).toEqual([
      [200, 'settled', '0.30'],
      [200, 'settled', '0.30'],
    ]);
  });

  it('voids the hold and charges nothing for a logoff within the first second', async () => {
    const customer = await signUp(timed.app);
    const { serviceId } = await createService(timed.app, timed.adminToken, { pricePerMinute: '60.00' });
    const opened = (await openOn(customer.auth, { serviceId, maxCharge: '3.00' })).json();
    expect(opened.state).toBe('active');
    // One millisecond short of the first whole second, at 1.00 a second.
    clock.advance(999);
    const settledView = await logoffOn(customer.auth, opened.id);
    expect(settledView).toMatchObject({ state: 'settled', endReason: 'logoff', charge: '0.00', chargeSlip: null });
    expect(Date.parse(settledView.endedAt) - Date.parse(settledView.startedAt)).toBe(999);
    const { holds } = await atSandbox(`/v1/holds?reference=${opened.id}`);
    expect(holds.map((h: { state: string }) => h.state)).toEqual(['voided']);
    const { captures } = await atSandbox('/v1/captures');
    expect(captures.filter((c: { holdId: string }) => c.holdId === holds[0].id)).toEqual([]);
  });
});

describe('the session log', () => {
  it('keeps every session with the customer as they were, as JSON and as CSV', async () => {
    const customer = await signUp(tollgate.app, { name: 'Grace Hopper', estimatedStorageGb: 7.5 });
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00' });
    const opened = (await open(customer.auth, { serviceId, maxCharge: '1.00' })).json();
    await logoff(customer.auth, opened.id);
    const ops = { authorization: `Bearer ${tollgate.adminToken}` };
    const { sessions } = (await tollgate.app.inject({ url: '/v1/ops/session-log', headers: ops })).json();
    const row = sessions.find((s: { sessionId: string }) => s.sessionId === opened.id);
    expect(row).toMatchObject({
      customerName: 'Grace Hopper',
      customerEmail: customer.account.email,
      estimatedStorageGb: 7.5,
      estimatedProcessingHours: 3.5,
      serviceId,
      endReason: 'logoff',
      charge: '0.00',
    });
    expect(row.serverName).toMatch(/^server-/);
    expect(row.startedAt).toBe(opened.startedAt);
    const csv = await tollgate.app.inject({ url: '/v1/ops/session-log?format=csv', headers: ops });
    expect(csv.headers['content-type']).toContain('text/csv');
    const lines = csv.body.trim().split('\n');
    expect(lines[0]).toContain('sessionId,accountId,customerName,customerEmail');
    expect(lines.some((line) => line.startsWith(opened.id) && line.includes('Grace Hopper'))).toBe(true);
  });

  it('pages through the whole log in order, without gaps or repeats', async () => {
    const customer = await signUp(tollgate.app);
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00' });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const opened = (await open(customer.auth, { serviceId, maxCharge: '1.00' })).json();
      await logoff(customer.auth, opened.id);
      ids.push(opened.id);
    }
    const ops = { authorization: `Bearer ${tollgate.adminToken}` };
    const page = async (query: string) => {
      const response = await tollgate.app.inject({ url: `/v1/ops/session-log?${query}`, headers: ops });
      expect(response.statusCode, response.body).toBe(200);
      return (response.json().sessions as { sessionId: string }[]).map((s) => s.sessionId);
    };
    const whole = await page('');
    expect(whole).toEqual(expect.arrayContaining(ids));
    // Opened one after the other: they come in the order they were opened.
    expect(whole.filter((id) => ids.includes(id))).toEqual(ids);

    const paged: string[] = [];
    const sizes: number[] = [];
    for (let offset = 0; offset <= whole.length; offset += 2) {
      const rows = await page(`limit=2&offset=${offset}`);
      sizes.push(rows.length);
      paged.push(...rows);
    }
    expect(paged).toEqual(whole);
    // Full pages, then what is left, then nothing past the end.
    const full = Math.floor(whole.length / 2);
    expect(sizes).toEqual([...Array(full).fill(2), ...(whole.length % 2 ? [1] : [0])]);
    expect(await page(`limit=2&offset=${whole.length}`)).toEqual([]);

    for (const query of ['limit=0', 'limit=100001', 'offset=-1', 'limit=two']) {
      const refused = await tollgate.app.inject({ url: `/v1/ops/session-log?${query}`, headers: ops });
      expect(refused.statusCode, query).toBe(400);
      expect(refused.json().code, query).toBe('VALIDATION_FAILED');
    }
  });

  it('writes names with commas and quotes into the CSV so that a CSV parser reads them back intact', async () => {
    // A line break in a name is refused at sign-up (no control characters), so none reaches the log.
    expect((await tollgate.app.inject({ method: 'POST', url: '/v1/accounts', payload: signUpBody({ name: 'Grace\nHopper' }) })).statusCode).toBe(400);
    const names = ['Hopper, Grace', 'Grace "Amazing" Hopper', 'O\'Hara; "Scarlett", Tara'];
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00' });
    const sessionNames = new Map<string, string>();
    for (const name of names) {
      const customer = await signUp(tollgate.app, { name });
      const opened = (await open(customer.auth, { serviceId, maxCharge: '1.00' })).json();
      await logoff(customer.auth, opened.id);
      sessionNames.set(opened.id, name);
    }
    const ops = { authorization: `Bearer ${tollgate.adminToken}` };
    const json = (await tollgate.app.inject({ url: '/v1/ops/session-log', headers: ops })).json().sessions as Record<string, unknown>[];
    const csv = await tollgate.app.inject({ url: '/v1/ops/session-log?format=csv', headers: ops });
    expect(csv.statusCode).toBe(200);
    const records = parse(csv.body, { columns: true }) as Record<string, string>[];
    // One record per session, whatever the names hold.
    expect(records.map((r) => r.sessionId)).toEqual(json.map((r) => r.sessionId));
    for (const [sessionId, name] of sessionNames) {
      const record = records.find((r) => r.sessionId === sessionId);
      expect(record?.customerName, JSON.stringify(name)).toBe(name);
      // Every column says what the JSON log says.
      const row = json.find((r) => r.sessionId === sessionId)!;
      expect(record).toEqual(Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v === null ? '' : String(v)])));
    }
  });

  it('escapes a cell a spreadsheet would run as a formula (=, +, -, @) with a leading quote', async () => {
    const names = ['=HYPERLINK("http://x","y")', '+1+1', '-2+3', '@SUM(A1)'];
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00' });
    const ids = new Map<string, string>();
    for (const name of names) {
      const customer = await signUp(tollgate.app, { name });
      ids.set((await open(customer.auth, { serviceId, maxCharge: '1.00' })).json().id, name);
    }
    const ops = { authorization: `Bearer ${tollgate.adminToken}` };
    const csv = await tollgate.app.inject({ url: '/v1/ops/session-log?format=csv', headers: ops });
    const records = parse(csv.body, { columns: true }) as Record<string, string>[];
    for (const [sessionId, name] of ids) {
      expect(records.find((r) => r.sessionId === sessionId)?.customerName).toBe(`'${name}`);
    }
  });

  it('is for operators only', async () => {
    const customer = await signUp(tollgate.app);
    const response = await tollgate.app.inject({ url: '/v1/ops/session-log', headers: customer.auth });
    expect(response.statusCode).toBe(403);
    expect(response.json().code).toBe('FORBIDDEN');
  });
});
