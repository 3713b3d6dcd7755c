import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { sandbox, type FaultRule } from '../helpers/card-network.js';
import { createService, signUp, signUpBody } from '../helpers/customers.js';
import { expectLedgerBalanced, settledSessions } from '../helpers/ledger.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/**
 * Every phase of the conversation with the card company (sign-up's card check, authorization,
 * its renewal, an extension, capture, void) × every way it can go wrong. Each fault is injected
 * for a number of calls, or on every attempt until the test lifts it; each case states the one
 * outcome that is right, and the sandbox's books must show it: which holds, in which state, for
 * how much, and what was captured.
 *
 * The clock is the test's (a ManualClock): a session logged off 2 s after it started is charged
 * exactly 2.00 at 1.00 a second, however long the faults made the requests take. Retries that
 * tollgate schedules on that clock come due as the test moves it (see `final`).
 */
let tollgate: TestTollgate;
let network: ReturnType<typeof sandbox>;
let auth: Record<string, string>;
let serviceId: string;
const settled = settledSessions();
const clock = new ManualClock(Date.UTC(2026, 4, 4, 9, 0, 0));

// Three attempts a call, 300 ms each: a fault injected 3 times exhausts one call's budget.
const ATTEMPTS = 3;
const TIMEOUT_MS = 300;
/** `times` of a rule that hits every attempt until the test lifts it. */
const EVERY = null;

beforeAll(async () => {
  tollgate = await startTestTollgate({
    clock,
    env: {
      CARD_NETWORK_TIMEOUT_MS: String(TIMEOUT_MS),
      CARD_NETWORK_MAX_ATTEMPTS: String(ATTEMPTS),
      CARD_NETWORK_BACKOFF_BASE_MS: '10',
      CARD_NETWORK_BACKOFF_MAX_MS: '20',
      CAPTURE_RETRY_BASE_MS: '50',
      CAPTURE_RETRY_MAX_MS: '100',
      // A logoff answers once the session rests: settled, or waiting to retry after a failure. The
      // bound is only for a call in flight, and a busy machine must not turn a settled into a 202.
      LOGOFF_WAIT_MS: '5000',
    },
  });
  network = sandbox(tollgate.cardNetworkUrl);
  auth = (await signUp(tollgate.app, { outstandingLimit: '1000.00' })).auth;
  // 60.00 a minute is 1.00 a second.
  serviceId = (await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '60.00' })).serviceId;
});
// A failed case never leaves its faults to the next one.
afterEach(async () => {
  await network.clearFaults();
});
afterAll(async () => {
  await expectLedgerBalanced(tollgate.sql, { settled: settled.count });
  await tollgate.stop();
});

const inject = (method: 'GET' | 'POST', url: string, payload?: object, headers = auth) =>
  tollgate.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
const open = (maxCharge = '5.00') => inject('POST', '/v1/sessions', { serviceId, maxCharge });
const logoff = async (id: string) => {
  const response = await inject('POST', `/v1/sessions/${id}/logoff`);
  settled.note(response.json());
  return response;
};
const extend = (id: string, maxCharge: string) => inject('POST', `/v1/sessions/${id}/extend`, { maxCharge });
const view = async (id: string, headers = auth) => settled.note((await inject('GET', `/v1/sessions/${id}`, undefined, headers)).json());
const sessionIds = async (): Promise<string[]> =>
  ((await inject('GET', '/v1/sessions')).json().sessions as { id: string }[]).map((s) => s.id);
const reserved = async (): Promise<string> => (await inject('GET', '/v1/account')).json().account.reserved;

/** The session an open created, found as the customer finds it: the one new in their list. */
async function openedSince(before: string[]): Promise<string> {
  const created = (await sessionIds()).filter((id) => !before.includes(id));
  expect(created, 'sessions the open created').toHaveLength(1);
  return created[0]!;
}

/**
 * Reads the session until it has ended. Each read moves the clock by `stepMs`, so retries that
 * tollgate scheduled on it (a capture or a void after a failure) come due; a charge is fixed
 * when the session ends, so moving the clock afterwards does not change it.
 */
