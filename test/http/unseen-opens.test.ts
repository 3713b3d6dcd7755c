import { createActor } from 'xstate';
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_MACHINE_VERSION, sessionMachine, statePathOf } from '../../machines/session/index.js';
import { flatTariff } from '../../src/billing/tariff.js';
import { insertOpening } from '../../src/sessions/opening-sql.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { expectLedgerBalanced } from '../helpers/ledger.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/**
 * Opens whose answer nobody saw must not charge anyone: a client that hangs up while queued
 * gives its place up, one that hangs up while its card is checked is not charged, and a row
 * whose open was never answered is found by the sweep and abandoned, not left for a restart.
 */
const SLOW_CARD = '4000000000000077';

let tollgate: TestTollgate;
let base: string;
let ops: Record<string, string>;

beforeAll(async () => {
  tollgate = await startTestTollgate({ env: { ORPHAN_AFTER_MS: '500', ORPHAN_SWEEP_INTERVAL_MS: '200' } });
  await tollgate.app.listen({ port: 0, host: '127.0.0.1' });
  const address = tollgate.app.server.address();
  base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  ops = { authorization: `Bearer ${tollgate.adminToken}` };
});
afterAll(async () => {
  await tollgate.stop();
});

/** Sends an open over a real connection and hangs up after `hangUpAfterMs`, never reading the answer. */
function openAndHangUp(token: string, body: object, hangUpAfterMs: number): Promise<void> {
  return new Promise((resolve) => {
    const request = http.request(`${base}/v1/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    });
    request.on('error', () => resolve());
    request.end(JSON.stringify(body));
    setTimeout(() => {
      request.destroy();
      resolve();
    }, hangUpAfterMs);
  });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const queuedAt = async (serviceId: string) => {
  const { servers } = (await tollgate.app.inject({ url: '/v1/ops/servers', headers: ops })).json();
  for (const server of servers) for (const s of server.services) if (s.id === serviceId) return s.queued as number;
  throw new Error('no such service');
};

const sessionsOf = (accountId: string) =>
  tollgate.db.sql<{ id: string; state: string; declineReason: string | null; charge: bigint | null }[]>`
    select id, state, snapshot #>> '{context,declineReason}' as "declineReason", charge_micros as charge
    from sessions where account_id = ${accountId}`;

describe('a client that hangs up before it is answered', () => {
  it('gives its place in the queue up: the next client gets the seat, and it has no session', async () => {
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60', maxUsers: 1 });
    const first = await signUp(tollgate.app);
    const held = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: first.auth, payload: { serviceId, maxCharge: '1.00' } });
    expect(held.statusCode).toBe(201);

    const gone = await signUp(tollgate.app);
    const hungUp = openAndHangUp(gone.token, { serviceId, maxCharge: '1.00', waitSeconds: 30 }, 300);
    await waitFor('the request to queue', async () => ((await queuedAt(serviceId)) === 1 ? true : undefined));
    await hungUp;
    await waitFor('the queue to empty', async () => ((await queuedAt(serviceId)) === 0 ? true : undefined));

    const next = await signUp(tollgate.app);
    const waiting = tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: next.auth, payload: { serviceId, maxCharge: '1.00', waitSeconds: 30 } });
    await waitFor('the next request to queue', async () => ((await queuedAt(serviceId)) === 1 ? true : undefined));
    await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${held.json().id}/logoff`, headers: first.auth });
    expect((await waiting).statusCode).toBe(201);
    expect(await sessionsOf(gone.account.id)).toEqual([]);
  });

  it('while its card is checked is not charged: the session ends declined as abandoned, its hold released', async () => {
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' });
    const customer = await signUp(tollgate.app, { card: { number: SLOW_CARD, expMonth: 12, expYear: 2031, cvc: '123' } });
    // The slow card answers its first authorization after 2 s: the client hangs up before that.
    await openAndHangUp(customer.token, { serviceId, maxCharge: '1.00' }, 500);
    const [session] = await waitFor('the session to end', async () => {
      const rows = await sessionsOf(customer.account.id);
      return rows.length === 1 && rows[0]!.state === 'declined' ? rows : undefined;
    });
    expect(session).toMatchObject({ declineReason: 'abandoned' });
    const holds = await sandbox(tollgate.cardNetworkUrl).holds();
    expect(holds.filter((h) => h.reference === session!.id).map((h) => h.state)).toEqual(['voided']);
    const [account] = await tollgate.db.sql<{ reserved: bigint }[]>`select reserved_micros as reserved from accounts where id = ${customer.account.id}`;
    expect(account!.reserved).toBe(0n);
  });
});

describe('an open whose row was written but never answered', () => {
  it('is adopted by the sweep and abandoned: any hold voided, declined, its share of the limit returned', async () => {
    const { serviceId, serverId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' });
    const customer = await signUp(tollgate.app);
    // What an open whose commit's answer was lost leaves: the intent, and no actor anywhere.
    const sessionId = randomUUID();
    const actor = createActor(sessionMachine, {
      input: {
        sessionId,
        accountId: customer.account.id,
        serviceId,
        serverId,
        currency: 'USD',
        tariff: flatTariff(600_000n),
        maxChargeMicros: '2000000',
        maxMs: null,
        createdAt: Date.now(),
        retry: { baseMs: 50, maxMs: 500 },
        graceMs: 0,
        renewBeforeMs: 86_400_000,
        warnings: { shareBasisPoints: null, secondsBefore: null },
        quote: null,
      },
    });
    const written = await insertOpening(tollgate.db.sql, {
      context: actor.getSnapshot().context,
      path: statePathOf(actor.getSnapshot().value),
      snapshot: actor.getPersistedSnapshot(),
      machineVersion: SESSION_MACHINE_VERSION,
      service: { name: 'orphaned' },
      server: { name: 'orphaned' },
      maxOpenSessions: 1000,
    });
    expect(written.kind).toBe('opened');

    const [session] = await waitFor('the sweep to abandon it', async () => {
      const rows = await sessionsOf(customer.account.id);
      return rows[0]?.state === 'declined' ? rows : undefined;
    });
    expect(session).toMatchObject({ id: sessionId, declineReason: 'abandoned' });
    const holds = await sandbox(tollgate.cardNetworkUrl).holds();
    expect(holds.filter((h) => h.reference === sessionId && h.state === 'open')).toEqual([]);
    const [account] = await tollgate.db.sql<{ reserved: bigint }[]>`select reserved_micros as reserved from accounts where id = ${customer.account.id}`;
    expect(account!.reserved).toBe(0n);
    // The first test's logged-off session is the only one settled in this file.
    await expectLedgerBalanced(tollgate.sql, { settled: 1 });
  });
});
