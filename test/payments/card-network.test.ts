import { randomUUID } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { CardNetworkRequestError, createCardNetworkClient } from '../../src/payments/card-network-client.js';
import {
  CardDeclinedError,
  CardInvalidError,
  CardNetworkUnavailableError,
  type CardDetails,
  type CardGateway,
} from '../../src/payments/gateway.js';
import { startCardNetwork, type RunningCardNetwork } from '../../src/payments/sandbox/start.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const DAY_MS = 86_400_000;
const START = Date.UTC(2026, 0, 1);
const SLOW_MS = 400;

let db: TestDatabase;
let network: RunningCardNetwork;
let client: CardGateway;
const clock = new ManualClock(START);

const key = () => randomUUID();
/** What tollgate attaches to a hold: its session id. */
const sessionRef = () => `sess_${randomUUID()}`;
const card = (number: string, overrides: Partial<CardDetails> = {}): CardDetails => ({
  number,
  expMonth: 12,
  expYear: 2030,
  cvc: '314',
  ...overrides,
});

function fastClient(overrides: Partial<Parameters<typeof createCardNetworkClient>[0]> = {}) {
  return createCardNetworkClient({ baseUrl: network.url, backoffBaseMs: 5, backoffMaxMs: 20, ...overrides });
}

async function holdFor(number: string, amountMicros = 25_000_000n, reference = sessionRef()) {
  const { token } = await client.tokenize(card(number), key());
  return client.authorize({ token, amountMicros, currency: 'USD', reference, idempotencyKey: key() });
}

async function getJson(path: string): Promise<any> {
  const response = await fetch(`${network.url}${path}`);
  return response.json();
}

