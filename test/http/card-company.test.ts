import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { freePort } from '../../src/db/free-port.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { expectLedgerBalanced, settledSessions } from '../helpers/ledger.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

type Auth = Record<string, string>;

/** A customer's calls; sessions the answers show settled are noted in `settled`. */
function client(tollgate: TestTollgate, settled = settledSessions()) {
  return {
    open: (auth: Auth, payload: object) => tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: auth, payload }),
    extend: (auth: Auth, id: string, maxCharge: string) =>
      tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${id}/extend`, headers: auth, payload: { maxCharge } }),
    logoff: async (auth: Auth, id: string) => {
      const response = await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${id}/logoff`, headers: auth });
      settled.note(response.json());
      return response;
    },
    get: async (auth: Auth, id: string) => settled.note((await tollgate.app.inject({ url: `/v1/sessions/${id}`, headers: auth })).json()),
    account: async (auth: Auth) => (await tollgate.app.inject({ url: '/v1/account', headers: auth })).json().account,
  };
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await sleep(100);
  }
}

describe('raising the limit of a running session', () => {
  let tollgate: TestTollgate;
  let api: ReturnType<typeof client>;
  const settledSeen = settledSessions();
  beforeAll(async () => {
    tollgate = await startTestTollgate();
    api = client(tollgate, settledSeen);
  });
  afterAll(async () => {
    await expectLedgerBalanced(tollgate.sql, { settled: settledSeen.count });
    await tollgate.stop();
  });

  it('raises the hold by incremental authorization and moves the limit and the cutoff', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '10.00' });
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '6.00' });
    const opened = (await api.open(customer.auth, { serviceId, maxCharge: '1.00' })).json();
    const response = await api.extend(customer.auth, opened.id, '3.00');
    expect(response.statusCode).toBe(200);
    const extended = response.json();
    expect(extended).toMatchObject({ state: 'active', maxCharge: '3.00', authorizationNumber: opened.authorizationNumber });
    // 6.00 a minute is 0.10 a second: 1.00 lasts 10 s, 3.00 lasts 30 s.
    expect(Date.parse(extended.cutoffAt) - Date.parse(opened.cutoffAt)).toBe(20_000);
    const [hold] = await sandbox(tollgate.cardNetworkUrl).holds(`?reference=${opened.id}`);
    expect(hold).toMatchObject({ amount: '3.00', state: 'open' });
    expect((await api.account(customer.auth)).reserved).toBe('3.00');
    await api.logoff(customer.auth, opened.id);
    expect((await api.account(customer.auth)).reserved).toBe('0.00');
  });

  it('changes nothing and says why when the card company declines', async () => {
    // Approves authorizations, declines increments.
    const customer = await signUp(tollgate.app, {
      outstandingLimit: '10.00',
      card: { number: '4000000000003055', expMonth: 12, expYear: 2031, cvc: '123' },
    });
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '6.00' });
    const opened = (await api.open(customer.auth, { serviceId, maxCharge: '1.00' })).json();
    const response = await api.extend(customer.auth, opened.id, '3.00');
    expect(response.statusCode).toBe(402);
    expect(response.json()).toMatchObject({ code: 'CARD_DECLINED', reason: 'insufficient_funds' });
    expect(await api.get(customer.auth, opened.id)).toMatchObject({ state: 'active', maxCharge: '1.00', cutoffAt: opened.cutoffAt });
    expect((await api.account(customer.auth)).reserved).toBe('1.00');
    await api.logoff(customer.auth, opened.id);
  });

  it('refuses what it cannot do with a stable code', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '5.00' });
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '6.00' });
    const opened = (await api.open(customer.auth, { serviceId, maxCharge: '1.00' })).json();
    expect((await api.extend(customer.auth, opened.id, '9.00')).json()).toMatchObject({ code: 'OUTSTANDING_LIMIT_REACHED', available: '4.00' });
    expect((await api.extend(customer.auth, opened.id, '0.50')).json().code).toBe('VALIDATION_FAILED');
    // Half a minute at 6.00 costs 3.00: the time limit ends it before 3.50 or 3.60 would.
    const timed = (await api.open(customer.auth, { serviceId, maxMinutes: 0.5, maxCharge: '3.50' })).json();
    expect((await api.extend(customer.auth, timed.id, '3.60')).json().code).toBe('TIME_LIMIT_BINDS');
    await api.logoff(customer.auth, opened.id);
    expect((await api.extend(customer.auth, opened.id, '2.00')).json().code).toBe('SESSION_NOT_ACTIVE');
    await api.logoff(customer.auth, timed.id);
  });

  it('keeps the share of the limit an unanswered increment may have raised the hold to, and takes that hold as raised when a later extension finds it', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '10.00' });
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' });
    const opened = (await api.open(customer.auth, { serviceId, maxCharge: '5.00' })).json();
    const network = sandbox(tollgate.cardNetworkUrl);
    // The card company raises the hold to 10.00, and its answer is lost.
    await network.setFaults([{ phase: 'increment', fault: 'drop_after_commit' }]);
    try {
      const lost = await api.extend(customer.auth, opened.id, '10.00');
      expect([lost.statusCode, lost.json().code]).toEqual([503, 'CARD_NETWORK_UNAVAILABLE']);
    } finally {
      await network.clearFaults();
    }
    const [raised] = await network.holds(`?reference=${opened.id}`);
    expect(raised).toMatchObject({ amount: '10.00', state: 'open' });
    expect(await api.get(customer.auth, opened.id)).toMatchObject({ state: 'active', maxCharge: '5.00' });
    // What the card may hold stays counted: no other session is held beyond the limit.
    expect((await api.account(customer.auth)).reserved).toBe('10.00');
    const refused = await api.open(customer.auth, { serviceId, maxCharge: '5.00' });
    expect([refused.statusCode, refused.json().code]).toEqual([402, 'OUTSTANDING_LIMIT_REACHED']);
    // A smaller extension finds the hold already higher: raised, with the hold as the card company has it.
    const extended = await api.extend(customer.auth, opened.id, '7.00');
    expect(extended.statusCode, extended.body).toBe(200);
    expect(extended.json()).toMatchObject({ state: 'active', maxCharge: '7.00' });
    expect((await api.account(customer.auth)).reserved).toBe('10.00');
    expect((await network.holds(`?reference=${opened.id}`)).map((h) => [h.amount, h.state])).toEqual([['10.00', 'open']]);
    const settled = (await api.logoff(customer.auth, opened.id)).json();
    expect(settled.state).toBe('settled');
    expect((await api.account(customer.auth)).reserved).toBe('0.00');
  });
});

