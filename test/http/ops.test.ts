import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { expectLedgerBalanced, settledSessions } from '../helpers/ledger.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

let tollgate: TestTollgate;
/** Time is the test's: a session is used for as long as the test says, not as long as it takes. */
const clock = new ManualClock(Date.UTC(2026, 10, 30, 9));
let ops: Record<string, string>;
let customer: Awaited<ReturnType<typeof signUp>>;
let serviceId: string;
let serverId: string;
/** Every session an answer showed settled: the ledger check expects exactly these. */
const settled = settledSessions();

beforeAll(async () => {
  tollgate = await startTestTollgate({
    clock,
    env: {
      // A failing capture is retried 20 s later by itself; one failure makes it stuck.
      CAPTURE_RETRY_BASE_MS: '20000',
      CAPTURE_RETRY_MAX_MS: '60000',
      STUCK_AFTER_ATTEMPTS: '1',
      CARD_NETWORK_MAX_ATTEMPTS: '2',
      CARD_NETWORK_BACKOFF_BASE_MS: '10',
      CARD_NETWORK_BACKOFF_MAX_MS: '20',
      LOGOFF_WAIT_MS: '2000',
    },
  });
  ops = { authorization: `Bearer ${tollgate.adminToken}` };
  customer = await signUp(tollgate.app, { outstandingLimit: '100.00' });
  ({ serviceId, serverId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '60.00' }));
});
afterAll(async () => {
  await expectLedgerBalanced(tollgate.sql, { settled: settled.count });
  await tollgate.stop();
});

const open = async (maxCharge = '5.00') =>
  (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge } })).json();