async function final(id: string, stepMs = 100, headers = auth) {
  for (let i = 0; i < 200; i++) {
    const session = await view(id, headers);
    if (session.state === 'settled' || session.state === 'declined') return session;
    clock.advance(stepMs);
    await sleep(50);
  }
  throw new Error(`session ${id} did not end: ${JSON.stringify(await view(id, headers))}`);
}

/** The session's holds at the card network, oldest first, and the captures of those holds. */
async function books(id: string) {
  const holds = await network.holds(`?reference=${id}`);
  const ids = new Set(holds.map((h) => h.id));
  const captures = (await network.captures()).filter((c) => ids.has(c.holdId));
  return {
    holds: holds.map((h) => h.state),
    amounts: holds.map((h) => h.amount),
    captures: captures.map((c) => c.amount),
  };
}

/** Waits until the sandbox has received `count` calls of the phase since the faults were set. */
async function callsReached(phase: FaultRule['phase'], count: number) {
  for (let i = 0; i < 200; i++) {
    if (((await network.calls())[phase] ?? 0) >= count) return;
    await sleep(25);
  }
  throw new Error(`the sandbox never saw ${count} ${phase} calls`);
}

/** Every rule with a count was used up, and every rule on every attempt hit at least one call's attempts. */
async function expectFaultsFired() {
  const rules = await network.rules();
  expect(rules.length, 'rules in force').toBeGreaterThan(0);
  for (const rule of rules) {
    expect(rule.used, `${rule.phase} ${rule.fault} hits`).toBe(rule.times ?? Math.max(rule.used, ATTEMPTS));
  }
}

// Timeouts outlast the client's patience; a slow answer does too, though the work is done.
function rule(phase: FaultRule['phase'], fault: FaultRule['fault'], times: number | null): FaultRule {
  return {
    phase,
    fault,
    ...(times === null ? {} : { times }),
    delayMs: fault === 'slow' || fault === 'timeout_before_commit' ? TIMEOUT_MS + 200 : 0,
  };
}
const timesLabel = (times: number | null) => (times === null ? 'on every attempt' : `×${times}`);

describe('authorization faults', () => {
  it.each(
    (
      [
        // fault, injected calls, HTTP status of the open, how it ends, the session's holds at the end
        ['decline', 1, 402, 'declined', []],
        ['error', 1, 201, 'settled', ['captured']],
        ['error', ATTEMPTS, 503, 'declined', ['voided']],
        ['timeout_before_commit', 1, 201, 'settled', ['captured']],
        ['timeout_before_commit', ATTEMPTS, 503, 'declined', ['voided']],
        ['drop_after_commit', 1, 201, 'settled', ['captured']],
        ['drop_after_commit', ATTEMPTS, 503, 'declined', ['voided']],
        ['slow', 1, 201, 'settled', ['captured']],
        ['slow', EVERY, 503, 'declined', ['voided']],
      ] as const
    ).map(([fault, times, status, end, holds]) => ({ fault, times, label: timesLabel(times), status, end, holds })),
  )('$fault $label: the open answers $status and the session ends $end with holds $holds', async ({ fault, times, status, end, holds }) => {
    const before = await sessionIds();
    await network.setFaults([rule('authorize', fault, times)]);
    const response = await open();
    expect(response.statusCode, response.body).toBe(status);
    await expectFaultsFired();
    // Lifted once the open is answered: what is left (releasing a hold) goes through.
    await network.clearFaults();
    const id = await openedSince(before);
    if (status === 201) {
      expect(response.json()).toMatchObject({ id, state: 'active' });
      clock.advance(2_000);
      expect((await logoff(id)).json()).toMatchObject({ state: 'settled', charge: '2.00' });
    } else if (status === 402) {
      expect(response.json()).toMatchObject({ code: 'CARD_DECLINED', reason: 'processing_error' });
    } else {
      expect(response.json().code).toBe('CARD_NETWORK_UNAVAILABLE');
    }
    const ended = await final(id);
    expect(ended.state).toBe(end);
    if (end === 'declined') {
      expect(ended).toMatchObject({ endReason: 'declined', declineReason: status === 402 ? 'processing_error' : 'card_network_unavailable' });
    }
    // A hold placed for a declined session (the answer was lost, not refused) is voided, never left to lapse.
    expect(await books(id)).toEqual({
      holds,
      amounts: holds.map(() => '5.00'),
      captures: end === 'settled' ? ['2.00'] : [],
    });
    expect(await reserved()).toBe('0.00');
  });
});