describe('a grace period over the limit', () => {
  // The clock is the test's: how long a session ran, and how long it stood interrupted, are
  // exactly what the test says, so the charge tells whether the pause was billed.
  const clock = new ManualClock(Date.UTC(2026, 4, 4, 9, 0, 0));
  let tollgate: TestTollgate;
  let api: ReturnType<typeof client>;
  const settledSeen = settledSessions();
  beforeAll(async () => {
    tollgate = await startTestTollgate({ clock, env: { OVER_LIMIT_GRACE_MS: '5000' } });
    api = client(tollgate, settledSeen);
  });
  afterAll(async () => {
    await expectLedgerBalanced(tollgate.sql, { settled: settledSeen.count });
    await tollgate.stop();
  });
  const history = async (id: string) =>
    (await tollgate.app.inject({ url: `/v1/ops/sessions/${id}`, headers: { authorization: `Bearer ${tollgate.adminToken}` } }))
      .json()
      .history.map((h: { to: string }) => h.to);

  it('closes at the limit when nobody extends it in time, and refuses a late extension', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '10.00' });
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '60.00' });
    const opened = (await api.open(customer.auth, { serviceId, maxCharge: '1.00' })).json();
    // Past the limit (1 s) and past the grace after it (5 s) before anyone asks.
    clock.advance(6_000);
    const settled = await until(() => api.get(customer.auth, opened.id), (s) => s.state === 'settled');
    expect(settled).toMatchObject({ state: 'settled', charge: '1.00', endReason: 'charge_limit', chargeSlip: { amount: '1.00' } });
    expect((await api.extend(customer.auth, opened.id, '3.00')).json().code).toBe('SESSION_NOT_ACTIVE');
    expect(await history(opened.id)).toEqual([
      'authorizing.requesting',
      'active.running',
      'over_limit.grace',
      'closing.capturing.calling',
      'settled',
    ]);
  });

  it('lets a session over its limit be extended and resume, without billing the pause', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '20.00' });
    // 60.00 a minute is 1.00 a second.
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '60.00' });
    const opened = (await api.open(customer.auth, { serviceId, maxCharge: '1.00' })).json();
    expect(opened).toMatchObject({ state: 'active', cutoffReason: 'charge_limit' });
    // 1 s of use reaches the 1.00 limit.
    clock.advance(1_000);
    const over = await until(() => api.get(customer.auth, opened.id), (s) => s.state === 'over_limit');
    expect(over).toMatchObject({ state: 'over_limit', charge: '1.00', endReason: 'charge_limit' });
    // Interrupted for 3 s, then extended to 10.00.
    clock.advance(3_000);
    const resumed = await api.extend(customer.auth, opened.id, '10.00');
    expect(resumed.statusCode).toBe(200);
    expect(resumed.json()).toMatchObject({ state: 'active', maxCharge: '10.00', endReason: null });
    // The 3 s pause moves the cutoff: 10 s of use end 13 s after the start.
    expect(Date.parse(resumed.json().cutoffAt) - Date.parse(opened.startedAt)).toBe(13_000);
    // 2 s more of use, then logoff: 3 s used in all, 6 s since the start.
    clock.advance(2_000);
    const settled = (await api.logoff(customer.auth, opened.id)).json();
    // Billed 1 s before the limit and 2 s after the resume: 3.00. Billing the pause would be 6.00.
    expect(settled).toMatchObject({ state: 'settled', endReason: 'logoff', charge: '3.00', chargeSlip: { amount: '3.00' } });
    // Its lines say so: a second before the pause, two after it, none drawn across it.
    const started = Date.parse(opened.startedAt);
    expect(settled.lines.map((l: { from: string; to: string; seconds: number; charge: string }) => [Date.parse(l.from) - started, Date.parse(l.to) - started, l.seconds, l.charge])).toEqual([
      [0, 1_000, 1, '1.00'],
      [4_000, 6_000, 2, '2.00'],
    ]);
    const captures = await sandbox(tollgate.cardNetworkUrl).captures();
    expect(captures.find((c) => c.id === settled.chargeSlip.id)?.amount).toBe('3.00');
    expect(await history(opened.id)).toEqual([
      'authorizing.requesting',
      'active.running',
      'over_limit.grace',
      'over_limit.extending.reserving',
      'over_limit.extending.incrementing',
      'active.running',
      'closing.capturing.calling',
      'settled',
    ]);
  });
});

