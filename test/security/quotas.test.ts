import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createService, signUp } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/**
 * Quotas and bounds (issue 15): an account's unsettled sessions, its opens waiting for a seat,
 * and every gate's queue are bounded; past a bound the answer is a 409 at once.
 */
let tollgate: TestTollgate;

beforeAll(async () => {
  tollgate = await startTestTollgate({
    env: { MAX_OPEN_SESSIONS_PER_ACCOUNT: '3', MAX_QUEUED_OPENS_PER_ACCOUNT: '1', ADMISSION_MAX_QUEUE: '2' },
  });
});
afterAll(async () => {
  await tollgate?.stop();
});

const open = (auth: Record<string, string>, body: object) =>
  tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: auth, payload: body });
const logoff = (auth: Record<string, string>, id: string) =>
  tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${id}/logoff`, headers: auth });

describe('the per-account session quota', () => {
  it('holds under a race of concurrent opens, and frees a place when a session settles', async () => {
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00', maxUsers: 50 });
    const customer = await signUp(tollgate.app, { outstandingLimit: '1000.00' });
    const answers = await Promise.all(Array.from({ length: 12 }, () => open(customer.auth, { serviceId, maxCharge: '1.00' })));
    const opened = answers.filter((a) => a.statusCode === 201);
    const refused = answers.filter((a) => a.statusCode === 409);
    expect(opened).toHaveLength(3);
    expect(refused).toHaveLength(9);
    for (const answer of refused) expect(answer.json()).toMatchObject({ code: 'SESSION_QUOTA_REACHED', limit: 3 });
    // Another account is not held back by this one's quota.
    const other = await signUp(tollgate.app, { outstandingLimit: '1000.00' });
    const theirs = await open(other.auth, { serviceId, maxCharge: '1.00' });
    expect(theirs.statusCode, theirs.body).toBe(201);

    expect((await logoff(customer.auth, opened[0]!.json().id)).statusCode).toBe(200);
    const again = await open(customer.auth, { serviceId, maxCharge: '1.00' });
    expect(again.statusCode, again.body).toBe(201);
    const [row] = await tollgate.sql<{ open: number }[]>`select open_sessions as open from accounts where id = ${customer.account.id}`;
    expect(row!.open).toBe(3);
    for (const answer of [...opened.slice(1), again]) await logoff(customer.auth, answer.json().id);
    await logoff(other.auth, theirs.json().id);
    const [after] = await tollgate.sql<{ open: number }[]>`select open_sessions as open from accounts where id = ${customer.account.id}`;
    expect(after!.open).toBe(0);
  });

  it('counts a declined open out again', async () => {
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00' });
    const customer = await signUp(tollgate.app, { card: { number: '4000000000000002', expMonth: 12, expYear: 2031, cvc: '123' } });
    for (let i = 0; i < 5; i++) expect((await open(customer.auth, { serviceId, maxCharge: '1.00' })).statusCode).toBe(402);
    const [row] = await tollgate.sql<{ open: number }[]>`select open_sessions as open from accounts where id = ${customer.account.id}`;
    expect(row!.open).toBe(0);
  });
});

describe('waiting for a seat', () => {
  it('lets one account have one open waiting, and bounds every gate queue', async () => {
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00', maxUsers: 1 });
    const holder = await signUp(tollgate.app);
    const seat = await open(holder.auth, { serviceId, maxCharge: '1.00' });
    expect(seat.statusCode).toBe(201);

    const patient = await signUp(tollgate.app);
    const first = open(patient.auth, { serviceId, maxCharge: '1.00', waitSeconds: 30 });
    await waitForQueued(serviceId, 1);
    // The same account's second wait: refused at once (the service is full, the account waits already).
    const second = await open(patient.auth, { serviceId, maxCharge: '1.00', waitSeconds: 30 });
    expect(second.statusCode).toBe(409);
    expect(second.json()).toMatchObject({ code: 'QUEUE_QUOTA_REACHED', limit: 1 });

    // Another account fills the queue (bound 2); a third account's wait is refused at once.
    const another = await signUp(tollgate.app);
    const third = open(another.auth, { serviceId, maxCharge: '1.00', waitSeconds: 30 });
    await waitForQueued(serviceId, 2);
    const late = await signUp(tollgate.app);
    const full = await open(late.auth, { serviceId, maxCharge: '1.00', waitSeconds: 30 });
    expect(full.statusCode).toBe(409);
    expect(full.json()).toMatchObject({ code: 'QUEUE_FULL', gate: 'service' });
    expect(full.headers['retry-after']).toBeDefined();

    // The queue moves on as seats free, first in first out.
    await logoff(holder.auth, seat.json().id);
    const firstAnswer = await first;
    expect(firstAnswer.statusCode, firstAnswer.body).toBe(201);
    await logoff(patient.auth, firstAnswer.json().id);
    const thirdAnswer = await third;
    expect(thirdAnswer.statusCode, thirdAnswer.body).toBe(201);
    await logoff(another.auth, thirdAnswer.json().id);
  });
});

async function waitForQueued(serviceId: string, count: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { servers } = (
      await tollgate.app.inject({ url: '/v1/ops/servers', headers: { authorization: `Bearer ${tollgate.adminToken}` } })
    ).json() as { servers: { services: { id: string; queued: number }[] }[] };
    const service = servers.flatMap((s) => s.services).find((s) => s.id === serviceId);
    if (service?.queued === count) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`service ${serviceId} never had ${count} queued`);
}