describe.each(['capture', 'void'] as const)('%s faults', (phase) => {
  const cases = [
    ...(['decline', 'error', 'timeout_before_commit', 'drop_after_commit', 'slow'] as const).map((fault) => ({ fault, times: ATTEMPTS + 1 })),
    { fault: 'slow' as const, times: EVERY },
  ].map((c) => ({ ...c, label: timesLabel(c.times) }));
  it.each(cases)('$fault $label: the logoff answers 202 closing, and the session settles charged once', async ({ fault, times }) => {
    const response = await open();
    expect(response.statusCode).toBe(201);
    const id = response.json().id as string;
    // 2 s of use is a charge to capture; a logoff at once charges nothing and voids the hold.
    if (phase === 'capture') clock.advance(2_000);
    await network.setFaults([rule(phase, fault, times)]);
    const closing = await logoff(id);
    expect(closing.statusCode, closing.body).toBe(202);
    expect(closing.json()).toMatchObject({ state: 'closing', charge: phase === 'capture' ? '2.00' : '0.00' });
    let ended;
    if (times === EVERY) {
      // Failing for as long as the fault lasts; lifted once every attempt of a call has hit it.
      await callsReached(phase, ATTEMPTS);
      await expectFaultsFired();
      await network.clearFaults();
      ended = await final(id);
    } else {
      // The retries use up the injected calls, and the next one goes through.
      ended = await final(id);
      await expectFaultsFired();
    }
    if (phase === 'capture') {
      expect(ended).toMatchObject({ state: 'settled', endReason: 'logoff', charge: '2.00', chargeSlip: { amount: '2.00' } });
      expect(await books(id)).toEqual({ holds: ['captured'], amounts: ['5.00'], captures: ['2.00'] });
    } else {
      expect(ended).toMatchObject({ state: 'settled', endReason: 'logoff', charge: '0.00', chargeSlip: null });
      expect(await books(id)).toEqual({ holds: ['voided'], amounts: ['5.00'], captures: [] });
    }
  });
});

describe('extension (incremental authorization) faults', () => {
  it.each(
    (
      [
        // fault, injected calls, HTTP status of the extend
        ['decline', 1, 402],
        ['error', 1, 200],
        ['error', ATTEMPTS, 503],
        ['timeout_before_commit', 1, 200],
        ['timeout_before_commit', ATTEMPTS, 503],
        ['drop_after_commit', 1, 200],
        ['drop_after_commit', ATTEMPTS, 503],
        ['slow', 1, 200],
        ['slow', EVERY, 503],
      ] as const
    ).map(([fault, times, status]) => ({ fault, times, label: timesLabel(times), status })),
  )('$fault $label: the extend from 5.00 to 8.00 answers $status', async ({ fault, times, status }) => {
    const opened = (await open('5.00')).json();
    expect(opened.state).toBe('active');
    await network.setFaults([rule('increment', fault, times)]);
    const response = await extend(opened.id, '8.00');
    expect(response.statusCode, response.body).toBe(status);
    await expectFaultsFired();
    await network.clearFaults();

    const raised = status === 200;
    const limit = raised ? '8.00' : '5.00';
    if (status === 402) expect(response.json()).toMatchObject({ code: 'CARD_DECLINED', reason: 'processing_error' });
    if (status === 503) expect(response.json().code).toBe('CARD_NETWORK_UNAVAILABLE');
    // The session runs on at the limit the answer gave, with the cutoff that limit gives (1.00 a second).
    const running = await view(opened.id);
    expect(running).toMatchObject({ state: 'active', maxCharge: limit });
    expect(Date.parse(running.cutoffAt) - Date.parse(opened.startedAt)).toBe(raised ? 8_000 : 5_000);
    // Unanswered, the increment may have raised the hold at the card company: the session's share
    // of the outstanding limit stays at what was asked until it ends, so no other session is held
    // beyond the limit.
    expect(await reserved()).toBe(status === 503 ? '8.00' : limit);
    const [hold] = await network.holds(`?reference=${opened.id}`);
    // A refused or unreached increment leaves the hold as it was. (When the increment was
    // committed at the card network but no answer came back, the hold there is 8.00 while the
    // session's limit stays 5.00: that case states no hold amount here.)
    const committedUnanswered = status === 503 && (fault === 'drop_after_commit' || fault === 'slow');
    if (!committedUnanswered) expect(hold?.amount).toBe(limit);

    clock.advance(2_000);
    expect((await logoff(opened.id)).json()).toMatchObject({ state: 'settled', charge: '2.00', chargeSlip: { amount: '2.00' } });
    const ended = await books(opened.id);
    expect({ holds: ended.holds, captures: ended.captures }).toEqual({ holds: ['captured'], captures: ['2.00'] });
    expect(await reserved()).toBe('0.00');
  });
});

