import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAmount } from '../../src/billing/money.js';
import { sandbox, type FaultRule } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { expectLedgerBalanced } from '../helpers/ledger.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

const SESSIONS = 1_000;
const CONCURRENCY = 40;

let tollgate: TestTollgate;
beforeAll(async () => {
  tollgate = await startTestTollgate({
    env: {
      CARD_NETWORK_TIMEOUT_MS: '1000',
      CARD_NETWORK_MAX_ATTEMPTS: '3',
      CARD_NETWORK_BACKOFF_BASE_MS: '10',
      CARD_NETWORK_BACKOFF_MAX_MS: '50',
      CAPTURE_RETRY_BASE_MS: '50',
      CAPTURE_RETRY_MAX_MS: '400',
      LOGOFF_WAIT_MS: '50',
      DATABASE_POOL_SIZE: '10',
    },
  });
});
afterAll(() => tollgate.stop());

/** One fault in five on every call that moves money, of every kind. */
function faults(): FaultRule[] {
  const kinds = [
    { fault: 'error', probability: 0.06 },
    { fault: 'drop_after_commit', probability: 0.06 },
    { fault: 'timeout_before_commit', probability: 0.03, delayMs: 1_200 },
    { fault: 'slow', probability: 0.03, delayMs: 200 },
    { fault: 'decline', probability: 0.02 },
  ] as const;
  // Rules are tried in order, each with its own draw: divide so the kinds add up to 20%.
  return (['authorize', 'capture', 'void'] as const).flatMap((phase) => {
    let left = 1;
    return kinds.map((kind) => {
      const probability = kind.probability / left;
      left -= kind.probability;
      return { phase, ...kind, probability };
    });
  });
}

describe('1,000 sessions while the card network fails one call in five', () => {
  it('settles or declines every session, with the sandbox’s captures equal to tollgate’s charges and no hold left open', async () => {
    const network = sandbox(tollgate.cardNetworkUrl);
    const customers = await Promise.all(
      Array.from({ length: 10 }, () => signUp(tollgate.app, { outstandingLimit: '100000.00' })),
    );
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, {
      // 120.00 a minute is 2.00 a second.
      pricePerMinute: '120.00',
      maxUsers: SESSIONS,
      serverMaxUsers: SESSIONS,
    });
    await network.setFaults(faults(), { seed: 20261122 });

    const statuses = new Map<number, number>();
    let next = 0;
    const worker = async () => {
      while (next < SESSIONS) {
        const n = next++;
        const customer = customers[n % customers.length]!;
        // Some run into their limit (0.50 to 2.00), some log off at once, some after a while.
        const maxCharge = ['0.50', '1.00', '2.00'][n % 3]!;
        const response = await tollgate.app.inject({
          method: 'POST',
          url: '/v1/sessions',
          headers: customer.auth,
          payload: { serviceId, maxCharge },
        });
        statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
        if (response.statusCode !== 201) continue;
        const id = response.json().id as string;
        const logoffAfter = [0, 300, 700, null][n % 4];
        if (logoffAfter === null) continue;
        void sleep(logoffAfter).then(() =>
          tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${id}/logoff`, headers: customer.auth }),
        );
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));

    // Everything ends by itself: limits, logoffs, retries with backoff.
    let unsettled = SESSIONS;
    for (let i = 0; i < 600 && unsettled > 0; i++) {
      await sleep(200);
      const [row] = await tollgate.sql<{ unsettled: number }[]>`
        select count(*)::int as unsettled from sessions where state not in ('settled', 'declined')`;
      unsettled = row!.unsettled;
    }
    const calls = await network.calls();
    await network.clearFaults();

    const [totals] = await tollgate.sql<{ sessions: number; settled: number; declined: number; charged: bigint }[]>`
      select count(*)::int as sessions, count(*) filter (where state = 'settled')::int as settled,
        count(*) filter (where state = 'declined')::int as declined,
        coalesce(sum(charge_micros) filter (where state = 'settled'), 0)::int8 as charged
      from sessions`;
    expect(totals!.sessions).toBe(SESSIONS);
    expect(totals!.settled + totals!.declined).toBe(SESSIONS);
    // 202: the card company had not answered within OPEN_WAIT_MS (a loaded machine); documented,
    // and such a session is settled or declined by itself like the rest (checked below).
    expect([...statuses.keys()].filter((s) => ![201, 202, 402, 503].includes(s))).toEqual([]);
    // Faults really were injected, and many sessions were charged.
    expect(calls.authorize).toBeGreaterThan(SESSIONS);
    expect(totals!.charged).toBeGreaterThan(0n);

    const captures = await network.captures();
    const captured = captures.reduce((sum, c) => sum + parseAmount(c.amount)!, 0n);
    expect(captured).toBe(totals!.charged);
    expect(new Set(captures.map((c) => c.holdId)).size).toBe(captures.length);
    const [slips] = await tollgate.sql<{ total: bigint; n: number }[]>`
      select coalesce(sum(amount_micros), 0)::int8 as total, count(*)::int as n from charge_slips`;
    expect(slips!.total).toBe(captured);
    expect(slips!.n).toBe(captures.length);
    const openHolds = await network.holds('?state=open');
    // A hold left open is a failure; its session's history says how it came about.
    const histories = await Promise.all(
      openHolds.map(async (h) => ({
        hold: h,
        history: await tollgate.sql`
          select event, from_state, to_state, detail from session_events where session_id = ${h.reference} order by id`,
      })),
    );
    expect(openHolds, JSON.stringify(histories, null, 2)).toEqual([]);
    // The sessions the customers see settled: the ledger check covers exactly these.
    const seen = await Promise.all(
      customers.map(async (c) => (await tollgate.app.inject({ url: '/v1/sessions', headers: c.auth })).json().sessions as { state: string }[]),
    );
    const settledSeen = seen.flat().filter((s) => s.state === 'settled').length;
    expect(settledSeen).toBe(totals!.settled);
    await expectLedgerBalanced(tollgate.sql, { settled: settledSeen });
  }, 240_000);
});
