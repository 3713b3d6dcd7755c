import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { CardNetworkRequestError, createCardNetworkClient } from '../../src/payments/card-network-client.js';
import {
  CardDeclinedError,
  CardNetworkUnavailableError,
  type CardDetails,
  type CardGateway,
  type Hold,
} from '../../src/payments/gateway.js';
import { startCardNetwork, type RunningCardNetwork } from '../../src/payments/sandbox/start.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { TEST_FAULTS_TOKEN } from '../helpers/operators.js';

const faultsAuth = { authorization: `Bearer ${TEST_FAULTS_TOKEN}` };

const DAY_MS = 86_400_000;
const START = Date.UTC(2026, 0, 1);
/** Every attempt's deadline in these tests; the injected waits are set above or below it. */
const TIMEOUT_MS = 250;

let db: TestDatabase;
let network: RunningCardNetwork;
let client: CardGateway;
const clock = new ManualClock(START);

const key = () => randomUUID();
const sessionRef = () => `sess_${randomUUID()}`;
const card = (number: string): CardDetails => ({ number, expMonth: 12, expYear: 2030, cvc: '314' });

function clientWith(overrides: Partial<Parameters<typeof createCardNetworkClient>[0]> = {}) {
  return createCardNetworkClient({ baseUrl: network.url, timeoutMs: TIMEOUT_MS, backoffBaseMs: 5, backoffMaxMs: 20, ...overrides });
}