async function rawPost(path: string, body: string | undefined, headers: Record<string, string> = {}) {
  const response = await fetch(`${network.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  return { status: response.status, body: (await response.json()) as any };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to fail');
}

beforeAll(async () => {
  db = await createTestDatabase();
  network = await startCardNetwork({ sql: db.sql, clock, port: 0, slowMs: SLOW_MS });
  client = fastClient();
});

afterAll(async () => {
  await network?.close();
  await db?.drop();
});

describe('tokenization', () => {
  it('tokenizes a test card and keeps neither the full number nor the CVC', async () => {
    const tokenized = await client.tokenize(card('4242 4242 4242 4242', { cvc: '987' }), key());
    expect(tokenized).toMatchObject({ brand: 'visa', last4: '4242', expMonth: 12, expYear: 2030 });
    expect(tokenized.token).toMatch(/^tok_/);

    const [row] = await db.sql`select * from card_network.cards where token = ${tokenized.token}`;
    expect(row).toBeDefined();
    for (const value of Object.values(row!).map(String)) {
      expect(value).not.toContain('4242424242424242');
      expect(value).not.toBe('987');
    }
    const stored = await db.sql`select key, request_hash, body::text as body from card_network.idempotency_keys`;
    for (const value of stored.flatMap((r) => Object.values(r).map(String))) {
      expect(value).not.toContain('4242424242424242');
    }
  });

  it('refuses a number that fails the Luhn check as an invalid number', async () => {
    const error = await rejection(client.tokenize(card('4242424242424241'), key()));
    expect(error).toBeInstanceOf(CardInvalidError);
    expect((error as CardInvalidError).field).toBe('number');
  });

  it('refuses a card whose expiry is before the clock as an invalid expiry', async () => {
    const error = await rejection(client.tokenize(card('4242424242424242', { expMonth: 12, expYear: 2025 }), key()));
    expect(error).toBeInstanceOf(CardInvalidError);
    expect((error as CardInvalidError).field).toBe('expiry');
  });

  it('refuses a three-digit CVC on an amex card as an invalid CVC', async () => {
    const error = await rejection(client.tokenize(card('378282246310005', { cvc: '123' }), key()));
    expect(error).toBeInstanceOf(CardInvalidError);
    expect((error as CardInvalidError).field).toBe('cvc');
  });

  it('answers a malformed body with invalid_request, never a 500', async () => {
    const idem = { 'idempotency-key': key() };
    expect(await rawPost('/v1/tokens', '{"number": 4242', idem)).toMatchObject({ status: 400, body: { code: 'invalid_request' } });
    expect(await rawPost('/v1/tokens', JSON.stringify({ number: 4242 }), idem)).toMatchObject({
      status: 400,
      body: { code: 'invalid_request' },
    });
    expect(await rawPost('/v1/holds', JSON.stringify({ token: 'tok_x', amount: '1.005', currency: 'USD' }), idem)).toMatchObject({
      status: 400,
      body: { code: 'invalid_request' },
    });
  });

  it('requires an Idempotency-Key on every POST', async () => {
    const answer = await rawPost('/v1/tokens', JSON.stringify(card('4242424242424242')));
    expect(answer).toMatchObject({ status: 400, body: { code: 'idempotency_key_required' } });
  });
});

describe('authorization', () => {
  it('authorizes an approving card with an authorization number and a hold that lapses in seven days', async () => {
    const hold = await holdFor('4242424242424242', 25_000_000n);
    expect(hold.authorizationNumber).toMatch(/^[A-Z0-9]{6}$/);
    expect(hold.amountMicros).toBe(25_000_000n);
    expect(hold.expiresAt).toBe(START + 7 * DAY_MS);
    expect(await getJson(`/v1/holds/${hold.holdId}`)).toMatchObject({ state: 'open', amount: '25.00', currency: 'USD' });
  });

  it('declines every authorization on 4000000000000002 as generic_decline', async () => {
    const error = await rejection(holdFor('4000000000000002'));
    expect(error).toBeInstanceOf(CardDeclinedError);
    expect((error as CardDeclinedError).reason).toBe('generic_decline');
  });

  it('declines 4000000000009995 for insufficient funds', async () => {
    const error = await rejection(holdFor('4000000000009995'));
    expect((error as CardDeclinedError).reason).toBe('insufficient_funds');
  });

  it('answers an unknown token with token_not_found', async () => {
    const error = await rejection(
      client.authorize({ token: 'tok_nothing', amountMicros: 1_000_000n, currency: 'USD', reference: sessionRef(), idempotencyKey: key() }),
    );
    expect(error).toBeInstanceOf(CardNetworkRequestError);
    expect((error as CardNetworkRequestError).code).toBe('token_not_found');
  });
});

describe('capture and void', () => {
  it('captures less than was held, releases the rest and lists the charge slip', async () => {
    const hold = await holdFor('5555555555554444', 30_000_000n);
    const slip = await client.capture({ holdId: hold.holdId, amountMicros: 12_340_000n, idempotencyKey: key() });
    expect(slip).toMatchObject({ authorizationNumber: hold.authorizationNumber, amountMicros: 12_340_000n });

    expect(await getJson(`/v1/holds/${hold.holdId}`)).toMatchObject({
      state: 'captured',
      amount: '30.00',
      capturedAmount: '12.34',
    });
    const { captures } = await getJson('/v1/captures');
    expect(captures).toContainEqual(
      expect.objectContaining({ id: slip.captureId, authorizationNumber: hold.authorizationNumber, amount: '12.34' }),
    );
  });

  it('refuses to capture more than was held', async () => {
    const hold = await holdFor('4242424242424242', 10_000_000n);
    const error = await rejection(client.capture({ holdId: hold.holdId, amountMicros: 10_010_000n, idempotencyKey: key() }));
    expect(error).toBeInstanceOf(CardNetworkRequestError);
    expect((error as CardNetworkRequestError).code).toBe('amount_exceeds_hold');
    expect(await getJson(`/v1/holds/${hold.holdId}`)).toMatchObject({ state: 'open' });
  });

  it('lets only one of two concurrent captures of a hold succeed', async () => {
    const hold = await holdFor('4242424242424242', 10_000_000n);
    const results = await Promise.allSettled([
      client.capture({ holdId: hold.holdId, amountMicros: 5_000_000n, idempotencyKey: key() }),
      client.capture({ holdId: hold.holdId, amountMicros: 6_000_000n, idempotencyKey: key() }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const [{ count }] = (await db.sql`select count(*)::int as count from card_network.captures where hold_id = ${hold.holdId}`) as any;
    expect(count).toBe(1);
  });

  it('voids an open hold, voids it again harmlessly, and then refuses to capture it', async () => {
    const hold = await holdFor('4242424242424242');
    await client.void({ holdId: hold.holdId, idempotencyKey: key() });
    await client.void({ holdId: hold.holdId, idempotencyKey: key() });
    expect(await getJson(`/v1/holds/${hold.holdId}`)).toMatchObject({ state: 'voided' });
    const error = await rejection(client.capture({ holdId: hold.holdId, amountMicros: 1_000_000n, idempotencyKey: key() }));
    expect((error as CardNetworkRequestError).code).toBe('hold_not_open');
  });

  it('refuses to void a captured hold', async () => {
    const hold = await holdFor('4242424242424242');
    await client.capture({ holdId: hold.holdId, amountMicros: 1_000_000n, idempotencyKey: key() });
    const error = await rejection(client.void({ holdId: hold.holdId, idempotencyKey: key() }));
    expect((error as CardNetworkRequestError).code).toBe('hold_not_open');
  });

  it('treats a hold past its expiry instant as expired and refuses to capture it', async () => {
    const hold = await holdFor('4242424242424242');
    clock.advance(7 * DAY_MS);
    try {
      expect(await getJson(`/v1/holds/${hold.holdId}`)).toMatchObject({ state: 'expired' });
      const error = await rejection(client.capture({ holdId: hold.holdId, amountMicros: 1_000_000n, idempotencyKey: key() }));
      expect((error as CardNetworkRequestError).code).toBe('hold_not_open');
    } finally {
      clock.set(START);
    }
  });
});

describe('idempotency', () => {
  it('replays an authorization sent twice with one key and holds only once', async () => {
    const { token } = await client.tokenize(card('4242424242424242'), key());
    const request = { token, amountMicros: 5_000_000n, currency: 'USD', reference: sessionRef(), idempotencyKey: key() };
    const first = await client.authorize(request);
    const again = await client.authorize(request);
    expect(again).toEqual(first);
    const rows = await db.sql`select id from card_network.holds where token = ${token}`;
    expect(rows.map((r) => r.id)).toEqual([first.holdId]);
  });

  it('acts once when two identical requests arrive at the same time', async () => {
    const { token } = await client.tokenize(card('4242424242424242'), key());
    const request = { token, amountMicros: 5_000_000n, currency: 'USD', reference: sessionRef(), idempotencyKey: key() };
    const [a, b] = await Promise.all([client.authorize(request), client.authorize(request)]);
    expect(a.holdId).toBe(b.holdId);
    const rows = await db.sql`select id from card_network.holds where token = ${token}`;
    expect(rows).toHaveLength(1);
  });

  it('answers a capture sent twice with one key, at once or together, with one charge slip', async () => {
    const hold = await holdFor('4242424242424242', 10_000_000n);
    const request = { holdId: hold.holdId, amountMicros: 4_000_000n, idempotencyKey: key() };
    const [a, b] = await Promise.all([client.capture(request), client.capture(request)]);
    const again = await client.capture(request);
    expect(b).toEqual(a);
    expect(again).toEqual(a);
    const rows = await db.sql`select id from card_network.captures where hold_id = ${hold.holdId}`;
    expect(rows.map((r) => r.id)).toEqual([a.captureId]);
  });

  it('refuses a key reused with a different body with idempotency_key_reused', async () => {
    const { token } = await client.tokenize(card('4242424242424242'), key());
    const idempotencyKey = key();
    const reference = sessionRef();
    await client.authorize({ token, amountMicros: 5_000_000n, currency: 'USD', reference, idempotencyKey });
    const error = await rejection(client.authorize({ token, amountMicros: 6_000_000n, currency: 'USD', reference, idempotencyKey }));
    expect(error).toBeInstanceOf(CardNetworkRequestError);
    expect(error).toMatchObject({ status: 409, code: 'idempotency_key_reused' });
  });

  it('replays a decline rather than deciding again', async () => {
    const { token } = await client.tokenize(card('4000000000009987'), key());
    const request = { token, amountMicros: 5_000_000n, currency: 'USD', reference: sessionRef(), idempotencyKey: key() };
    expect(((await rejection(client.authorize(request))) as CardDeclinedError).reason).toBe('lost_card');
    expect(((await rejection(client.authorize(request))) as CardDeclinedError).reason).toBe('lost_card');
  });
});

describe('retries', () => {
  it('retries a capture that fails twice with 503 and captures exactly once', async () => {
    const hold = await holdFor('4000000000000341', 20_000_000n);
    const slip = await client.capture({ holdId: hold.holdId, amountMicros: 15_000_000n, idempotencyKey: key() });
    expect(slip.amountMicros).toBe(15_000_000n);
    const rows = await db.sql`select id from card_network.captures where hold_id = ${hold.holdId}`;
    expect(rows.map((r) => r.id)).toEqual([slip.captureId]);
  });

  it('gives up as unavailable when the retry budget runs out, and a later re-drive with the key succeeds', async () => {
    const hold = await holdFor('4000000000000341', 20_000_000n);
    const idempotencyKey = key();
    const impatient = fastClient({ maxAttempts: 2 });
    const error = await rejection(impatient.capture({ holdId: hold.holdId, amountMicros: 1_000_000n, idempotencyKey }));
    expect(error).toBeInstanceOf(CardNetworkUnavailableError);
    const slip = await impatient.capture({ holdId: hold.holdId, amountMicros: 1_000_000n, idempotencyKey });
    expect(slip.amountMicros).toBe(1_000_000n);
  });

  it('retries an authorization that timed out and gets the first hold back, not a second one', async () => {
    const { token } = await client.tokenize(card('4000000000000077'), key());
    const hurried = fastClient({ timeoutMs: SLOW_MS / 2 });
    const hold = await hurried.authorize({ token, amountMicros: 7_000_000n, currency: 'USD', reference: sessionRef(), idempotencyKey: key() });
    const rows = await db.sql`select id from card_network.holds where token = ${token}`;
    expect(rows.map((r) => r.id)).toEqual([hold.holdId]);
  });

  it('answers many slow authorizations at once without warning of a listener leak', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      const { token } = await client.tokenize(card('4000000000000077'), key());
      const holds = await Promise.all(
        Array.from({ length: 15 }, () => client.authorize({ token, amountMicros: 1_000_000n, currency: 'USD', reference: sessionRef(), idempotencyKey: key() })),
      );
      expect(new Set(holds.map((h) => h.holdId)).size).toBe(15);
      // Warnings are emitted on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).not.toContain('MaxListenersExceededWarning');
  });

  it('throws CardNetworkUnavailableError when nothing listens at the address', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const nowhere = createCardNetworkClient({ baseUrl: `http://127.0.0.1:${closedPort}`, backoffBaseMs: 1, maxAttempts: 3 });
    const error = await rejection(nowhere.tokenize(card('4242424242424242'), key()));
    expect(error).toBeInstanceOf(CardNetworkUnavailableError);
  });
});