const logoff = async (id: string) => {
  const response = await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${id}/logoff`, headers: customer.auth });
  settled.note(response.json());
  return response;
};
const opsGet = async (url: string) => tollgate.app.inject({ url, headers: ops });
const opsPost = async (url: string) => {
  const response = await tollgate.app.inject({ method: 'POST', url, headers: ops });
  settled.note(response.json().session);
  return response;
};

describe('stuck sessions', () => {
  it('shows a session whose captures keep failing as stuck, with the reason, and settles it on retry once the network recovers', async () => {
    const session = await open();
    clock.advance(1_100);
    const network = sandbox(tollgate.cardNetworkUrl);
    await network.setFaults([{ phase: 'capture', fault: 'error' }]);
    const closing = await logoff(session.id);
    expect(closing.statusCode).toBe(202);
    expect(closing.json().state).toBe('closing');

    const { sessions } = (await opsGet('/v1/ops/sessions?stuck=true')).json();
    const stuck = sessions.find((s: { id: string }) => s.id === session.id);
    expect(stuck).toMatchObject({ state: 'closing', path: 'closing.capturing.waiting', stuck: true, closeAttempts: 1 });
    expect(stuck.stuckReason).toMatch(/^capture failing for \d+ seconds \(1 attempts\): CardNetworkUnavailableError/);

    // Still failing: a retry goes through the machine and comes back to wait.
    const tooSoon = (await opsPost(`/v1/ops/sessions/${session.id}/retry`)).json();
    expect(tooSoon.session).toMatchObject({ state: 'closing', closeAttempts: 2 });

    await network.clearFaults();
    const retried = await opsPost(`/v1/ops/sessions/${session.id}/retry`);
    expect(retried.statusCode).toBe(200);
    expect(retried.json().session).toMatchObject({ state: 'settled', stuck: false, endReason: 'logoff' });
    expect(retried.json().session.chargeSlip.amount).toBe(retried.json().session.charge);
    expect((await opsGet('/v1/ops/sessions?stuck=true')).json().sessions).toEqual([]);

    const detail = (await opsGet(`/v1/ops/sessions/${session.id}`)).json();
    expect(detail.history.map((h: { to: string }) => h.to)).toEqual([
      'authorizing.requesting',
      'active.running',
      'closing.capturing.calling',
      'closing.capturing.waiting',
      'closing.capturing.calling',
      'closing.capturing.waiting',
      'closing.capturing.calling',
      'settled',
    ]);
    expect(detail.history[3]).toMatchObject({ event: 'capture done', from: 'closing.capturing.calling' });
    expect(detail.history[3].detail.lastError).toMatch(/^CardNetworkUnavailableError/);
    expect(detail.history.find((h: { event: string }) => h.event === 'RETRY')).toBeTruthy();
  });

  it('forgives no charge whose capture is on its way: it may yet go through', async () => {
    const reservedBefore = (await tollgate.app.inject({ url: '/v1/account', headers: customer.auth })).json().account.reserved;
    const session = await open();
    clock.advance(1_100);
    const network = sandbox(tollgate.cardNetworkUrl);
    // The capture is made at once and answered 3 s later, after the logoff has answered.
    await network.setFaults([{ phase: 'capture', fault: 'slow', delayMs: 3_000, times: 1 }]);
    expect((await logoff(session.id)).json()).toMatchObject({ state: 'closing', charge: '1.00' });
    const during = await opsPost(`/v1/ops/sessions/${session.id}/void`);
    expect([during.statusCode, during.json().code]).toEqual([409, 'ACTION_NOT_ALLOWED']);
    const ended = await (async () => {
      for (;;) {
        const view = (await opsGet(`/v1/ops/sessions/${session.id}`)).json().session;
        if (view.state !== 'closing') return view;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    settled.note(ended);
    expect(ended).toMatchObject({ state: 'settled', charge: '1.00', chargeSlip: { amount: '1.00' } });
    expect(await network.holds(`?reference=${session.id}`)).toEqual([expect.objectContaining({ state: 'captured', capturedAmount: '1.00' })]);
    // Its share of the limit comes back with the settled transition's write, which the live view may be ahead of.
    await expect.poll(async () => (await tollgate.app.inject({ url: '/v1/account', headers: customer.auth })).json().account.reserved).toBe(reservedBefore);

  });

  it('voids instead of capturing when an operator forgives a charge that cannot be taken', async () => {
    const session = await open();
    clock.advance(1_100);
    const network = sandbox(tollgate.cardNetworkUrl);
    await network.setFaults([{ phase: 'capture', fault: 'error' }]);
    await logoff(session.id);
    expect((await opsGet(`/v1/ops/sessions/${session.id}`)).json().session.path).toBe('closing.capturing.waiting');
    // The void fails too at first: the reason names the void, not the capture it replaced.
    await network.setFaults([{ phase: 'void', fault: 'error' }]);
    const failing = (await opsPost(`/v1/ops/sessions/${session.id}/void`)).json().session;
    expect(failing).toMatchObject({ path: 'closing.voiding.waiting', stuck: true });
    expect(failing.stuckReason).toMatch(/^void failing for \d+ seconds \(\d+ attempts\)/);
    await network.clearFaults();
    const voided = (await opsPost(`/v1/ops/sessions/${session.id}/retry`)).json();
    expect(voided.session).toMatchObject({ state: 'settled', charge: '0.00', chargeSlip: null });
    const [hold] = await network.holds(`?reference=${session.id}`);
    expect(hold!.state).toBe('voided');
  });

  it('charges a forgiven capture that was made after all: its void is refused, and a retry finds the capture', async () => {
    const session = await open();
    clock.advance(1_100);
    const network = sandbox(tollgate.cardNetworkUrl);
    // Every attempt of the capture is made (or replayed) and its answer lost.
    await network.setFaults([{ phase: 'capture', fault: 'drop_after_commit', times: 2 }]);
    await logoff(session.id);
    await network.clearFaults();
    expect((await opsGet(`/v1/ops/sessions/${session.id}`)).json().session.path).toBe('closing.capturing.waiting');
    const forgiven = (await opsPost(`/v1/ops/sessions/${session.id}/void`)).json().session;
    expect(forgiven).toMatchObject({ state: 'closing', path: 'closing.voiding.blocked', stuck: true, charge: '1.00' });
    const retried = (await opsPost(`/v1/ops/sessions/${session.id}/retry`)).json().session;
    settled.note(retried);
    expect(retried).toMatchObject({ state: 'settled', charge: '1.00', chargeSlip: { amount: '1.00' } });
    expect(await network.holds(`?reference=${session.id}`)).toEqual([expect.objectContaining({ state: 'captured', capturedAmount: '1.00' })]);
  });
});

describe('operator actions', () => {
  it('terminates a running session through its machine, charging the time used', async () => {
    const session = await open();
    clock.advance(1_100);
    const response = await opsPost(`/v1/ops/sessions/${session.id}/terminate`);
    expect(response.statusCode).toBe(200);
    // 1.1 s at 60.00 a minute: one whole second, 1.00.
    expect(response.json().session).toMatchObject({ state: 'settled', endReason: 'ops_terminated', charge: '1.00' });
  });

  it('shows a session stuck authorizing, and an operator ends it: nothing held, nothing charged, the open told', async () => {
    const network = sandbox(tollgate.cardNetworkUrl);
    // The card company takes its time over this authorization (1.5 s of real time).
    await network.setFaults([{ phase: 'authorize', fault: 'slow', delayMs: 1_500, times: 1 }]);
    const opening = tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '5.00' } });
    const stuck = await (async () => {
      for (;;) {
        clock.advance(60_000);
        const { sessions } = (await opsGet('/v1/ops/sessions?stuck=true&state=authorizing')).json();
        if (sessions.length > 0) return sessions[0];
      }
    })();
    expect(stuck).toMatchObject({ state: 'authorizing', path: 'authorizing.requesting', stuck: true });
    expect(stuck.stuckReason).toMatch(/^authorizing for \d+ (seconds|minutes)$/);
    const ended = await opsPost(`/v1/ops/sessions/${stuck.id}/terminate`);
    expect(ended.json().session).toMatchObject({ state: 'declined', declineReason: 'ops_terminated', stuck: false });
    const answer = await opening;
    expect(answer.statusCode).toBe(503);
    expect(answer.json().code).toBe('OPEN_CANCELLED');
    await network.clearFaults();
    expect((await network.holds(`?reference=${stuck.id}`)).map((h) => h.state)).toEqual(['voided']);
  });

  it('refuses an action the session cannot take, and an unknown session', async () => {
    const session = await open();
    const retry = await opsPost(`/v1/ops/sessions/${session.id}/retry`);
    expect(retry.statusCode).toBe(409);
    expect(retry.json()).toMatchObject({ code: 'ACTION_NOT_ALLOWED' });
    await logoff(session.id);
    expect((await opsPost(`/v1/ops/sessions/${session.id}/terminate`)).json().code).toBe('ACTION_NOT_ALLOWED');
    expect((await opsPost('/v1/ops/sessions/00000000-0000-4000-8000-000000000000/retry')).json().code).toBe('SESSION_NOT_FOUND');
    // An action tollgate does not have is a path it does not have.
    expect((await opsPost(`/v1/ops/sessions/${session.id}/explode`)).json().code).toBe('NOT_FOUND');
    expect((await tollgate.app.inject({ url: '/v1/ops/sessions', headers: customer.auth })).statusCode).toBe(403);
  });
});

describe('listing sessions', () => {
  it('filters by state, server and service, and pages with a cursor', async () => {
    const running = [await open('1.00'), await open('1.00'), await open('1.00')];
    const active = (await opsGet(`/v1/ops/sessions?state=active&serviceId=${serviceId}`)).json();
    expect(active.sessions.map((s: { id: string }) => s.id)).toEqual(expect.arrayContaining(running.map((s) => s.id)));
    expect(active.sessions.every((s: { state: string }) => s.state === 'active')).toBe(true);
    const first = (await opsGet(`/v1/ops/sessions?serverId=${serverId}&limit=2`)).json();
    expect(first.sessions).toHaveLength(2);
    const second = (await opsGet(`/v1/ops/sessions?serverId=${serverId}&limit=2&cursor=${first.nextCursor}`)).json();
    const firstIds = first.sessions.map((s: { id: string }) => s.id);
    expect(second.sessions.some((s: { id: string }) => firstIds.includes(s.id))).toBe(false);
    expect(second.sessions[0].createdAt <= first.sessions[1].createdAt).toBe(true);
    expect((await opsGet('/v1/ops/sessions?cursor=nonsense')).json().code).toBe('VALIDATION_FAILED');
    for (const s of running) await logoff(s.id);
  });
});

describe('metrics and readiness', () => {
  it('exposes sessions by state, admissions, card-network latency and persistence latency in Prometheus format', async () => {
    const session = await open('1.00');
    const response = await tollgate.app.inject({ url: '/metrics', headers: ops });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toContain('text/plain');
    expect(response.body).toMatch(/tollgate_sessions\{state="active"\} [1-9]/);
    expect(response.body).toMatch(/tollgate_admissions_total [1-9]/);
    expect(response.body).toMatch(/tollgate_card_network_request_duration_seconds_count\{operation="authorize",outcome="ok"\} [1-9]/);
    expect(response.body).toMatch(/tollgate_persist_commit_duration_seconds_count [1-9]/);
    expect(response.body).toContain('tollgate_stuck_sessions');
    await logoff(session.id);
  });

  it('is ready once the database answers and sessions are restored', async () => {
    expect((await tollgate.app.inject({ url: '/ready' })).json()).toEqual({ status: 'ready' });
    expect((await tollgate.app.inject({ url: '/health' })).statusCode).toBe(200);
  });
});