async function faultApi(method: 'GET' | 'PUT' | 'DELETE', body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${network.url}/v1/faults`, {
    method,
    headers: body === undefined ? faultsAuth : { ...faultsAuth, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

async function putFaults(body: unknown) {
  const answer = await faultApi('PUT', body);
  expect(answer.status).toBe(200);
  return answer.body;
}

const calls = async () => (await faultApi('GET')).body.calls as Record<string, number>;

async function getJson(path: string): Promise<any> {
  return (await fetch(`${network.url}${path}`)).json();
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to fail');
}

async function newToken(number = '4242424242424242') {
  return (await client.tokenize(card(number), key())).token;
}

async function newHold(amountMicros = 20_000_000n): Promise<Hold> {
  const token = await newToken();
  return client.authorize({ token, amountMicros, currency: 'USD', reference: sessionRef(), idempotencyKey: key() });
}

/**
 * One faulted phase as a test drives it: `arrange` runs before the faults are set (and so is
 * not counted), `act` is the call under test with its idempotency key, `effects` counts what
 * the network recorded.
 */
interface PhaseCase {
  phase: 'authorize' | 'capture';
  arrange(): Promise<{ act(gateway: CardGateway, idempotencyKey: string): Promise<{ id: string }>; effects(): Promise<string[]> }>;
}

const PHASE_CASES: PhaseCase[] = [
  {
    phase: 'authorize',
    async arrange() {
      const token = await newToken();
      const reference = sessionRef();
      return {
        act: async (gateway, idempotencyKey) => {
          const hold = await gateway.authorize({ token, amountMicros: 5_000_000n, currency: 'USD', reference, idempotencyKey });
          return { id: hold.holdId };
        },
        effects: async () => (await db.sql`select id from card_network.holds where token = ${token}`).map((r) => r.id as string),
      };
    },
  },
  {
    phase: 'capture',
    async arrange() {
      const hold = await newHold();
      return {
        act: async (gateway, idempotencyKey) => {
          const slip = await gateway.capture({ holdId: hold.holdId, amountMicros: 4_000_000n, idempotencyKey });
          return { id: slip.captureId };
        },
        effects: async () =>
          (await db.sql`select id from card_network.captures where hold_id = ${hold.holdId}`).map((r) => r.id as string),
      };
    },
  },
];

beforeAll(async () => {
  db = await createTestDatabase();
  network = await startCardNetwork({ sql: db.sql, clock, port: 0, faultsToken: TEST_FAULTS_TOKEN });
  client = clientWith();
});

afterAll(async () => {
  await network?.close();
  await db?.drop();
});

beforeEach(async () => {
  expect((await faultApi('DELETE')).status).toBe(200);
  clock.set(START);
});

describe('the fault API', () => {
  it('stores rules with their defaults, reports them, and clears them', async () => {
    const put = await putFaults({ seed: 42, rules: [{ phase: 'authorize', fault: 'error' }] });
    const expected = {
      seed: 42,
      rules: [{ phase: 'authorize', fault: 'error', probability: 1, times: null, delayMs: 5000, used: 0 }],
      holdValidityMs: 7 * DAY_MS,
      calls: { tokenize: 0, authorize: 0, increment: 0, capture: 0, void: 0, refund: 0 },
    };
    expect(put).toEqual(expected);
    expect((await faultApi('GET')).body).toEqual(expected);

    const cleared = await faultApi('DELETE');
    expect(cleared.body).toMatchObject({ rules: [], holdValidityMs: 7 * DAY_MS });
    // Cleared means calls work again.
    expect((await newHold()).holdId).toMatch(/^hold_/);
  });

  it('refuses a malformed configuration as invalid_request', async () => {
    for (const body of [
      { rules: [{ phase: 'chargeback', fault: 'error' }] },
      { rules: [{ phase: 'authorize', fault: 'error', probability: 1.5 }] },
      { rules: [{ phase: 'authorize', fault: 'error', time: 2 }] },
      { rules: [{ phase: 'authorize', fault: 'error', times: 0 }] },
      { holdValidityMs: -1 },
    ]) {
      const response = await fetch(`${network.url}/v1/faults`, {
        method: 'PUT',
        headers: { ...faultsAuth, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(400);
      expect(response.headers.get('content-type')).toContain('application/problem+json');
      expect(await response.json()).toMatchObject({ code: 'invalid_request' });
    }
  });

  it('counts the calls of each phase, so a test can tell that no authorization was asked for', async () => {
    // A deadline no busy machine misses: a retry of the tokenization would be counted too.
    await clientWith({ timeoutMs: 30_000 }).tokenize(card('4242424242424242'), key());
    expect(await calls()).toEqual({ tokenize: 1, authorize: 0, increment: 0, capture: 0, void: 0, refund: 0 });
  });

  it('never faults the reporting endpoints or the fault API itself', async () => {
    const hold = await newHold();
    const phases = ['tokenize', 'authorize', 'increment', 'capture', 'void'];
    await putFaults({ rules: phases.map((phase) => ({ phase, fault: 'error' })) });
    for (const path of ['/v1/holds', `/v1/holds/${hold.holdId}`, '/v1/captures', '/v1/increments', '/v1/faults']) {
      expect((await fetch(`${network.url}${path}`, { headers: faultsAuth })).status).toBe(200);
    }
    expect(await client.listOpenHolds()).toContainEqual(hold);
  });

  it('answers its fault API only with the fault token, and binds loopback', async () => {
    expect(new URL(network.url).hostname).toBe('127.0.0.1');
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const none = await fetch(`${network.url}/v1/faults`, { method, headers: { 'content-type': 'application/json' }, body: method === 'PUT' ? '{}' : null });
      expect(none.status).toBe(401);
      const wrong = await fetch(`${network.url}/v1/faults`, { method: 'GET', headers: { authorization: 'Bearer not-the-fault-token-at-all' } });
      expect(wrong.status).toBe(401);
    }
    const unconfigured = await startCardNetwork({ sql: db.sql, clock, port: 0 });
    try {
      const off = await fetch(`${unconfigured.url}/v1/faults`, { method: 'PUT', headers: { ...faultsAuth, 'content-type': 'application/json' }, body: '{}' });
      expect(off.status).toBe(403);
      expect(await off.json()).toMatchObject({ code: 'faults_disabled' });
    } finally {
      await unconfigured.close();
    }
  });

  it('stops applying a rule once its times are used up', async () => {
    await putFaults({ rules: [{ phase: 'tokenize', fault: 'error', times: 1 }] });
    const once = clientWith({ maxAttempts: 1 });
    expect(await rejection(once.tokenize(card('4242424242424242'), key()))).toBeInstanceOf(CardNetworkUnavailableError);
    await once.tokenize(card('4242424242424242'), key());
    expect((await faultApi('GET')).body.rules[0].used).toBe(1);
  });
});

describe.each(PHASE_CASES)('faults on $phase', ({ phase, arrange }) => {
  it('error: answers 503 without acting, and the client retries through two of them to one effect', async () => {
    const { act, effects } = await arrange();
    await putFaults({ rules: [{ phase, fault: 'error', times: 2 }] });
    const result = await act(client, key());
    expect(await effects()).toEqual([result.id]);
    expect((await calls())[phase]).toBe(3);
  });

  it('error without end: the client gives up as unavailable with nothing done, and a re-drive with the key acts once', async () => {
    const { act, effects } = await arrange();
    await putFaults({ rules: [{ phase, fault: 'error' }] });
    const idempotencyKey = key();
    const error = await rejection(act(clientWith({ maxAttempts: 3 }), idempotencyKey));
    expect(error).toBeInstanceOf(CardNetworkUnavailableError);
    expect(await effects()).toEqual([]);
    expect((await calls())[phase]).toBe(3);

    await faultApi('DELETE');
    const result = await act(client, idempotencyKey);
    expect(await effects()).toEqual([result.id]);
  });

  it('drop_after_commit: the effect exists though no answer came, and the retry gets the stored answer', async () => {
    const { act, effects } = await arrange();
    await putFaults({ rules: [{ phase, fault: 'drop_after_commit', times: 1 }] });
    const idempotencyKey = key();

    const lost = await rejection(act(clientWith({ maxAttempts: 1 }), idempotencyKey));
    expect(lost).toBeInstanceOf(CardNetworkUnavailableError);
    const committed = await effects();
    expect(committed).toHaveLength(1);

    const result = await act(client, idempotencyKey);
    expect(result.id).toBe(committed[0]);
    expect(await effects()).toEqual(committed);
  });

  it('drop_after_commit: a retrying client ends with exactly one effect', async () => {
    const { act, effects } = await arrange();
    await putFaults({ rules: [{ phase, fault: 'drop_after_commit', times: 1 }] });
    const result = await act(client, key());
    expect(await effects()).toEqual([result.id]);
    expect((await calls())[phase]).toBe(2);
  });

  it('timeout_before_commit: the line goes dead after the delay with nothing done', async () => {
    const { act, effects } = await arrange();
    const delayMs = TIMEOUT_MS + 150;
    await putFaults({ rules: [{ phase, fault: 'timeout_before_commit', delayMs, times: 1 }] });
    const idempotencyKey = key();
    const error = await rejection(act(clientWith({ maxAttempts: 1 }), idempotencyKey));
    expect(error).toBeInstanceOf(CardNetworkUnavailableError);
    // Past the hang-up as well as the client's deadline: still nothing.
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    expect(await effects()).toEqual([]);

    const result = await act(client, idempotencyKey);
    expect(await effects()).toEqual([result.id]);
  });

  it('timeout_before_commit longer than the client waits: the client retries and ends with exactly one effect', async () => {
    const { act, effects } = await arrange();
    await putFaults({ rules: [{ phase, fault: 'timeout_before_commit', delayMs: TIMEOUT_MS * 3, times: 1 }] });
    const result = await act(client, key());
    expect(await effects()).toEqual([result.id]);
  });

  it('timeout_before_commit shorter than the client waits: the hang-up is retried like any dropped line', async () => {
    const { act, effects } = await arrange();
    await putFaults({ rules: [{ phase, fault: 'timeout_before_commit', delayMs: 20, times: 1 }] });
    const result = await act(client, key());
    expect(await effects()).toEqual([result.id]);
    expect((await calls())[phase]).toBe(2);
  });

  it('slow: acts first, and answers only after the delay', async () => {
    const { act, effects } = await arrange();
    await putFaults({ rules: [{ phase, fault: 'slow', delayMs: 150 }] });
    let answered = false;
    // A deadline far past the delay: on a busy machine 250 ms left too little room for the work itself, and the client retried.
    const call = act(clientWith({ timeoutMs: 5_000 }), key()).finally(() => {
      answered = true;
    });
    // The work is committed while the answer is still held back.
    let done = await effects();
    while (done.length === 0 && !answered) {
      await sleep(5);
      done = await effects();
    }
    expect({ committed: done.length, answered }).toEqual({ committed: 1, answered: false });
    const result = await call;
    expect(done).toEqual([result.id]);
    expect(await effects()).toEqual([result.id]);
    expect((await calls())[phase]).toBe(1);
  });

  it('slow beyond the client deadline: the work is done once and the retry is answered from the stored answer', async () => {
    const { act, effects } = await arrange();
    await putFaults({ rules: [{ phase, fault: 'slow', delayMs: TIMEOUT_MS * 2, times: 1 }] });
    const result = await act(client, key());
    expect(await effects()).toEqual([result.id]);
    expect((await calls())[phase]).toBe(2);
  });

  it('decline: refuses as processing_error without acting, and the client does not retry', async () => {
    const { act, effects } = await arrange();
    await putFaults({ rules: [{ phase, fault: 'decline' }] });
    const error = await rejection(act(client, key()));
    expect(error).toBeInstanceOf(CardDeclinedError);
    expect((error as CardDeclinedError).reason).toBe('processing_error');
    expect(await effects()).toEqual([]);
    expect((await calls())[phase]).toBe(1);
  });
});

describe('a retry declined while an earlier attempt of its key is still arriving', () => {
  it('waits for that attempt, whose body was still being read, and answers the hold it placed', async () => {
    const token = await newToken();
    const idempotencyKey = key();
    const body = JSON.stringify({ token, amount: '5.00', currency: 'USD', reference: sessionRef() });
    // The first attempt's headers and half its body are on the line; the rest comes later.
    const first = new Promise<{ status: number; body: any }>((resolve, reject) => {
      const sent = httpRequest(`${network.url}/v1/holds`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'idempotency-key': idempotencyKey },
      });
      sent.on('response', (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) }));
      });
      sent.on('error', reject);
      sent.write(body.slice(0, 20));
      setTimeout(() => sent.end(body.slice(20)), 300);
    });
    await sleep(100);
    // The retry draws a decline: the line's, not the card's.
    await putFaults({ rules: [{ phase: 'authorize', fault: 'decline', times: 1 }] });
    const retry = await fetch(`${network.url}/v1/holds`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
      body,
    });
    const placed = await first;
    expect(placed.status).toBe(201);
    // Not declined while a hold was being placed under its key: it replays that hold.
    expect(retry.status).toBe(201);
    expect(((await retry.json()) as { id: string }).id).toBe(placed.body.id);
    expect(await db.sql`select id from card_network.holds where token = ${token}`).toHaveLength(1);
  });
});

describe('a retry declined while an earlier attempt of its key is still committing', () => {
  it('waits for that attempt, whose client hung up mid-commit, and answers the hold it placed', async () => {
    const token = await newToken();
    const idempotencyKey = key();
    const body = JSON.stringify({ token, amount: '5.00', currency: 'USD', reference: sessionRef() });
    const post = (signal?: AbortSignal) =>
      fetch(`${network.url}/v1/holds`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey }, body, ...(signal ? { signal } : {}) });
    // Holds cannot be written for now: the first attempt waits inside its handler, mid-commit.
    const blocker = await db.sql.reserve();
    await blocker`begin`;
    await blocker`lock table card_network.holds in exclusive mode`;
    try {
      const hangUp = new AbortController();
      const first = post(hangUp.signal).catch((error: unknown) => error);
      const waiting = async () => {
        const [row] = await db.sql<{ count: number }[]>`
          select count(*)::int as count from pg_locks where relation = 'card_network.holds'::regclass and not granted`;
        return row!.count;
      };
      while ((await waiting()) === 0) await sleep(20);
      // Its client gives up (tollgate's attempt timeout) and retries; the retry draws a decline.
      hangUp.abort();
      expect(await first).toBeInstanceOf(Error);
      await putFaults({ rules: [{ phase: 'authorize', fault: 'decline', times: 1 }] });
      const retry = post();
      await sleep(200);
      await blocker`rollback`;
      const answer = await retry;
      // Not declined while a hold was being placed under its key: it replays that hold.
      expect(answer.status).toBe(201);
      const holds = await db.sql<{ id: string }[]>`select id from card_network.holds where token = ${token}`;
      expect(holds).toHaveLength(1);
      expect(((await answer.json()) as { id: string }).id).toBe(holds[0]!.id);
    } finally {
      await blocker`rollback`.catch(() => undefined);
      blocker.release();
    }
  });
});

describe('an attempt of a key that reaches the network after the key was declined', () => {
  it('replays the decline instead of placing a hold its sender was told was never placed', async () => {
    const token = await newToken();
    const idempotencyKey = key();
    const body = JSON.stringify({ token, amount: '5.00', currency: 'USD', reference: sessionRef() });
    const post = () => fetch(`${network.url}/v1/holds`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey }, body });
    // The retry goes through first and is declined on the line; the sender takes it as final.
    await putFaults({ rules: [{ phase: 'authorize', fault: 'decline', times: 1 }] });
    const retry = await post();
    expect(retry.status).toBe(402);
    // The first attempt, held up on the line until now, arrives.
    const late = await post();
    expect(late.status).toBe(402);
    expect(await late.json()).toMatchObject({ code: 'card_declined', reason: 'processing_error' });
    expect(await db.sql`select id from card_network.holds where token = ${token}`).toHaveLength(0);
  });
});

describe('faults on the other phases', () => {
  it('an increment whose answer is dropped is raised once and the retry gets the raised hold', async () => {
    const hold = await newHold(10_000_000n);
    await putFaults({ rules: [{ phase: 'increment', fault: 'drop_after_commit', times: 1 }] });
    const raised = await client.increment({ holdId: hold.holdId, amountMicros: 30_000_000n, idempotencyKey: key() });
    expect(raised.amountMicros).toBe(30_000_000n);
    const rows = await db.sql`select to_micros from card_network.increments where hold_id = ${hold.holdId}`;
    expect(rows.map((r) => r.to_micros)).toEqual([30_000_000n]);
  });

  it('a declined void leaves the hold open', async () => {
    const hold = await newHold();
    await putFaults({ rules: [{ phase: 'void', fault: 'decline' }] });
    expect(await rejection(client.void({ holdId: hold.holdId, idempotencyKey: key() }))).toBeInstanceOf(CardDeclinedError);
    expect(await getJson(`/v1/holds/${hold.holdId}`)).toMatchObject({ state: 'open' });
  });

  it('a rule for one phase leaves the others alone', async () => {
    await putFaults({ rules: [{ phase: 'capture', fault: 'error' }] });
    const hold = await newHold();
    await client.void({ holdId: hold.holdId, idempotencyKey: key() });
    expect(await calls()).toMatchObject({ tokenize: 1, authorize: 1, void: 1, capture: 0 });
  });
});

describe('probability', () => {
  async function outcomes(seed: number): Promise<string> {
    const token = await newToken();
    await putFaults({ seed, rules: [{ phase: 'authorize', fault: 'error', probability: 0.5 }] });
    const once = clientWith({ maxAttempts: 1 });
    let pattern = '';
    for (let i = 0; i < 24; i++) {
      const request = { token, amountMicros: 1_000_000n, currency: 'USD', reference: sessionRef(), idempotencyKey: key() };
      pattern += (await once.authorize(request).then(
        () => '.',
        (error: unknown) => (error instanceof CardNetworkUnavailableError ? 'x' : 'unexpected'),
      ));
    }
    return pattern;
  }

  it('draws the same faults for the same seed', async () => {
    const first = await outcomes(1234);
    const used = (await faultApi('GET')).body.rules[0].used;
    expect(first).toMatch(/^[.x]{24}$/);
    expect(first).toContain('.');
    expect(first).toContain('x');
    expect(used).toBe([...first].filter((c) => c === 'x').length);
    expect(await outcomes(1234)).toBe(first);
  });

  it('reports the seed it drew when none was given, so the run can be replayed', async () => {
    const { seed } = await putFaults({ rules: [{ phase: 'authorize', fault: 'error', probability: 0.5 }] });
    expect(Number.isInteger(seed)).toBe(true);
  });

  it('never fires a rule of probability 0', async () => {
    await putFaults({ rules: [{ phase: 'authorize', fault: 'error', probability: 0 }] });
    await newHold();
    expect((await faultApi('GET')).body.rules[0].used).toBe(0);
  });
});

describe('hold validity set through the API', () => {
  it('makes new holds lapse after the chosen time, and DELETE brings back the default', async () => {
    expect(await putFaults({ holdValidityMs: 2000 })).toMatchObject({ holdValidityMs: 2000 });
    const short = await newHold(10_000_000n);
    expect(short.expiresAt).toBe(START + 2000);

    clock.advance(1999);
    expect(await getJson(`/v1/holds/${short.holdId}`)).toMatchObject({ state: 'open' });
    clock.advance(1);
    expect(await getJson(`/v1/holds/${short.holdId}`)).toMatchObject({ state: 'expired' });
    expect((await client.listOpenHolds()).map((h) => h.holdId)).not.toContain(short.holdId);
    const increment = await rejection(client.increment({ holdId: short.holdId, amountMicros: 20_000_000n, idempotencyKey: key() }));
    expect(increment).toBeInstanceOf(CardNetworkRequestError);
    expect(increment).toMatchObject({ code: 'hold_not_open' });
    const capture = await rejection(client.capture({ holdId: short.holdId, amountMicros: 1_000_000n, idempotencyKey: key() }));
    expect(capture).toMatchObject({ code: 'hold_not_open' });

    await faultApi('DELETE');
    const normal = await newHold();
    expect(normal.expiresAt).toBe(clock.now() + 7 * DAY_MS);
  });
});
