import { randomUUID } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CardNetworkRequestError } from '../../src/payments/card-network-client.js';
import {
  CardDeclinedError,
  CardInvalidError,
  CardNetworkUnavailableError,
  type CardDetails,
  type CardGateway,
  type Hold,
} from '../../src/payments/gateway.js';
import { createStripeGateway, fromMinorUnits, toMinorUnits } from '../../src/payments/stripe-gateway.js';
import { startFakeStripe, type FakeStripe } from '../helpers/fake-stripe.js';

const DAY_MS = 86_400_000;
const key = () => randomUUID();
const card = (number: string, overrides: Partial<CardDetails> = {}): CardDetails => ({
  number,
  expMonth: 12,
  expYear: new Date().getUTCFullYear() + 3,
  cvc: '314',
  ...overrides,
});

let fake: FakeStripe;
let gateway: CardGateway;

function gatewayFor(server: FakeStripe, overrides: Partial<Parameters<typeof createStripeGateway>[0]> = {}) {
  return createStripeGateway({
    apiKey: server.apiKey,
    host: server.host,
    port: server.port,
    protocol: 'http',
    timeoutMs: 5000,
    maxNetworkRetries: 0,
    ...overrides,
  });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

/** An authorize request with fresh reference and key; tests override what they look at. */
function authorization(token: string, overrides: Partial<Parameters<CardGateway['authorize']>[0]> = {}) {
  const reference = `session-${randomUUID()}`;
  return { token, amountMicros: 25_000_000n, currency: 'USD', reference, idempotencyKey: key(), ...overrides };
}

async function holdFor(number = '4242424242424242') {
  const { token } = await gateway.tokenize(card(number), key());
  return gateway.authorize(authorization(token));
}

/** Another system on the same Stripe account, calling the API without tollgate's conventions. */
function neighbourOf(server: FakeStripe) {
  return new Stripe(server.apiKey, { host: server.host, port: server.port, protocol: 'http' });
}

function lastRequest(method: string, pathPattern: RegExp) {
  const found = fake.requests.filter((r) => r.method === method && pathPattern.test(r.path)).at(-1);
  if (!found) throw new Error(`no ${method} ${pathPattern} was sent`);
  return found;
}

beforeAll(async () => {
  fake = await startFakeStripe();
  gateway = gatewayFor(fake);
});

afterAll(async () => {
  await fake?.close();
});

describe('tokenize', () => {
  it('creates a card PaymentMethod and keeps only its id, brand, last four and expiry', async () => {
    const idempotencyKey = key();
    const tokenized = await gateway.tokenize(card('4242424242424242'), idempotencyKey);

    expect(tokenized).toEqual({
      token: expect.stringMatching(/^pm_/),
      brand: 'visa',
      last4: '4242',
      expMonth: 12,
      expYear: card('').expYear,
    });
    const sent = lastRequest('POST', /^\/v1\/payment_methods$/);
    expect(sent.idempotencyKey).toBe(idempotencyKey);
    expect(sent.params).toMatchObject({
      type: 'card',
      card: { number: '4242424242424242', exp_month: '12', cvc: '314' },
    });
  });

  it.each([
    ['number', card('4242424242424241')],
    ['expiry', card('4242424242424242', { expMonth: 13 })],
    ['expiry', card('4242424242424242', { expYear: 2001 })],
    ['cvc', card('4242424242424242', { cvc: '12' })],
  ] as const)('refuses bad card details as CardInvalidError(%s)', async (field, details) => {
    const error = await rejection(gateway.tokenize(details, key()));
    expect(error).toBeInstanceOf(CardInvalidError);
    expect((error as CardInvalidError).field).toBe(field);
  });
});

describe('authorize', () => {
  it('places a manual-capture hold in cents, with the reference in metadata', async () => {
    const { token } = await gateway.tokenize(card('4242424242424242'), key());
    const idempotencyKey = key();
    const reference = `session-${randomUUID()}`;
    const hold = await gateway.authorize(authorization(token, { reference, idempotencyKey }));

    const intent = fake.paymentIntent(hold.holdId)!;
    expect(intent).toMatchObject({ status: 'requires_capture', amount: 2500, currency: 'usd' });
    expect(hold).toEqual({
      holdId: expect.stringMatching(/^pi_/),
      reference,
      authorizationNumber: expect.stringMatching(/^\d{6}$/),
      amountMicros: 25_000_000n,
      expiresAt: intent.created * 1000 + 7 * DAY_MS,
    });

    const sent = lastRequest('POST', /^\/v1\/payment_intents$/);
    expect(sent.idempotencyKey).toBe(idempotencyKey);
    expect(sent.stripeVersion).toMatch(/^\d{4}-\d{2}-\d{2}\.\w+$/);
    expect(sent.params).toMatchObject({
      amount: '2500',
      currency: 'usd',
      capture_method: 'manual',
      confirm: 'true',
      payment_method: token,
      allowed_payment_method_types: ['card'],
      payment_method_options: { card: { request_incremental_authorization: 'if_available' } },
      metadata: { reference },
    });
    expect(sent.params).not.toHaveProperty('payment_method_types');
    expect(intent.metadata).toEqual({ reference, created_by: 'tollgate' });
    expect(sent.rawBody).toContain('capture_method=manual');
    expect(sent.rawBody).toContain('payment_method_options[card][request_incremental_authorization]=if_available');
    expect(sent.rawBody).toContain(`metadata[reference]=${reference}`);
  });

  it('answers a repeated call with the same key with the same PaymentIntent', async () => {
    const { token } = await gateway.tokenize(card('4242424242424242'), key());
    const request = authorization(token);
    const first = await gateway.authorize(request);
    const before = fake.requests.length;
    const second = await gateway.authorize(request);

    expect(second).toEqual(first);
    const repeats = fake.requests.slice(before).filter((r) => r.path === '/v1/payment_intents');
    expect(repeats.map((r) => r.idempotencyKey)).toEqual([request.idempotencyKey]);
  });

  it.each([
    ['4000000000000002', 'generic_decline'],
    ['4000000000009995', 'insufficient_funds'],
    ['4000000000000069', 'expired_card'],
  ] as const)('maps the decline of %s to %s', async (number, reason) => {
    const error = await rejection(holdFor(number));
    expect(error).toBeInstanceOf(CardDeclinedError);
    expect((error as CardDeclinedError).reason).toBe(reason);
  });

  it('refuses amounts that are not whole cents before calling Stripe', async () => {
    const before = fake.requests.length;
    await expect(
      gateway.authorize(authorization('pm_x', { amountMicros: 12_345_678n })),
    ).rejects.toThrow(/not a whole number of USD minor units/);
    expect(fake.requests.length).toBe(before);
  });

  it('sends zero-decimal currencies in whole units', async () => {
    const { token } = await gateway.tokenize(card('4242424242424242'), key());
    const hold = await gateway.authorize(authorization(token, { amountMicros: 500_000_000n, currency: 'JPY' }));
    expect(lastRequest('POST', /^\/v1\/payment_intents$/).params).toMatchObject({ amount: '500', currency: 'jpy' });
    expect(hold.amountMicros).toBe(500_000_000n);
  });
});

describe('capture, increment, void', () => {
  it('captures part of a hold and reports the charge', async () => {
    const hold = await holdFor();
    const capture = await gateway.capture({ holdId: hold.holdId, amountMicros: 12_340_000n, idempotencyKey: key() });

    expect(capture).toEqual({
      captureId: expect.stringMatching(/^ch_/),
      authorizationNumber: hold.authorizationNumber,
      amountMicros: 12_340_000n,
    });
    expect(lastRequest('POST', /\/capture$/).params).toMatchObject({ amount_to_capture: '1234' });
    expect(fake.paymentIntent(hold.holdId)).toMatchObject({
      status: 'succeeded',
      amount_received: 1234,
      amount_capturable: 0,
    });
  });

  it('answers a re-driven capture from the idempotency store instead of failing on the captured PI', async () => {
    const hold = await holdFor();
    const request = { holdId: hold.holdId, amountMicros: 5_000_000n, idempotencyKey: key() };
    const first = await gateway.capture(request);
    expect(await gateway.capture(request)).toEqual(first);
  });

  it('raises an open hold by incremental authorization', async () => {
    const hold = await holdFor();
    const raised = await gateway.increment({ holdId: hold.holdId, amountMicros: 40_000_000n, idempotencyKey: key() });

    expect(raised).toMatchObject({ holdId: hold.holdId, reference: hold.reference, amountMicros: 40_000_000n });
    expect(lastRequest('POST', /\/increment_authorization$/).params).toMatchObject({ amount: '4000' });
    const capture = await gateway.capture({ holdId: hold.holdId, amountMicros: 40_000_000n, idempotencyKey: key() });
    expect(capture.amountMicros).toBe(40_000_000n);
  });

  it('answers an increment to less than the hold with the hold as it is (an earlier increment whose answer was lost raised it)', async () => {
    const hold = await holdFor();
    await gateway.increment({ holdId: hold.holdId, amountMicros: 40_000_000n, idempotencyKey: key() });
    const increments = () => fake.requests.filter((r) => r.method === 'POST' && /\/increment_authorization$/.test(r.path)).length;
    const sent = increments();
    const asIs = await gateway.increment({ holdId: hold.holdId, amountMicros: 30_000_000n, idempotencyKey: key() });
    expect(asIs).toMatchObject({ holdId: hold.holdId, amountMicros: 40_000_000n });
    expect(increments()).toBe(sent);
  });

  it('maps a declined increment and leaves the hold as it was', async () => {
    const hold = await holdFor();
    fake.declineNextIncrement('insufficient_funds');
    const error = await rejection(
      gateway.increment({ holdId: hold.holdId, amountMicros: 40_000_000n, idempotencyKey: key() }),
    );

    expect(error).toBeInstanceOf(CardDeclinedError);
    expect((error as CardDeclinedError).reason).toBe('insufficient_funds');
    expect(fake.paymentIntent(hold.holdId)).toMatchObject({ status: 'requires_capture', amount_capturable: 2500 });
  });

  it('declines an increment at once when the charge does not allow one', async () => {
    const { token } = await gateway.tokenize(card('4242424242424242'), key());
    // Without request_incremental_authorization the charge reports the increment as unavailable.
    const intent = await neighbourOf(fake).paymentIntents.create({
      amount: 2500,
      currency: 'usd',
      payment_method: token,
      confirm: true,
      capture_method: 'manual',
    });
    const before = fake.requests.length;

    const error = await rejection(
      gateway.increment({ holdId: intent.id, amountMicros: 40_000_000n, idempotencyKey: key() }),
    );

    expect(error).toBeInstanceOf(CardDeclinedError);
    expect(fake.requests.slice(before).map((r) => r.path)).toEqual([`/v1/payment_intents/${intent.id}`]);
  });

  it('voids a hold, and treats a hold already canceled as voided', async () => {
    const hold = await holdFor();
    await gateway.void({ holdId: hold.holdId, idempotencyKey: key() });
    expect(fake.paymentIntent(hold.holdId)).toMatchObject({ status: 'canceled', amount_capturable: 0 });

    await expect(gateway.void({ holdId: hold.holdId, idempotencyKey: key() })).resolves.toBeUndefined();
  });

  it('does not pretend a captured hold was voided', async () => {
    const hold = await holdFor();
    await gateway.capture({ holdId: hold.holdId, amountMicros: 25_000_000n, idempotencyKey: key() });
    const error = await rejection(gateway.void({ holdId: hold.holdId, idempotencyKey: key() }));
    expect(error).toBeInstanceOf(CardNetworkRequestError);
    expect((error as CardNetworkRequestError).code).toBe('payment_intent_unexpected_state');
  });

  it('reports an unknown hold as a refused request', async () => {
    const error = await rejection(
      gateway.capture({ holdId: 'pi_unknown', amountMicros: 1_000_000n, idempotencyKey: key() }),
    );
    expect(error).toBeInstanceOf(CardNetworkRequestError);
    expect(error).toMatchObject({ status: 404, code: 'resource_missing' });
  });
});

describe('refund', () => {
  it('refunds part of a captured charge in cents, with tollgate’s reference, once per key', async () => {
    const hold = await holdFor();
    const capture = await gateway.capture({ holdId: hold.holdId, amountMicros: 20_000_000n, idempotencyKey: key() });
    const request = { captureId: capture.captureId, amountMicros: 12_500_000n, currency: 'USD', reference: 'refund-1', idempotencyKey: key() };
    const refund = await gateway.refund(request);
    expect(refund).toEqual({ refundId: expect.stringMatching(/^re_/), captureId: capture.captureId, amountMicros: 12_500_000n });
    expect(lastRequest('POST', /\/v1\/refunds$/).params).toMatchObject({ charge: capture.captureId, amount: '1250', metadata: { reference: 'refund-1', created_by: 'tollgate' } });
    expect(await gateway.refund(request)).toEqual(refund);
  });

  it('reports a refund above what the charge has left as a refused request', async () => {
    const hold = await holdFor();
    const capture = await gateway.capture({ holdId: hold.holdId, amountMicros: 5_000_000n, idempotencyKey: key() });
    const error = await rejection(gateway.refund({ captureId: capture.captureId, amountMicros: 5_010_000n, currency: 'USD', reference: 'refund-2', idempotencyKey: key() }));
    expect(error).toBeInstanceOf(CardNetworkRequestError);
    expect((error as CardNetworkRequestError).code).toBe('amount_too_large');
  });
});

describe('listOpenHolds', () => {
  it('walks every page and keeps only tollgate PaymentIntents awaiting capture', async () => {
    const now = Date.UTC(2026, 5, 1);
    const own = await startFakeStripe({ now: () => now });
    try {
      const client = gatewayFor(own, { now: () => now });
      // A hold another system placed on the same account is not tollgate's to reconcile.
      const { token: theirs } = await client.tokenize(card('4242424242424242'), key());
      await neighbourOf(own).paymentIntents.create({
        amount: 999,
        currency: 'usd',
        payment_method: theirs,
        confirm: true,
        capture_method: 'manual',
      });
      const { token } = await client.tokenize(card('4242424242424242'), key());
      const holds: Hold[] = [];
      for (let i = 0; i < 103; i++) {
        holds.push(await client.authorize(authorization(token, { amountMicros: 1_000_000n })));
      }
      await client.capture({ holdId: holds[0]!.holdId, amountMicros: 1_000_000n, idempotencyKey: key() });
      await client.void({ holdId: holds[1]!.holdId, idempotencyKey: key() });

      const open = await client.listOpenHolds();

      expect(open.map((h) => h.holdId).sort()).toEqual(holds.slice(2).map((h) => h.holdId).sort());
      expect(open.find((h) => h.holdId === holds[50]!.holdId)).toEqual(holds[50]);
      const pages = own.requests.filter((r) => r.method === 'GET' && r.path === '/v1/payment_intents');
      expect(pages).toHaveLength(2);
      const since = String(Math.floor((now - 31 * DAY_MS) / 1000));
      expect(pages[0]!.params).toMatchObject({ limit: '100', created: { gte: since } });
      expect(pages[1]!.params).toMatchObject({ limit: '100', starting_after: expect.stringMatching(/^pi_/) });
    } finally {
      await own.close();
    }
  });
});

describe('failures', () => {
  it('gives up with CardNetworkUnavailableError after retrying 5xx with the same key', async () => {
    const client = gatewayFor(fake, { maxNetworkRetries: 1 });
    const { token } = await client.tokenize(card('4242424242424242'), key());
    const idempotencyKey = key();
    const before = fake.requests.length;
    fake.failNext(2, 503);

    const error = await rejection(client.authorize(authorization(token, { idempotencyKey })));

    expect(error).toBeInstanceOf(CardNetworkUnavailableError);
    expect(fake.requests.slice(before).map((r) => r.idempotencyKey)).toEqual([idempotencyKey, idempotencyKey]);
  });

  it('gives up with CardNetworkUnavailableError when nothing listens', async () => {
    const port = await closedPort();
    const client = gatewayFor(fake, { port });
    expect(await rejection(client.listOpenHolds())).toBeInstanceOf(CardNetworkUnavailableError);
  });

  it('reports a wrong API key as a refused request, not as an outage', async () => {
    const client = gatewayFor(fake, { apiKey: 'sk_test_wrong' });
    const error = await rejection(client.tokenize(card('4242424242424242'), key()));
    expect(error).toBeInstanceOf(CardNetworkRequestError);
    expect(error).toMatchObject({ status: 401 });
  });
});

describe('amount conversion', () => {
  it('converts exactly and refuses what would need rounding or guessing', () => {
    expect(toMinorUnits(12_340_000n, 'usd')).toBe(1234);
    expect(toMinorUnits(12_340_000n, 'GBP')).toBe(1234);
    expect(toMinorUnits(7_000_000n, 'JPY')).toBe(7);
    expect(fromMinorUnits(1234, 'eur')).toBe(12_340_000n);
    expect(() => toMinorUnits(1_005_000n, 'usd')).toThrow();
    expect(() => toMinorUnits(1_500_000n, 'jpy')).toThrow();
    expect(() => toMinorUnits(0n, 'usd')).toThrow();
    expect(() => toMinorUnits(1_000_000n, 'kwd')).toThrow(/no minor unit for KWD/);
  });
});

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