describe('hold renewal faults', () => {
  // Holds placed from here on last 2 s: a running session renews its hold 1 s in.
  const shortHolds = { holdValidityMs: 2_000 };

  it('decline ×1: the session closes at what it accrued, on the hold it had', async () => {
    await network.setFaults([], shortHolds);
    const opened = (await open('50.00')).json();
    await network.setFaults([rule('authorize', 'decline', 1)], shortHolds);
    clock.advance(1_000);
    // The clock stays where it is: the renewal falls due now, and is declined now.
    const ended = await final(opened.id, 0);
    await expectFaultsFired();
    expect(ended).toMatchObject({
      state: 'settled',
      endReason: 'reauthorization_declined',
      declineReason: 'processing_error',
      charge: '1.00',
      chargeSlip: { amount: '1.00', authorizationNumber: opened.authorizationNumber },
    });
    expect(await books(opened.id)).toEqual({ holds: ['captured'], amounts: ['50.00'], captures: ['1.00'] });
  });

  it.each(
    (
      [
        ['error', ATTEMPTS],
        ['timeout_before_commit', ATTEMPTS],
        ['drop_after_commit', ATTEMPTS],
        ['slow', EVERY],
      ] as const
    ).map(([fault, times]) => ({ fault, times, label: timesLabel(times) })),
  )('$fault $label: the renewal is tried again and the session runs on one new hold, the old one voided', async ({ fault, times }) => {
    await network.setFaults([], shortHolds);
    const opened = (await open('50.00')).json();
    const startedAt = Date.parse(opened.startedAt);
    await network.setFaults([rule('authorize', fault, times)], shortHolds);
    clock.advance(1_000);
    await callsReached('authorize', ATTEMPTS);
    await expectFaultsFired();
    await network.setFaults([], shortHolds);
    // The retry is scheduled on the clock: move it in small steps, never to the old hold's expiry.
    let running = await view(opened.id);
    while (running.authorizationNumber === opened.authorizationNumber && clock.now() < startedAt + 1_900) {
      clock.advance(10);
      await sleep(50);
      running = await view(opened.id);
    }
    expect(running).toMatchObject({ state: 'active', maxCharge: '50.00' });
    expect(running.authorizationNumber).not.toBe(opened.authorizationNumber);

    const charge = `${Math.floor((clock.now() - startedAt) / 1_000)}.00`;
    expect((await logoff(opened.id)).json()).toMatchObject({
      state: 'settled',
      charge,
      chargeSlip: { amount: charge, authorizationNumber: running.authorizationNumber },
    });
    // Exactly one new hold, however many attempts the renewal took.
    expect(await books(opened.id)).toEqual({ holds: ['voided', 'captured'], amounts: ['50.00', '50.00'], captures: [charge] });
  });
});