describe('references', () => {
  it('keeps the reference given at authorization and returns it in every view of the hold', async () => {
    const reference = sessionRef();
    const hold = await holdFor('4242424242424242', 10_000_000n, reference);
    expect(hold.reference).toBe(reference);
    expect(await getJson(`/v1/holds/${hold.holdId}`)).toMatchObject({ id: hold.holdId, reference });
    const [row] = await db.sql`select reference from card_network.holds where id = ${hold.holdId}`;
    expect(row?.reference).toBe(reference);
  });

  it('filters the hold list by reference and by state', async () => {
    const reference = sessionRef();
    const first = await holdFor('4242424242424242', 10_000_000n, reference);
    const second = await holdFor('4242424242424242', 12_000_000n, reference);
    await holdFor('4242424242424242', 10_000_000n);
    await client.void({ holdId: first.holdId, idempotencyKey: key() });

    // The manual clock gives both holds the same creation instant, so their order is the ids'.
    const ids = async (query: string) => ((await getJson(`/v1/holds?${query}`)).holds as any[]).map((h) => h.id).sort();
    const ref = encodeURIComponent(reference);
    expect(await ids(`reference=${ref}`)).toEqual([first.holdId, second.holdId].sort());
    expect(await ids(`reference=${ref}&state=open`)).toEqual([second.holdId]);
    expect(await ids(`reference=${ref}&state=voided`)).toEqual([first.holdId]);
    expect(await ids(`reference=${ref}&state=captured`)).toEqual([]);
  });

  it('refuses a reference longer than 200 characters and an unknown state filter', async () => {
    const { token } = await client.tokenize(card('4242424242424242'), key());
    const tooLong = JSON.stringify({ token, amount: '1.00', currency: 'USD', reference: 'x'.repeat(201) });
    expect(await rawPost('/v1/holds', tooLong, { 'idempotency-key': key() })).toMatchObject({
      status: 400,
      body: { code: 'invalid_request' },
    });
    const response = await fetch(`${network.url}/v1/holds?state=pending`);
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toContain('application/problem+json');
    expect(await response.json()).toMatchObject({ code: 'invalid_request' });
  });
});

