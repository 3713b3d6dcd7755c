import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/** The metering API: a service that tollgate does not proxy reports its customers' uses itself. */
const clock = new ManualClock(Date.UTC(2026, 10, 30, 12, 0));
let tollgate: TestTollgate;
let ops: Record<string, string>;

beforeAll(async () => {
  tollgate = await startTestTollgate({ clock });
  ops = { authorization: `Bearer ${tollgate.adminToken}` };
});
afterAll(async () => {
  await tollgate.stop();
});

/** A service at 0.60 a minute and 0.10 a unit (or `unitPrice`), with its metering credential. */
async function meteredService(unitPrice = '0.10') {
  const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' });
  const patched = await tollgate.app.inject({
    method: 'PATCH',
    url: `/v1/services/${serviceId}`,
    headers: ops,
    payload: { tariff: { perUse: { unit: 'unit', price: unitPrice } } },
  });
  expect(patched.statusCode, patched.body).toBe(200);
  const issued = await tollgate.app.inject({ method: 'POST', url: `/v1/services/${serviceId}/credential`, headers: ops });
  expect(issued.statusCode, issued.body).toBe(201);
  return { serviceId, service: { authorization: `Bearer ${issued.json().credential as string}` } };
}

async function openSession(serviceId: string, maxCharge = '1.00', outstandingLimit = '100.00') {
  const customer = await signUp(tollgate.app, { outstandingLimit });
  const opened = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge } });
  expect(opened.statusCode, opened.body).toBe(201);
  return { customer, sessionId: opened.json().id as string };
}

const meter = (op: string, headers: Record<string, string>, payload: unknown) =>
  tollgate.app.inject({ method: 'POST', url: `/v1/metering/${op}`, headers, payload: payload as Record<string, unknown> });