describe('holds that outlive their validity', () => {
  let tollgate: TestTollgate;
  let api: ReturnType<typeof client>;
  const settledSeen = settledSessions();
  const clock = new ManualClock(Date.UTC(2026, 10, 30, 9));
  beforeAll(async () => {
    // Holds lapse after 2 s here (on the test's clock, which the sandbox shares); sessions renew them a second ahead.
    tollgate = await startTestTollgate({ clock, env: { CARD_NETWORK_HOLD_VALIDITY_MS: '2000', HOLD_RENEW_BEFORE_MS: '1000' } });
    api = client(tollgate, settledSeen);
  });
  afterAll(async () => {
    await expectLedgerBalanced(tollgate.sql, { settled: settledSeen.count });
    await tollgate.stop();
  });

  it('renews the hold before it lapses, voids the old ones, and captures on the latest', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '10.00' });
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' });
    const opened = (await api.open(customer.auth, { serviceId, maxCharge: '5.00' })).json();
    const network = sandbox(tollgate.cardNetworkUrl);
    // Each second a renewal falls due: a new hold, the old one voided.
    for (const held of [2, 3, 4]) {
      clock.advance(1_000);
      await until(() => network.holds(`?reference=${opened.id}`), (holds) => holds.length === held && holds.filter((h) => h.state === 'voided').length === held - 1);
    }
    clock.advance(300);
    const settled = (await api.logoff(customer.auth, opened.id)).json();
    expect(settled).toMatchObject({ state: 'settled', charge: '0.03' });
    const holds = await network.holds(`?reference=${opened.id}`);
    expect(holds).toHaveLength(4);
    expect(holds.filter((h) => h.state === 'voided')).toHaveLength(3);
    const latest = holds.find((h) => h.state === 'captured');
    expect(latest?.authorizationNumber).toBe(settled.chargeSlip.authorizationNumber);
    expect(settled.authorizationNumber).not.toBe(opened.authorizationNumber);
  });

  it('closes at what it has accrued when the new hold is declined', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '10.00' });
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '6.00' });
    const opened = (await api.open(customer.auth, { serviceId, maxCharge: '5.00' })).json();
    await sandbox(tollgate.cardNetworkUrl).setFaults([{ phase: 'authorize', fault: 'decline', times: 1 }], { holdValidityMs: 2000 });
    clock.advance(1_000);
    const settled = await until(() => api.get(customer.auth, opened.id), (s) => s.state === 'settled');
    await sandbox(tollgate.cardNetworkUrl).clearFaults();
    expect(settled).toMatchObject({ state: 'settled', endReason: 'reauthorization_declined' });
    // Renewal falls due one second in: 0.10 accrued at 6.00 a minute.
    expect(settled.charge).toBe('0.10');
    expect(settled.chargeSlip.authorizationNumber).toBe(opened.authorizationNumber);
  });

  it('captures on the hold it has when logged off while a renewal is on its way, and lets go of the hold that renewal placed', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '10.00' });
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '6.00' });
    const opened = (await api.open(customer.auth, { serviceId, maxCharge: '5.00' })).json();
    const network = sandbox(tollgate.cardNetworkUrl);
    // The renewal's new hold is placed, and its answer takes 800 ms to come.
    await network.setFaults([{ phase: 'authorize', fault: 'slow', times: 1, delayMs: 800 }]);
    try {
      clock.advance(1_000);
      await until(() => network.holds(`?reference=${opened.id}`), (holds) => holds.length === 2);
      const settled = (await api.logoff(customer.auth, opened.id)).json();
      expect(settled).toMatchObject({ state: 'settled', charge: '0.10' });
      expect(settled.chargeSlip.authorizationNumber).toBe(opened.authorizationNumber);
      // The old hold captured (not voided under its capture), the renewal's voided once its answer came.
      const holds = await until(() => network.holds(`?reference=${opened.id}`), (all) => all.every((h) => h.state !== 'open'));
      expect(holds.map((h) => h.state).sort()).toEqual(['captured', 'voided']);
      expect(holds.find((h) => h.state === 'captured')?.authorizationNumber).toBe(opened.authorizationNumber);
    } finally {
      await network.clearFaults();
    }
  });

  it('closes at what it has accrued, captured on the hold it has, when no renewal is answered by half the renewal window before the hold lapses', async () => {
    const customer = await signUp(tollgate.app, { outstandingLimit: '10.00' });
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '6.00' });
    const opened = (await api.open(customer.auth, { serviceId, maxCharge: '5.00' })).json();
    const network = sandbox(tollgate.cardNetworkUrl);
    await network.setFaults([{ phase: 'authorize', fault: 'error' }], { holdValidityMs: 2000 });
    try {
      // Renewal falls due one second in, and fails; it is tried again, up to its last try at 1.5 s (the hold lapses at 2).
      clock.advance(1_000);
      const history = async () =>
        (await tollgate.app.inject({ url: `/v1/ops/sessions/${opened.id}`, headers: { authorization: `Bearer ${tollgate.adminToken}` } })).json().history as { event: string; to: string }[];
      await until(history, (events) => events.some((e) => e.event === 'renew done' && e.to === 'active.running'));
      clock.advance(500);
      const settled = await until(() => api.get(customer.auth, opened.id), (s) => s.state === 'settled');
      // Ended at its last try, and charged its whole seconds: one, at 6.00 a minute.
      expect(settled).toMatchObject({ endReason: 'reauthorization_declined', charge: '0.10' });
      expect(settled.declineReason).toContain('no answer from the card network');
      expect(Date.parse(settled.endedAt) - Date.parse(opened.startedAt)).toBe(1_500);
      // Charged on the hold it opened with, before it lapsed: nothing left for an operator.
      const holds = await network.holds(`?reference=${opened.id}`);
      expect(holds.map((h) => h.state)).toEqual(['captured']);
      expect(settled.chargeSlip.authorizationNumber).toBe(opened.authorizationNumber);
    } finally {
      await network.clearFaults();
    }
  });
});