describe('incremental authorization', () => {
  const incrementRows = (holdId: string) =>
    db.sql`select from_micros, to_micros from card_network.increments where hold_id = ${holdId} order by created_at`;

  it('raises an open hold to the new total, keeps it open, and lets a capture take the new total', async () => {
    const hold = await holdFor('4242424242424242', 10_000_000n);
    const raised = await client.increment({ holdId: hold.holdId, amountMicros: 25_000_000n, idempotencyKey: key() });
    expect(raised).toEqual({ ...hold, amountMicros: 25_000_000n });
    expect(await getJson(`/v1/holds/${hold.holdId}`)).toMatchObject({ state: 'open', amount: '25.00' });
    expect(await incrementRows(hold.holdId)).toEqual([{ from_micros: 10_000_000n, to_micros: 25_000_000n }]);

    const slip = await client.capture({ holdId: hold.holdId, amountMicros: 25_000_000n, idempotencyKey: key() });
    expect(slip.amountMicros).toBe(25_000_000n);
  });

  it('declines increments on 4000000000003055 for insufficient funds and changes nothing', async () => {
    const hold = await holdFor('4000000000003055', 10_000_000n);
    const error = await rejection(client.increment({ holdId: hold.holdId, amountMicros: 20_000_000n, idempotencyKey: key() }));
    expect(error).toBeInstanceOf(CardDeclinedError);
    expect((error as CardDeclinedError).reason).toBe('insufficient_funds');
    expect(await getJson(`/v1/holds/${hold.holdId}`)).toMatchObject({ state: 'open', amount: '10.00' });
    expect(await incrementRows(hold.holdId)).toEqual([]);
  });

  it('refuses to lower a hold, and approves asking for the amount already held without change', async () => {
    const hold = await holdFor('4242424242424242', 10_000_000n);
    const error = await rejection(client.increment({ holdId: hold.holdId, amountMicros: 9_990_000n, idempotencyKey: key() }));
    expect(error).toBeInstanceOf(CardNetworkRequestError);
    expect(error).toMatchObject({ status: 409, code: 'amount_below_hold' });
    const same = await client.increment({ holdId: hold.holdId, amountMicros: 10_000_000n, idempotencyKey: key() });
    expect(same.amountMicros).toBe(10_000_000n);
    expect(await getJson(`/v1/holds/${hold.holdId}`)).toMatchObject({ amount: '10.00' });
    expect(await incrementRows(hold.holdId)).toEqual([]);
  });

  it('refuses to raise a hold that is no longer open', async () => {
    const captured = await holdFor('4242424242424242', 10_000_000n);
    await client.capture({ holdId: captured.holdId, amountMicros: 1_000_000n, idempotencyKey: key() });
    const voided = await holdFor('4242424242424242', 10_000_000n);
    await client.void({ holdId: voided.holdId, idempotencyKey: key() });
    for (const hold of [captured, voided]) {
      const error = await rejection(client.increment({ holdId: hold.holdId, amountMicros: 20_000_000n, idempotencyKey: key() }));
      expect(error).toMatchObject({ status: 409, code: 'hold_not_open' });
    }
    const missing = await rejection(client.increment({ holdId: 'hold_nothing', amountMicros: 20_000_000n, idempotencyKey: key() }));
    expect(missing).toMatchObject({ status: 404, code: 'hold_not_found' });
  });

  it('raises once for a key sent twice, and refuses the key with another amount', async () => {
    const hold = await holdFor('4242424242424242', 10_000_000n);
    const request = { holdId: hold.holdId, amountMicros: 15_000_000n, idempotencyKey: key() };
    const first = await client.increment(request);
    expect(await client.increment(request)).toEqual(first);
    expect(await incrementRows(hold.holdId)).toHaveLength(1);
    const error = await rejection(client.increment({ ...request, amountMicros: 16_000_000n }));
    expect(error).toMatchObject({ status: 409, code: 'idempotency_key_reused' });
  });

  it('refuses sub-cent and zero amounts as invalid requests', async () => {
    const hold = await holdFor('4242424242424242', 10_000_000n);
    for (const amount of ['20.001', '0', '-1']) {
      const answer = await rawPost(`/v1/holds/${hold.holdId}/increment`, JSON.stringify({ amount }), { 'idempotency-key': key() });
      expect(answer).toMatchObject({ status: 400, body: { code: 'invalid_request' } });
    }
  });
});