describe('the metering API', () => {
  it('reserves, commits once however often the commit is repeated, and releases', async () => {
    const { serviceId, service } = await meteredService();
    const { sessionId } = await openSession(serviceId);
    const reserved = await meter('query', service, { sessionId, units: 3 });
    expect(reserved.statusCode, reserved.body).toBe(200);
    expect(reserved.json()).toMatchObject({ reservationId: 'r1', reserved: '0.30', used: '0.00', applied: true });
    const committed = await meter('commit', service, { sessionId, reservationId: 'r1', units: 2 });
    expect(committed.json()).toMatchObject({ usedUnits: 2, used: '0.20', reserved: '0.00', applied: true });
    const again = await meter('commit', service, { sessionId, reservationId: 'r1', units: 2 });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ usedUnits: 2, used: '0.20', applied: false });
    const second = (await meter('query', service, { sessionId, units: 1 })).json();
    expect((await meter('release', service, { sessionId, reservationId: second.reservationId })).json()).toMatchObject({ reserved: '0.00', applied: true });
    expect((await meter('release', service, { sessionId, reservationId: 'r9' })).json().code).toBe('RESERVATION_NOT_FOUND');
  });

  it('answers a query asked again with its Idempotency-Key with the same reservation, holding the units once', async () => {
    const { serviceId, service } = await meteredService();
    const { sessionId } = await openSession(serviceId);
    const keyed = { ...service, 'idempotency-key': 'query-7' };
    const first = await meter('query', keyed, { sessionId, units: 4 });
    expect(first.json()).toMatchObject({ reservationId: 'r1', reserved: '0.40' });
    const retry = await meter('query', keyed, { sessionId, units: 4 });
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.json()).toEqual(first.json());
    // Held once: the next query is r2, and the two hold 0.50 between them.
    expect((await meter('query', service, { sessionId, units: 1 })).json()).toMatchObject({ reservationId: 'r2', reserved: '0.50' });
  });

  it('counts a commit without reservation once per Idempotency-Key, and refuses a key reused for another request', async () => {
    const { serviceId, service } = await meteredService();
    const { customer, sessionId } = await openSession(serviceId);
    const keyed = { ...service, 'idempotency-key': 'job-42' };
    const first = await meter('commit', keyed, { sessionId, units: 4 });
    expect(first.statusCode, first.body).toBe(200);
    const retry = await meter('commit', keyed, { sessionId, units: 4 });
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.json()).toEqual(first.json());
    expect(first.json()).toMatchObject({ usedUnits: 4, used: '0.40' });
    expect((await meter('commit', keyed, { sessionId, units: 5 })).json().code).toBe('IDEMPOTENCY_KEY_REUSED');
    const unkeyed = await meter('commit', service, { sessionId, units: 1 });
    expect([unkeyed.statusCode, unkeyed.json().code]).toEqual([400, 'IDEMPOTENCY_KEY_REQUIRED']);
    // The customer's own use of the same key is apart from the service's.
    const view = (await tollgate.app.inject({ url: `/v1/sessions/${sessionId}`, headers: { ...customer.auth, 'idempotency-key': 'job-42' } })).json();
    expect(view.accrued).toBe('0.40');
  });

  it('refuses a use that would pass the limit with 402, and cuts the session at exactly its limit', async () => {
    const { serviceId, service } = await meteredService();
    const { customer, sessionId } = await openSession(serviceId, '1.00');
    const tooMany = await meter('query', service, { sessionId, units: 11 });
    expect([tooMany.statusCode, tooMany.json().code]).toEqual([402, 'USE_LIMIT_REACHED']);
    const all = await meter('commit', { ...service, 'idempotency-key': 'all-of-it' }, { sessionId, units: 10 });
    expect(all.statusCode, all.body).toBe(200);
    let view = (await tollgate.app.inject({ url: `/v1/sessions/${sessionId}`, headers: customer.auth })).json();
    for (let i = 0; i < 50 && view.state !== 'settled'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      view = (await tollgate.app.inject({ url: `/v1/sessions/${sessionId}`, headers: customer.auth })).json();
    }
    expect(view).toMatchObject({ state: 'settled', endReason: 'charge_limit', charge: '1.00' });
    const captures = await sandbox(tollgate.cardNetworkUrl).captures();
    expect(captures.find((c) => c.id === view.chargeSlip.id)?.amount).toBe('1.00');
    expect((await meter('query', service, { sessionId, units: 1 })).statusCode).toBe(409);
  });

  it('charges the uses a service reserved up to the limit when it commits them after the cut, and gives back what it never commits', async () => {
    const { serviceId, service } = await meteredService();
    const settledView = async (sessionId: string, auth: Record<string, string>) => {
      let view = (await tollgate.app.inject({ url: `/v1/sessions/${sessionId}`, headers: auth })).json();
      for (let i = 0; i < 50 && view.state !== 'settled'; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        view = (await tollgate.app.inject({ url: `/v1/sessions/${sessionId}`, headers: auth })).json();
      }
      return view;
    };
    // All that 0.50 leaves, reserved: time stops there, and the service delivers and commits.
    const first = await openSession(serviceId, '0.50');
    expect((await meter('query', service, { sessionId: first.sessionId, units: 5 })).json()).toMatchObject({ reservationId: 'r1', applied: true });
    await expect.poll(async () => (await tollgate.app.inject({ url: `/v1/sessions/${first.sessionId}`, headers: first.customer.auth })).json().state).toBe('over_limit');
    const committed = await meter('commit', service, { sessionId: first.sessionId, reservationId: 'r1', units: 5 });
    expect([committed.statusCode, committed.json()]).toEqual([200, expect.objectContaining({ usedUnits: 5, used: '0.50', applied: true })]);
    const charged = await settledView(first.sessionId, first.customer.auth);
    expect(charged).toMatchObject({ state: 'settled', endReason: 'charge_limit', charge: '0.50', uses: { units: 5, charge: '0.50' } });
    expect((await sandbox(tollgate.cardNetworkUrl).captures()).find((c) => c.id === charged.chargeSlip.id)?.amount).toBe('0.50');
    // Never committed: a minute after the cut the reservation goes back, and nothing is charged for it.
    const second = await openSession(serviceId, '0.50');
    await meter('query', service, { sessionId: second.sessionId, units: 5 });
    await expect.poll(async () => (await tollgate.app.inject({ url: `/v1/sessions/${second.sessionId}`, headers: second.customer.auth })).json().state).toBe('over_limit');
    clock.advance(60_000);
    expect(await settledView(second.sessionId, second.customer.auth)).toMatchObject({ state: 'settled', endReason: 'charge_limit', charge: '0.00', chargeSlip: null });
    const late = await meter('commit', service, { sessionId: second.sessionId, reservationId: 'r1', units: 5 });
    expect([late.statusCode, late.json().code]).toEqual([409, 'SESSION_NOT_ACTIVE']);

    // Logged off while it waits: the reservation goes back, and a commit of it is told the session ended, not "applied before".
    const third = await openSession(serviceId, '0.50');
    await meter('query', service, { sessionId: third.sessionId, units: 5 });
    await expect.poll(async () => (await tollgate.app.inject({ url: `/v1/sessions/${third.sessionId}`, headers: third.customer.auth })).json().state).toBe('over_limit');
    // Its void takes a while: the session stays closing, still held here, when the commit comes.
    const card = sandbox(tollgate.cardNetworkUrl);
    await card.setFaults([{ phase: 'void', fault: 'slow', delayMs: 1500, times: 1 }]);
    try {
      const loggedOff = tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${third.sessionId}/logoff`, headers: third.customer.auth });
      await expect.poll(async () => (await tollgate.app.inject({ url: `/v1/sessions/${third.sessionId}`, headers: third.customer.auth })).json().state).toBe('closing');
      const released = await meter('commit', service, { sessionId: third.sessionId, reservationId: 'r1', units: 5 });
      expect([released.statusCode, released.json().code]).toEqual([409, 'SESSION_NOT_ACTIVE']);
      await loggedOff;
    } finally {
      await card.clearFaults();
    }
    expect(await settledView(third.sessionId, third.customer.auth)).toMatchObject({ state: 'settled', charge: '0.00', uses: { units: 0, charge: '0.00' } });
  });

  it('answers two commits of one reservation at once, on a session woken for them, one applied and one a repeat', async () => {
    const { serviceId, service } = await meteredService();
    const { sessionId } = await openSession(serviceId);
    expect((await meter('query', service, { sessionId, units: 3 })).json()).toMatchObject({ reservationId: 'r1' });
    // Cold: both commits wait for the same wake, then run one after the other.
    expect(tollgate.supervisor.sweepCold(0)).toBeGreaterThan(0);
    const answers = await Promise.all([1, 2].map(() => meter('commit', service, { sessionId, reservationId: 'r1', units: 2 })));
    expect(answers.map((a) => [a.statusCode, a.json().applied]).sort()).toEqual([
      [200, false],
      [200, true],
    ]);
    expect(answers[0]!.json()).toMatchObject({ usedUnits: 2, used: '0.20' });
  });

  it('refuses a commit or a release of a reservation once its session is closing, instead of answering it applied and charging nothing', async () => {
    const { serviceId, service } = await meteredService();
    const { customer, sessionId } = await openSession(serviceId, '5.00');
    expect((await meter('query', service, { sessionId, units: 7 })).json()).toMatchObject({ reservationId: 'r1', applied: true });
    expect((await meter('query', service, { sessionId, units: 2 })).json()).toMatchObject({ reservationId: 'r2', applied: true });
    expect((await meter('commit', { ...service, 'idempotency-key': 'before' }, { sessionId, units: 1 })).statusCode).toBe(200);
    // The capture takes a while: the session stays `closing` meanwhile.
    const card = sandbox(tollgate.cardNetworkUrl);
    await card.setFaults([{ phase: 'capture', fault: 'slow', delayMs: 1500, times: 1 }]);
    try {
      const loggedOff = tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${sessionId}/logoff`, headers: customer.auth });
      const view = async () => (await tollgate.app.inject({ url: `/v1/sessions/${sessionId}`, headers: customer.auth })).json();
      for (let i = 0; i < 40 && (await view()).state !== 'closing'; i++) await new Promise((resolve) => setTimeout(resolve, 25));
      expect((await view()).state).toBe('closing');
      const late = await meter('commit', service, { sessionId, reservationId: 'r1', units: 7 });
      expect([late.statusCode, late.json().code]).toEqual([409, 'SESSION_NOT_ACTIVE']);
      const released = await meter('release', service, { sessionId, reservationId: 'r2' });
      expect([released.statusCode, released.json().code]).toEqual([409, 'SESSION_NOT_ACTIVE']);
      await loggedOff;
      let settled = await view();
      for (let i = 0; i < 100 && settled.state !== 'settled'; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        settled = await view();
      }
      // Charged what was used while it ran: the one unit, and the time (none: the clock stood still).
      expect(settled).toMatchObject({ state: 'settled', charge: '0.10', uses: { units: 1, charge: '0.10' } });
      expect((await card.captures()).find((c) => c.id === settled.chargeSlip.id)?.amount).toBe('0.10');
    } finally {
      await card.clearFaults();
    }
  });

  it('answers only the service whose credential it is, and a new credential replaces the old', async () => {
    const { serviceId, service } = await meteredService();
    const other = await meteredService();
    const { sessionId } = await openSession(serviceId);
    expect((await meter('query', other.service, { sessionId, units: 1 })).json().code).toBe('SESSION_NOT_FOUND');
    for (const headers of [{}, { authorization: 'Bearer tgm_nothing' }, ops]) {
      const refused = await meter('query', headers, { sessionId, units: 1 });
      expect([refused.statusCode, refused.json().code]).toEqual([401, 'SERVICE_CREDENTIAL_REQUIRED']);
    }
    const renewed = (await tollgate.app.inject({ method: 'POST', url: `/v1/services/${serviceId}/credential`, headers: ops })).json();
    expect((await meter('query', service, { sessionId, units: 1 })).statusCode).toBe(401);
    expect((await meter('query', { authorization: `Bearer ${renewed.credential}` }, { sessionId, units: 1 })).statusCode).toBe(200);
  });

  // 4,300 transitions written one by one: 12 s alone, over 30 s in CI's second pass beside other suites.
  it('counts more units than a 32-bit integer holds, and settles the session that used them', { timeout: 120_000 }, async () => {
    const { serviceId, service } = await meteredService('0.000001');
    const { customer, sessionId } = await openSession(serviceId, '2500.00', '5000.00');
    // 2,150 million units, a million a use, 50 reserved and committed per batch.
    let next = 1;
    for (let batch = 0; batch < 43; batch++) {
      const operations = Array.from({ length: 50 }, (_, i) => [
        { op: 'query', sessionId, units: 1_000_000 },
        { op: 'commit', sessionId, reservationId: `r${next + i}`, units: 1_000_000 },
      ]).flat();
      next += 50;
      const answered = await meter('batch', service, { operations });
      expect(answered.json().results.filter((r: { error?: unknown }) => r.error)).toEqual([]);
    }
    const ended = await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${sessionId}/logoff`, headers: customer.auth });
    expect([ended.statusCode, ended.json()]).toEqual([200, expect.objectContaining({ state: 'settled', charge: '2150.00', uses: expect.objectContaining({ units: 2_150_000_000 }) })]);
    const captures = await sandbox(tollgate.cardNetworkUrl).captures();
    expect(captures.find((c) => c.id === ended.json().chargeSlip.id)?.amount).toBe('2150.00');
  });

  it('takes a batch in order, each operation answered on its own', async () => {
    const { serviceId, service } = await meteredService();
    const { sessionId } = await openSession(serviceId);
    const batch = await meter('batch', service, {
      operations: [
        { op: 'query', sessionId, units: 2 },
        { op: 'commit', sessionId, reservationId: 'r1', units: 2 },
        { op: 'query', sessionId, units: 50 },
        { op: 'release', sessionId, reservationId: 'r7' },
      ],
    });
    expect(batch.statusCode, batch.body).toBe(200);
    const [reserved, committed, refused, unknown] = batch.json().results;
    expect(reserved).toMatchObject({ reservationId: 'r1', applied: true });
    expect(committed).toMatchObject({ used: '0.20', applied: true });
    expect(refused).toEqual({ error: expect.objectContaining({ status: 402, code: 'USE_LIMIT_REACHED' }) });
    expect(unknown).toEqual({ error: expect.objectContaining({ status: 404, code: 'RESERVATION_NOT_FOUND' }) });

    // A malformed operation is refused in its place; the others are carried out.
    const mixed = await meter('batch', service, {
      operations: [{ op: 'query', sessionId, units: 1 }, { op: 'query', sessionId, units: 0 }, { op: 'commit', sessionId, units: 1 }, { op: 'release', sessionId, reservationId: 'r2' }],
    });
    expect(mixed.statusCode, mixed.body).toBe(200);
    const [first, zero, unreserved, released] = mixed.json().results;
    expect(first).toMatchObject({ reservationId: 'r2', applied: true });
    expect(zero).toEqual({ error: expect.objectContaining({ status: 400, code: 'VALIDATION_FAILED', detail: expect.stringContaining('operations.1.units') }) });
    expect(unreserved).toEqual({ error: expect.objectContaining({ status: 400, code: 'VALIDATION_FAILED', detail: expect.stringContaining('operations.2.reservationId') }) });
    expect(released).toMatchObject({ reserved: '0.00', applied: true });
  });

  it('is refused for a service priced per request: the edge counts those, and settles their reservations', async () => {
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' });
    await tollgate.app.inject({ method: 'PATCH', url: `/v1/services/${serviceId}`, headers: ops, payload: { tariff: { perUse: { unit: 'request', price: '0.10' } } } });
    const issued = await tollgate.app.inject({ method: 'POST', url: `/v1/services/${serviceId}/credential`, headers: ops });
    const service = { authorization: `Bearer ${issued.json().credential as string}` };
    const { sessionId } = await openSession(serviceId);
    const committed = await meter('commit', { ...service, 'idempotency-key': 'per-request-1' }, { sessionId, units: 3 });
    expect(committed.statusCode).toBe(409);
    expect(committed.json().code).toBe('METERED_AT_THE_EDGE');
    expect((await meter('query', service, { sessionId, units: 1 })).json().code).toBe('METERED_AT_THE_EDGE');
  });
});

describe('a quote for a time on a service priced per use, billed by the minute', () => {
  it('runs that time in full for its total; a use shortens it, and never takes the charge past the total', async () => {
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' });
    const tariff = { perUse: { unit: 'unit', price: '0.10' }, billing: { firstPeriodSeconds: 60, incrementSeconds: 60, minimumCharge: '0.00' } };
    expect((await tollgate.app.inject({ method: 'PATCH', url: `/v1/services/${serviceId}`, headers: ops, payload: { tariff } })).statusCode).toBe(200);
    const issued = await tollgate.app.inject({ method: 'POST', url: `/v1/services/${serviceId}/credential`, headers: ops });
    const service = { authorization: `Bearer ${issued.json().credential as string}` };
    const customer = await signUp(tollgate.app);
    const openOnQuote = async () => {
      const quote = (await tollgate.app.inject({ method: 'POST', url: '/v1/quotes', headers: customer.auth, payload: { serviceId, maxMinutes: 3 } })).json();
      expect(quote.total).toBe('1.80');
      const opened = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, quoteId: quote.id } });
      expect(opened.statusCode, opened.body).toBe(201);
      return opened.json();
    };
    const view = async (id: string) => (await tollgate.app.inject({ url: `/v1/sessions/${id}`, headers: customer.auth })).json();

    // No use: the three minutes bind, not the start of the third (an outside probe's was cut at 121 s for 1.80).
    const plain = await openOnQuote();
    expect(plain).toMatchObject({ state: 'active', cutoffReason: 'time_limit' });
    expect(Date.parse(plain.cutoffAt) - Date.parse(plain.startedAt)).toBe(180_000);

    // A use of 0.10 leaves 1.70 for time: the third minute, billed when it starts, reaches the total there.
    const used = await openOnQuote();
    const reserved = (await meter('query', service, { sessionId: used.id, units: 1 })).json();
    expect((await meter('commit', service, { sessionId: used.id, reservationId: reserved.reservationId, units: 1 })).statusCode).toBe(200);
    expect(await view(used.id)).toMatchObject({ cutoffReason: 'charge_limit' });
    expect(Date.parse((await view(used.id)).cutoffAt) - Date.parse(used.startedAt)).toBe(121_000);

    clock.advance(180_000);
    await expect.poll(async () => (await view(plain.id)).state, { timeout: 10_000 }).toBe('settled');
    await expect.poll(async () => (await view(used.id)).state, { timeout: 10_000 }).toBe('settled');
    expect(await view(plain.id)).toMatchObject({ endReason: 'time_limit', charge: '1.80', quote: { withinQuote: true } });
    expect(await view(used.id)).toMatchObject({ endReason: 'charge_limit', charge: '1.80', quote: { withinQuote: true } });
  });
});
