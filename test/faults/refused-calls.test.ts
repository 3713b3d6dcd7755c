import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { expectLedgerBalanced } from '../helpers/ledger.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/**
 * An answer no retry will change (a hold voided behind tollgate's back, then captured) makes the
 * session stuck with its reason, for an operator: it is not retried for ever.
 */
let tollgate: TestTollgate;
let ops: Record<string, string>;
const clock = new ManualClock(Date.UTC(2026, 10, 30, 9));

beforeAll(async () => {
  tollgate = await startTestTollgate({ clock, env: { CAPTURE_RETRY_BASE_MS: '50', CAPTURE_RETRY_MAX_MS: '100', LOGOFF_WAIT_MS: '2000' } });
  ops = { authorization: `Bearer ${tollgate.adminToken}` };
});
afterAll(async () => {
  await tollgate.stop();
});

describe('a capture the card company refuses for good', () => {
  it('blocks the session for an operator, with the reason, and an operator voids it', async () => {
    const customer = await signUp(tollgate.app);
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '60.00' });
    const session = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '5.00' } })).json();
    const network = sandbox(tollgate.cardNetworkUrl);
    const hold = (await network.holds()).find((h) => h.reference === session.id)!;
    // Someone voids the hold at the card company: a capture of it can never succeed.
    const voided = await fetch(`${tollgate.cardNetworkUrl}/v1/holds/${hold.id}/void`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': `outside-${hold.id}` },
      body: '{}',
    });
    expect(voided.status).toBe(200);
    clock.advance(1_100);

    const logoff = await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth });
    expect(logoff.statusCode).toBe(202);
    expect(logoff.json().state).toBe('closing');
    const stuck = (await tollgate.app.inject({ url: '/v1/ops/sessions?stuck=true', headers: ops })).json().sessions;
    expect(stuck).toHaveLength(1);
    expect(stuck[0]).toMatchObject({ id: session.id, path: 'closing.capturing.blocked', stuck: true });
    expect(stuck[0].stuckReason).toMatch(/^capture refused: .*hold_not_open/);
    const [row] = await tollgate.db.sql<{ reason: string }[]>`select stuck_reason as reason from sessions where id = ${session.id}`;
    expect(row!.reason).toMatch(/^capture refused/);

    // An hour later (a thousand retry periods), still one attempt: nothing retries a permanent answer.
    clock.advance(3_600_000);
    await new Promise((resolve) => setImmediate(resolve));
    expect((await network.calls()).capture).toBe(1);
    const retried = await tollgate.app.inject({ method: 'POST', url: `/v1/ops/sessions/${session.id}/retry`, headers: ops });
    expect(retried.json().session).toMatchObject({ path: 'closing.capturing.blocked' });
    expect((await network.calls()).capture).toBe(2);

    const forgiven = await tollgate.app.inject({ method: 'POST', url: `/v1/ops/sessions/${session.id}/void`, headers: ops });
    expect(forgiven.json().session).toMatchObject({ state: 'settled', charge: '0.00', stuck: false });
    expect(await network.captures()).toEqual([]);
    await expectLedgerBalanced(tollgate.sql, { settled: 1 });
  });
});