describe('when the card company cannot be reached', () => {
  it('fails the open with 503, declines the session at once with nothing to release, and leaves nothing reserved', async () => {
    const closedPort = await freePort();
    const tollgate = await startTestTollgate({
      env: { CARD_NETWORK_URL: `http://127.0.0.1:${closedPort}`, CARD_NETWORK_BACKOFF_BASE_MS: '10', CARD_NETWORK_BACKOFF_MAX_MS: '20' },
    });
    try {
      const api = client(tollgate);
      // Sign-up needs the card network too: the account is made on the real sandbox's database.
      const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00' });
      const signUpResponse = await tollgate.app.inject({
        method: 'POST',
        url: '/v1/accounts',
        payload: { name: 'x', email: `${randomUUID()}@example.com`, password: 'long enough', card: { number: '4242424242424242', expMonth: 1, expYear: 2031, cvc: '123' }, estimatedStorageGb: 1, estimatedProcessingHours: 1, outstandingLimit: '10.00' },
      });
      expect(signUpResponse.statusCode).toBe(503);
      expect(signUpResponse.json().code).toBe('CARD_NETWORK_UNAVAILABLE');
      const accountId = randomUUID();
      await tollgate.sql`
        insert into accounts (id, name, email, email_normalized, password_hash, estimated_storage_gb, estimated_processing_hours,
          card_token, card_brand, card_last4, card_exp_month, card_exp_year, currency, outstanding_limit_micros, created_at, statement_from, statement_due_at)
        values (${accountId}, 'x', 'x@example.com', ${`${accountId}@example.com`}, 'x', 1, 1, 'tok_x', 'visa', '4242', 1, 2031, 'USD', 10000000, now(), now(), now() + interval '1 month')`;
      const { insertToken } = await import('../../src/accounts/tokens.js');
      const { token } = await insertToken(tollgate.sql, accountId, { idleMs: 3_600_000, maxAgeMs: 3_600_000 }, Date.now());
      const auth = { authorization: `Bearer ${token}` };
      const response = await api.open(auth, { serviceId, maxCharge: '5.00' });
      expect(response.statusCode).toBe(503);
      expect(response.json().code).toBe('CARD_NETWORK_UNAVAILABLE');
      const { sessions } = (await tollgate.app.inject({ url: '/v1/sessions', headers: auth })).json();
      expect(sessions.map((s: { state: string; declineReason: string }) => [s.state, s.declineReason])).toEqual([
        ['declined', 'card_network_unavailable'],
      ]);
      // No request reached the card company, so no hold can exist: declined straight from the
      // request, without the replay-and-void of an authorization whose answer was lost.
      const { history } = (
        await tollgate.app.inject({ url: `/v1/ops/sessions/${sessions[0].id}`, headers: { authorization: `Bearer ${tollgate.adminToken}` } })
      ).json();
      expect(history.map((h: { to: string }) => h.to)).toEqual(['authorizing.requesting', 'declined']);
      expect((await api.account(auth)).reserved).toBe('0.00');
    } finally {
      await tollgate.stop();
    }
  });
});