describe('open holds for reconciliation', () => {
  it('lists open holds with their references, and none that are captured, voided or lapsed', async () => {
    const open = await holdFor('4242424242424242', 10_000_000n);
    const captured = await holdFor('4242424242424242', 10_000_000n);
    await client.capture({ holdId: captured.holdId, amountMicros: 1_000_000n, idempotencyKey: key() });
    const voided = await holdFor('4242424242424242', 10_000_000n);
    await client.void({ holdId: voided.holdId, idempotencyKey: key() });

    const listed = await client.listOpenHolds();
    expect(listed).toContainEqual(open);
    const ids = listed.map((h) => h.holdId);
    expect(ids).not.toContain(captured.holdId);
    expect(ids).not.toContain(voided.holdId);
    const { holds } = await getJson('/v1/holds');
    const openIds = (holds as any[]).filter((h) => h.state === 'open').map((h) => h.id);
    expect([...ids].sort()).toEqual([...openIds].sort());

    // Every hold of this file was placed at START with seven days to run.
    clock.advance(7 * DAY_MS);
    try {
      expect(await client.listOpenHolds()).toEqual([]);
    } finally {
      clock.set(START);
    }
  });
});

describe('refunds', () => {
  async function captured(amountMicros: bigint) {
    const hold = await holdFor('4242424242424242', amountMicros);
    return client.capture({ holdId: hold.holdId, amountMicros, idempotencyKey: key() });
  }
  const refund = (captureId: string, amountMicros: bigint, idempotencyKey = key()) =>
    client.refund({ captureId, amountMicros, currency: 'USD', reference: `ref_${idempotencyKey}`, idempotencyKey });

  it('refunds a capture in parts up to what it captured, and lists the refunds of the capture', async () => {
    const slip = await captured(20_000_000n);
    const first = await refund(slip.captureId, 12_500_000n);
    expect(first).toMatchObject({ captureId: slip.captureId, amountMicros: 12_500_000n });
    expect(first.refundId).toMatch(/^re_/);
    await refund(slip.captureId, 7_500_000n);
    const { refunds } = await getJson(`/v1/refunds?capture=${slip.captureId}`);
    // The test's clock stands still: both have one instant, so their order is the ids'.
    expect(refunds.map((r: any) => r.amount).sort()).toEqual(['12.50', '7.50']);
  });

  it('refuses a refund above what the capture has left, with the amount left, and refunds nothing', async () => {
    const slip = await captured(10_000_000n);
    await refund(slip.captureId, 6_000_000n);
    const error = await rejection(refund(slip.captureId, 4_010_000n));
    expect(error).toBeInstanceOf(CardNetworkRequestError);
    expect((error as CardNetworkRequestError).code).toBe('amount_exceeds_refundable');
    const raw = await rawPost('/v1/refunds', JSON.stringify({ capture: slip.captureId, amount: '4.01' }), { 'idempotency-key': key() });
    expect(raw).toMatchObject({ status: 409, body: { code: 'amount_exceeds_refundable', refundable: '4.00' } });
    expect((await getJson(`/v1/refunds?capture=${slip.captureId}`)).refunds).toHaveLength(1);
  });

  it('answers an unknown capture with capture_not_found, and a zero or sub-cent amount as invalid', async () => {
    const unknown = await rawPost('/v1/refunds', JSON.stringify({ capture: 'ch_nothing', amount: '1.00' }), { 'idempotency-key': key() });
    expect(unknown).toMatchObject({ status: 404, body: { code: 'capture_not_found' } });
    const slip = await captured(5_000_000n);
    for (const amount of ['0.00', '1.001']) {
      const refused = await rawPost('/v1/refunds', JSON.stringify({ capture: slip.captureId, amount }), { 'idempotency-key': key() });
      expect(refused).toMatchObject({ status: 400, body: { code: 'invalid_request' } });
    }
    const unkeyed = await rawPost('/v1/refunds', JSON.stringify({ capture: slip.captureId, amount: '1.00' }));
    expect(unkeyed).toMatchObject({ status: 400, body: { code: 'idempotency_key_required' } });
  });

  it('refunds once for a key sent twice, at once or one after the other', async () => {
    const slip = await captured(10_000_000n);
    const once = key();
    const [a, b] = await Promise.all([refund(slip.captureId, 4_000_000n, once), refund(slip.captureId, 4_000_000n, once)]);
    const c = await refund(slip.captureId, 4_000_000n, once);
    expect(new Set([a.refundId, b.refundId, c.refundId]).size).toBe(1);
    expect((await getJson(`/v1/refunds?capture=${slip.captureId}`)).refunds).toHaveLength(1);
  });

  it('lets two concurrent refunds with different keys take no more than the capture together', async () => {
    const slip = await captured(10_000_000n);
    const results = await Promise.allSettled([refund(slip.captureId, 6_000_000n), refund(slip.captureId, 6_000_000n)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect((await getJson(`/v1/refunds?capture=${slip.captureId}`)).refunds.map((r: any) => r.amount)).toEqual(['6.00']);
  });
});