describe("sign-up's card check (tokenize) faults", () => {
  it.each(
    (
      [
        ['error', 1, 201],
        ['error', ATTEMPTS, 503],
        ['timeout_before_commit', 1, 201],
        ['timeout_before_commit', ATTEMPTS, 503],
        ['drop_after_commit', 1, 201],
        ['drop_after_commit', ATTEMPTS, 503],
        ['slow', 1, 201],
        ['slow', EVERY, 503],
      ] as const
    ).map(([fault, times, status]) => ({ fault, times, label: timesLabel(times), status })),
  )('$fault $label: the sign-up answers $status', async ({ fault, times, status }) => {
    const body = signUpBody({ outstandingLimit: '10.00' });
    await network.setFaults([rule('tokenize', fault, times)]);
    const response = await inject('POST', '/v1/accounts', body, {});
    expect(response.statusCode, response.body).toBe(status);
    await expectFaultsFired();
    await network.clearFaults();
    if (status === 201) {
      // The token tollgate kept is one the card network knows: the card can be authorized.
      const customer = { authorization: `Bearer ${response.json().token}` };
      expect(response.json().account.card).toMatchObject({ last4: '4242' });
      const opened = await inject('POST', '/v1/sessions', { serviceId, maxCharge: '1.00' }, customer);
      expect(opened.statusCode, opened.body).toBe(201);
      await inject('POST', `/v1/sessions/${opened.json().id}/logoff`, undefined, customer);
      // What counts is how the session ends, whenever the logoff answered.
      expect(await final(opened.json().id, 100, customer)).toMatchObject({ state: 'settled', charge: '0.00' });
    } else {
      expect(response.json().code).toBe('CARD_NETWORK_UNAVAILABLE');
      // Nothing was kept: the customer cannot log in, and the same sign-up goes through later.
      const login = await inject('POST', '/v1/auth/tokens', { email: body.email, password: body.password }, {});
      expect(login.statusCode).toBe(401);
      expect((await inject('POST', '/v1/accounts', body, {})).statusCode).toBe(201);
    }
  });
});

describe("sign-up's card check declined", () => {
  it('decline ×1: the sign-up answers 402 CARD_DECLINED with the reason, and keeps nothing', async () => {
    const body = signUpBody({ outstandingLimit: '10.00' });
    await network.setFaults([rule('tokenize', 'decline', 1)]);
    const response = await inject('POST', '/v1/accounts', body, {});
    await expectFaultsFired();
    await network.clearFaults();
    expect(response.statusCode, response.body).toBe(402);
    expect(response.json()).toMatchObject({ code: 'CARD_DECLINED', reason: 'processing_error' });
    const login = await inject('POST', '/v1/auth/tokens', { email: body.email, password: body.password }, {});
    expect(login.statusCode).toBe(401);
    expect((await inject('POST', '/v1/accounts', body, {})).statusCode).toBe(201);
  });
});

describe('several phases failing in one session', () => {
  it('an authorization retried, an extension whose answer was lost, captures failing: one hold, raised once, captured once', async () => {
    await network.setFaults([
      rule('authorize', 'error', 1),
      rule('increment', 'drop_after_commit', 1),
      rule('capture', 'error', ATTEMPTS + 1),
    ]);
    const opened = await open('5.00');
    expect(opened.statusCode, opened.body).toBe(201);
    const id = opened.json().id as string;
    expect((await extend(id, '8.00')).json()).toMatchObject({ state: 'active', maxCharge: '8.00' });
    clock.advance(2_000);
    const closing = await logoff(id);
    expect(closing.statusCode).toBe(202);
    const ended = await final(id);
    await expectFaultsFired();
    expect(ended).toMatchObject({ state: 'settled', maxCharge: '8.00', charge: '2.00', chargeSlip: { amount: '2.00' } });
    expect(await books(id)).toEqual({ holds: ['captured'], amounts: ['8.00'], captures: ['2.00'] });
  });

  it.each([
    ['voids failing', rule('void', 'error', ATTEMPTS + 1)],
    ['its void declined on the line', rule('void', 'decline', 1)],
  ])('an authorization whose answers are all lost, then %s: declined, its one hold voided', async (_label, voidFault) => {
    const before = await sessionIds();
    await network.setFaults([rule('authorize', 'drop_after_commit', ATTEMPTS), voidFault]);
    const response = await open('5.00');
    expect(response.statusCode, response.body).toBe(503);
    expect(response.json().code).toBe('CARD_NETWORK_UNAVAILABLE');
    const id = await openedSince(before);
    const ended = await final(id);
    await expectFaultsFired();
    expect(ended).toMatchObject({ state: 'declined', declineReason: 'card_network_unavailable' });
    expect(await books(id)).toEqual({ holds: ['voided'], amounts: ['5.00'], captures: [] });
    expect(await reserved()).toBe('0.00');
  });
});