describe('reconciliation at start-up', () => {
  it('voids the holds that belong to no running session and keeps the others', async () => {
    let tollgate = await startTestTollgate();
    try {
      const network = () => sandbox(tollgate.cardNetworkUrl);
      const api = () => client(tollgate);
      const customer = await signUp(tollgate.app, { outstandingLimit: '20.00' });
      const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00' });
      const running = (await api().open(customer.auth, { serviceId, maxCharge: '2.00' })).json();
      const [account] = await tollgate.sql<{ token: string }[]>`select card_token as token from accounts where id = ${customer.account.id}`;
      const token = account!.token;
      // A hold whose session was never written, as a crash between the two could leave.
      const orphan = await tollgate.gateway.authorize({ token, amountMicros: 1_000_000n, currency: 'USD', reference: randomUUID(), idempotencyKey: randomUUID() });
      tollgate = await tollgate.restart();
      const holds = await network().holds();
      expect(holds.find((h) => h.id === orphan.holdId)?.state).toBe('voided');
      expect(holds.find((h) => h.reference === running.id)?.state).toBe('open');
      expect((await api().logoff(customer.auth, running.id)).json().state).toBe('settled');
    } finally {
      await tollgate.stop();
    }
  });
});

describe('reconciliation while running', () => {
  it('voids, on its periodic run, holds placed after start-up that no running session owns, and keeps the running session\'s', async () => {
    const tollgate = await startTestTollgate({ env: { RECONCILE_INTERVAL_MS: '200' } });
    const settledSeen = settledSessions();
    try {
      const network = sandbox(tollgate.cardNetworkUrl);
      const api = client(tollgate, settledSeen);
      const customer = await signUp(tollgate.app, { outstandingLimit: '20.00' });
      const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00' });
      const running = (await api.open(customer.auth, { serviceId, maxCharge: '2.00' })).json();
      const ended = (await api.open(customer.auth, { serviceId, maxCharge: '1.00' })).json();
      expect((await api.logoff(customer.auth, ended.id)).json().state).toBe('settled');

      // Placed at the card network after tollgate started, so only the periodic job can see them:
      // one for no session at all, one for a session that has settled (a late request).
      const token = await network.tokenize({ number: '4242424242424242', expMonth: 12, expYear: 2031, cvc: '123' });
      const strangers = [
        await network.authorize({ token, amount: '1.00', currency: 'USD', reference: randomUUID() }),
        await network.authorize({ token, amount: '1.00', currency: 'USD', reference: ended.id }),
      ];
      expect(strangers.map((h) => h.state)).toEqual(['open', 'open']);
      const stateOf = async (ids: string[]) => {
        const holds = await network.holds();
        return ids.map((id) => holds.find((h) => h.id === id)?.state);
      };
      const voided = await until(
        () => stateOf(strangers.map((h) => h.id)),
        (states) => states.every((s) => s === 'voided'),
      );
      expect(voided).toEqual(['voided', 'voided']);
      const [runningHold] = await network.holds(`?reference=${running.id}`);
      expect(runningHold?.state).toBe('open');
      expect((await api.logoff(customer.auth, running.id)).json().state).toBe('settled');
      await expectLedgerBalanced(tollgate.sql, { settled: 2 });
    } finally {
      await tollgate.stop();
    }
  });
});
