import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAmount } from '../../src/billing/money.js';
import { sandbox, type FaultRule } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { expectLedgerBalanced, settledSessions } from '../helpers/ledger.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/**
 * Every phase of the conversation with the card company × every way it can go wrong. Each
 * fault is injected for a few calls; the session must end in the right state, and the
 * sandbox's books must agree with tollgate's: no capture lost or doubled, no hold left open.
 */
let tollgate: TestTollgate;
let network: ReturnType<typeof sandbox>;
let auth: Record<string, string>;
let serviceId: string;
const settled = settledSessions();

// Three attempts a call, 300 ms each: a fault injected 3 times exhausts one call's budget.
const ATTEMPTS = 3;
const TIMEOUT_MS = 300;

beforeAll(async () => {
  tollgate = await startTestTollgate({
    env: {
      CARD_NETWORK_TIMEOUT_MS: String(TIMEOUT_MS),
      CARD_NETWORK_MAX_ATTEMPTS: String(ATTEMPTS),
      CARD_NETWORK_BACKOFF_BASE_MS: '10',
      CARD_NETWORK_BACKOFF_MAX_MS: '20',
      CAPTURE_RETRY_BASE_MS: '50',
      CAPTURE_RETRY_MAX_MS: '100',
      LOGOFF_WAIT_MS: '100',
    },
  });
  network = sandbox(tollgate.cardNetworkUrl);
  auth = (await signUp(tollgate.app, { outstandingLimit: '1000.00' })).auth;
  // 60.00 a minute is 1.00 a second.
  serviceId = (await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '60.00' })).serviceId;
});
afterAll(async () => {
  await expectLedgerBalanced(tollgate.sql, { settled: settled.count });
  await tollgate.stop();
});

const open = () => tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: auth, payload: { serviceId, maxCharge: '5.00' } });

async function finalState(sessionId: string) {
  for (let i = 0; i < 150; i++) {
    const view = await tollgate.supervisor.get(null, sessionId);
    if (view && (view.state === 'settled' || view.state === 'declined')) return settled.note(view);
    await sleep(100);
  }
  throw new Error(`session ${sessionId} did not end`);
}

async function expectBooksAgree(sessionId: string) {
  const holds = await network.holds(`?reference=${sessionId}`);
  expect(holds.filter((h) => h.state === 'open'), 'holds left open').toEqual([]);
  const holdIds = new Set(holds.map((h) => h.id));
  const captures = (await network.captures()).filter((c) => holdIds.has(c.holdId));
  expect(captures.length, 'captures').toBeLessThanOrEqual(1);
  const [row] = await tollgate.sql<{ charge: bigint | null; state: string }[]>`
    select charge_micros as charge, state from sessions where id = ${sessionId}`;
  const captured = captures.reduce((sum, c) => sum + parseAmount(c.amount)!, 0n);
  expect(captured, 'captured at the sandbox = charged by tollgate').toBe(row!.state === 'settled' ? row!.charge ?? 0n : 0n);
  return { holds, captures };
}

const FAULTS = ['decline', 'error', 'timeout_before_commit', 'drop_after_commit', 'slow'] as const;
// Timeouts outlast the client's patience; a slow answer does too, though the work is done.
const rule = (phase: FaultRule['phase'], fault: (typeof FAULTS)[number], times: number): FaultRule => ({
  phase,
  fault,
  times,
  delayMs: fault === 'slow' || fault === 'timeout_before_commit' ? TIMEOUT_MS + 200 : 0,
});

describe('authorization faults', () => {
  it.each([
    // fault, injected calls, HTTP status of the open, final state
    ['decline', 1, 402, 'declined'],
    ['error', 1, 201, 'settled'],
    ['error', ATTEMPTS, 503, 'declined'],
    ['timeout_before_commit', 1, 201, 'settled'],
    ['timeout_before_commit', ATTEMPTS, 503, 'declined'],
    ['drop_after_commit', 1, 201, 'settled'],
    ['drop_after_commit', ATTEMPTS, 503, 'declined'],
    ['slow', 1, 201, 'settled'],
  ] as const)('%s ×%i: the open answers %i and the session ends %s', async (fault, times, status, final) => {
    await network.setFaults([rule('authorize', fault, times)]);
    const response = await open();
    await network.clearFaults();
    expect(response.statusCode, response.body).toBe(status);
    const { rows } = { rows: await tollgate.sql`select id from sessions order by created_at desc limit 1` };
    const sessionId = rows[0]!.id as string;
    if (status === 201) {
      expect(response.json().state).toBe('active');
      expect(await network.holds(`?reference=${sessionId}`)).toHaveLength(1);
      await sleep(1_100);
      await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${sessionId}/logoff`, headers: auth });
    } else {
      expect(response.json().code).toBe(status === 402 ? 'CARD_DECLINED' : 'CARD_NETWORK_UNAVAILABLE');
    }
    const view = await finalState(sessionId);
    expect(view.state).toBe(final);
    const { holds } = await expectBooksAgree(sessionId);
    // A hold placed for a declined session is voided, never left to lapse.
    if (final === 'declined') expect(holds.every((h) => h.state === 'voided')).toBe(true);
  });
});

describe.each(['capture', 'void'] as const)('%s faults', (phase) => {
  it.each(FAULTS.map((fault) => [fault] as const))('%s: the session still settles, charged once', async (fault) => {
    const response = await open();
    expect(response.statusCode).toBe(201);
    const sessionId = response.json().id as string;
    // A capture needs something to charge; a session logged off at once voids its hold instead.
    if (phase === 'capture') await sleep(1_100);
    await network.setFaults([rule(phase, fault, ATTEMPTS + 1)]);
    await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${sessionId}/logoff`, headers: auth });
    const view = await finalState(sessionId);
    await network.clearFaults();
    expect(view.state).toBe('settled');
    const { holds, captures } = await expectBooksAgree(sessionId);
    if (phase === 'capture') {
      expect(captures).toHaveLength(1);
      expect(view.chargeSlip?.amount).toBe(captures[0]!.amount);
    } else {
      expect(view.charge).toBe('0.00');
      expect(holds.map((h) => h.state)).toEqual(['voided']);
    }
  });
});
