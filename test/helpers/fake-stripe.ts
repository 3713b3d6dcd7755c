import { randomBytes, randomInt } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import formbody from '@fastify/formbody';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';

/**
 * A test double for Stripe's HTTP API: just the endpoints the Stripe gateway calls, answering
 * with the documented shapes (objects, list envelopes, error bodies and statuses), the
 * documented test-card outcomes, and Idempotency-Key replay. It is not Stripe: fields the
 * gateway never reads are mostly left out, and nothing here was checked against the real API.
 */
export interface RecordedRequest {
  method: string;
  path: string;
  idempotencyKey: string | undefined;
  stripeVersion: string | undefined;
  /** The form body (POST) or query (GET), nested the way Stripe reads bracket keys. */
  params: Params;
  rawBody: string;
}

export interface FakeStripe {
  url: string;
  host: string;
  port: number;
  apiKey: string;
  requests: RecordedRequest[];
  paymentIntent(id: string): Json | undefined;
  /** The next `count` requests get this status before reaching an endpoint, like a failing load balancer. */
  failNext(count: number, status?: number): void;
  /** Test control, not a Stripe feature: the next increment_authorization is declined with this code. */
  declineNextIncrement(declineCode: string): void;
  close(): Promise<void>;
}

type Params = { [key: string]: Param };
type Param = string | Params | Param[];
type Json = Record<string, any>;

interface Answer {
  status: number;
  body: Json;
  /** Stripe keeps no idempotent result when parameters fail validation. */
  replayable?: boolean;
}

const DAY_S = 86_400;
const RAW = Symbol('raw body');

/** Documented test cards: what a PaymentIntent confirmation does with each. */
const DECLINES: Record<string, { code: string; decline_code: string; message: string }> = {
  '4000000000000002': { code: 'card_declined', decline_code: 'generic_decline', message: 'Your card was declined.' },
  '4000000000009995': {
    code: 'card_declined',
    decline_code: 'insufficient_funds',
    message: 'Your card has insufficient funds.',
  },
  '4000000000000069': { code: 'expired_card', decline_code: 'expired_card', message: 'Your card has expired.' },
};

const CANCELABLE = [
  'requires_payment_method',
  'requires_capture',
  'requires_confirmation',
  'requires_action',
  'processing',
];

export async function startFakeStripe(options: { apiKey?: string; now?: () => number } = {}): Promise<FakeStripe> {
  const apiKey = options.apiKey ?? `sk_test_${id(24)}`;
  const now = () => Math.floor((options.now ?? Date.now)() / 1000);
  const requests: RecordedRequest[] = [];
  const methods = new Map<string, { object: Json; number: string }>();
  const intents = new Map<string, Json>();
  const charges = new Map<string, Json>();
  const idempotent = new Map<string, { method: string; path: string; params: string; answer: Answer }>();
  let faults: { remaining: number; status: number } = { remaining: 0, status: 503 };
  let incrementDecline: string | null = null;

  const app = Fastify({
    logger: false,
    forceCloseConnections: true,
    routerOptions: { querystringParser: (text) => parseForm(text) },
  });
  await app.register(formbody, { parser: (text) => Object.assign(parseForm(text), { [RAW]: text }) });

  app.addHook('preHandler', async (request, reply) => {
    const params = (request.method === 'GET' ? request.query : request.body) as Params | undefined;
    requests.push({
      method: request.method,
      path: request.url.split('?')[0]!,
      idempotencyKey: header(request, 'idempotency-key'),
      stripeVersion: header(request, 'stripe-version'),
      params: params ?? {},
      rawBody: (params as { [RAW]?: string } | undefined)?.[RAW] ?? '',
    });
    const auth = header(request, 'authorization');
    if (auth !== `Bearer ${apiKey}`) {
      const message = auth
        ? `Invalid API Key provided: ${auth.replace(/^Bearer /, '').slice(0, 8)}****`
        : 'You did not provide an API key.';
      return send(reply, { status: 401, body: error('invalid_request_error', { message }) });
    }
    if (faults.remaining > 0) {
      faults.remaining--;
      return send(reply, { status: faults.status, body: error('api_error', { message: 'Injected failure.' }) });
    }
  });

  /** Stripe's v1 idempotency: the first saved answer for a key is replayed; other parameters are refused. */
  function idempotently(handler: (request: FastifyRequest) => Answer) {
    return async (request: FastifyRequest, reply: FastifyReply) => {
      const key = header(request, 'idempotency-key');
      const path = request.url.split('?')[0]!;
      const params = JSON.stringify(request.body ?? {});
      const seen = key ? idempotent.get(key) : undefined;
      if (seen) {
        if (seen.method !== request.method || seen.path !== path || seen.params !== params) {
          const message =
            'Keys for idempotent requests can only be used with the same parameters they were first used with. ' +
            `Try using a key other than '${key}' if you meant to execute a different request.`;
          return send(reply, { status: 400, body: error('idempotency_error', { message }) });
        }
        reply.header('idempotent-replayed', 'true');
        return send(reply, seen.answer, key);
      }
      const answer = handler(request);
      if (key && answer.replayable !== false) idempotent.set(key, { method: request.method, path, params, answer });
      return send(reply, answer, key);
    };
  }

  app.post(
    '/v1/payment_methods',
    idempotently((request) => {
      const body = (request.body ?? {}) as Params;
      if (body.type !== 'card') return invalid('parameter_invalid_empty', 'type', 'Only cards are faked.');
      const card = (typeof body.card === 'object' && !Array.isArray(body.card) ? body.card : {}) as Params;
      const number = String(card.number ?? '');
      const month = Number(card.exp_month);
      const year = Number(card.exp_year);
      const today = new Date(now() * 1000);
      const cardError = (code: string, message: string): Answer => ({
        status: 402,
        body: error('card_error', { code, message }),
      });
      if (!/^\d{12,19}$/.test(number) || !luhn(number)) {
        return cardError('incorrect_number', 'Your card number is incorrect.');
      }
      if (!Number.isInteger(month) || month < 1 || month > 12) {
        return cardError('invalid_expiry_month', "Your card's expiration month is invalid.");
      }
      if (!Number.isInteger(year) || year < today.getUTCFullYear()) {
        return cardError('invalid_expiry_year', "Your card's expiration year is invalid.");
      }
      if (year === today.getUTCFullYear() && month < today.getUTCMonth() + 1) {
        return cardError('invalid_expiry_month', "Your card's expiration month is invalid.");
      }
      if (!/^\d{3,4}$/.test(String(card.cvc ?? ''))) {
        return cardError('invalid_cvc', "Your card's security code is invalid.");
      }
      const brand = brandOf(number);
      const method = {
        id: `pm_${id(24)}`,
        object: 'payment_method',
        billing_details: { address: null, email: null, name: null, phone: null },
        card: {
          brand,
          checks: { address_line1_check: null, address_postal_code_check: null, cvc_check: 'unchecked' },
          country: 'US',
          display_brand: brand,
          exp_month: month,
          exp_year: year,
          funding: 'credit',
          last4: number.slice(-4),
          wallet: null,
        },
        created: now(),
        customer: null,
        livemode: false,
        metadata: {},
        type: 'card',
      };
      methods.set(method.id, { object: method, number });
      return { status: 200, body: method };
    }),
  );

  app.post(
    '/v1/payment_intents',
    idempotently((request) => {
      const body = (request.body ?? {}) as Params;
      if (body.payment_method_types !== undefined) {
        // Documented for API 2026-09-30.endive, the version stripe 23.x pins.
        return invalid(
          'payment_method_types_no_longer_supported',
          'payment_method_types',
          'payment_method_types is no longer supported; use allowed_payment_method_types.',
        );
      }
      const amount = Number(body.amount);
      if (!Number.isSafeInteger(amount) || amount < 1) {
        return invalid('parameter_invalid_integer', 'amount', 'Invalid integer.');
      }
      if (typeof body.currency !== 'string' || !/^[a-z]{3}$/.test(body.currency)) {
        return invalid('parameter_missing', 'currency', 'Missing required param: currency.');
      }
      const pmId = typeof body.payment_method === 'string' ? body.payment_method : null;
      const method = pmId ? methods.get(pmId) : undefined;
      if (pmId && !method) {
        const message = `No such PaymentMethod: '${pmId}'`;
        const body = error('invalid_request_error', { code: 'resource_missing', param: 'payment_method', message });
        return { status: 400, body };
      }
      const options = (body.payment_method_options as Params | undefined)?.card as Params | undefined;
      const intent: Json = {
        id: `pi_${id(24)}`,
        object: 'payment_intent',
        allowed_payment_method_types: body.allowed_payment_method_types ?? null,
        amount,
        amount_capturable: 0,
        amount_received: 0,
        canceled_at: null,
        cancellation_reason: null,
        capture_method: body.capture_method ?? 'automatic_async',
        client_secret: null,
        confirmation_method: 'automatic',
        created: now(),
        currency: body.currency,
        customer: null,
        description: null,
        last_payment_error: null,
        latest_charge: null,
        livemode: false,
        metadata: body.metadata ?? {},
        payment_method: pmId,
        payment_method_options: {
          card: { request_incremental_authorization: options?.request_incremental_authorization ?? 'never' },
        },
        payment_method_types: ['card'],
        status: pmId ? 'requires_confirmation' : 'requires_payment_method',
      };
      intent.client_secret = `${intent.id}_secret_${id(24)}`;
      intents.set(intent.id, intent);
      if (body.confirm !== 'true' || !method) return { status: 200, body: expand(intent, request) };

      const decline = DECLINES[method.number];
      const charge = newCharge(intent, method.object, decline ? 'failed' : 'succeeded');
      if (decline) {
        const failure = { type: 'card_error', charge: charge.id, ...decline, payment_method: method.object };
        Object.assign(intent, { status: 'requires_payment_method', last_payment_error: failure, payment_method: null });
        return { status: 402, body: { error: { ...failure, payment_intent: structuredClone(intent) } } };
      }
      const manual = intent.capture_method === 'manual';
      Object.assign(intent, {
        status: manual ? 'requires_capture' : 'succeeded',
        amount_capturable: manual ? amount : 0,
        amount_received: manual ? 0 : amount,
      });
      return { status: 200, body: expand(intent, request) };
    }),
  );

  app.get('/v1/payment_intents', async (request, reply) => {
    const query = request.query as Params;
    const limit = Math.min(100, Math.max(1, Number(query.limit ?? 10)));
    const created = query.created as Params | undefined;
    const since = typeof created === 'object' && typeof created.gte === 'string' ? Number(created.gte) : -Infinity;
    const newestFirst = [...intents.values()].reverse().filter((pi) => pi.created >= since);
    const after = newestFirst.findIndex((pi) => pi.id === query.starting_after);
    const rest = newestFirst.slice(after + 1);
    const data = rest.slice(0, limit).map((pi) => expand(pi, request, 'data.'));
    const list = { object: 'list', data, has_more: rest.length > limit, url: '/v1/payment_intents' };
    return send(reply, { status: 200, body: list });
  });

  app.get('/v1/payment_intents/:id', async (request, reply) => {
    const intent = intents.get((request.params as { id: string }).id);
    return send(reply, intent ? { status: 200, body: expand(intent, request) } : missing(request));
  });

  app.post(
    '/v1/payment_intents/:id/capture',
    idempotently((request) => {
      const intent = intents.get((request.params as { id: string }).id);
      if (!intent) return missing(request);
      if (intent.status !== 'requires_capture') return unexpectedState(intent, 'capture');
      const body = (request.body ?? {}) as Params;
      const amount = body.amount_to_capture === undefined ? intent.amount_capturable : Number(body.amount_to_capture);
      if (!Number.isSafeInteger(amount) || amount < 1 || amount > intent.amount_capturable) {
        return invalid('amount_too_large', 'amount_to_capture', 'amount_to_capture exceeds amount_capturable.');
      }
      // Stripe releases the uncaptured remainder of the authorization on capture.
      Object.assign(intent, { status: 'succeeded', amount_received: amount, amount_capturable: 0 });
      Object.assign(charges.get(intent.latest_charge)!, {
        captured: true,
        amount_captured: amount,
        amount_refunded: intent.amount - amount,
      });
      return { status: 200, body: expand(intent, request) };
    }),
  );

  app.post(
    '/v1/payment_intents/:id/cancel',
    idempotently((request) => {
      const intent = intents.get((request.params as { id: string }).id);
      if (!intent) return missing(request);
      if (!CANCELABLE.includes(intent.status)) return unexpectedState(intent, 'cancel');
      const reason = (request.body as Params | undefined)?.cancellation_reason ?? null;
      Object.assign(intent, { status: 'canceled', canceled_at: now(), cancellation_reason: reason });
      intent.amount_capturable = 0;
      return { status: 200, body: expand(intent, request) };
    }),
  );

  app.post(
    '/v1/payment_intents/:id/increment_authorization',
    idempotently((request) => {
      const intent = intents.get((request.params as { id: string }).id);
      if (!intent) return missing(request);
      const charge = intent.latest_charge ? charges.get(intent.latest_charge) : undefined;
      const incremental = charge?.payment_method_details.card.incremental_authorization.status === 'available';
      if (intent.status !== 'requires_capture' || !incremental) {
        return unexpectedState(intent, 'increment the authorization of');
      }
      const amount = Number((request.body as Params | undefined)?.amount);
      if (!Number.isSafeInteger(amount) || amount <= intent.amount) {
        return invalid('parameter_invalid_integer', 'amount', 'amount must exceed the authorized amount.');
      }
      if (incrementDecline) {
        const decline_code = incrementDecline;
        incrementDecline = null;
        // A declined increment leaves the PaymentIntent capturable for the earlier amount.
        const failure = { type: 'card_error', code: 'card_declined', decline_code, message: 'Your card was declined.' };
        return { status: 402, body: { error: { ...failure, payment_intent: structuredClone(intent) } } };
      }
      Object.assign(intent, { amount, amount_capturable: amount });
      Object.assign(charge, { amount });
      charge.payment_method_details.card.amount_authorized = amount;
      return { status: 200, body: expand(intent, request) };
    }),
  );

  // Refunds of a captured charge, in parts, never beyond what it captured and has not yet refunded.
  const refunded = new Map<string, number>();
  app.post(
    '/v1/refunds',
    idempotently((request) => {
      const body = (request.body ?? {}) as Params;
      const charge = typeof body.charge === 'string' ? charges.get(body.charge) : undefined;
      if (!charge) {
        const message = `No such charge: '${String(body.charge)}'`;
        return { status: 404, body: error('invalid_request_error', { code: 'resource_missing', param: 'charge', message }) };
      }
      const left = charge.amount_captured - (refunded.get(charge.id) ?? 0);
      const amount = body.amount === undefined ? left : Number(body.amount);
      if (!Number.isSafeInteger(amount) || amount < 1 || amount > left) {
        return invalid('amount_too_large', 'amount', `Refund amount is greater than unrefunded amount on charge (${left}).`);
      }
      refunded.set(charge.id, (refunded.get(charge.id) ?? 0) + amount);
      const refund = {
        id: `re_${id(24)}`,
        object: 'refund',
        amount,
        charge: charge.id,
        created: now(),
        currency: charge.currency,
        metadata: body.metadata ?? {},
        payment_intent: charge.payment_intent,
        status: 'succeeded',
      };
      return { status: 200, body: refund };
    }),
  );

  app.setNotFoundHandler((request, reply) =>
    send(reply, {
      status: 404,
      body: error('invalid_request_error', { message: `Unrecognized request URL (${request.method}: ${request.url}).` }),
    }),
  );

  function newCharge(intent: Json, method: Json, status: 'succeeded' | 'failed'): Json {
    const incremental = intent.payment_method_options.card.request_incremental_authorization === 'if_available';
    const charge = {
      id: `ch_${id(24)}`,
      object: 'charge',
      amount: intent.amount,
      amount_captured: 0,
      amount_refunded: 0,
      captured: false,
      created: now(),
      currency: intent.currency,
      livemode: false,
      metadata: intent.metadata,
      paid: status === 'succeeded',
      payment_intent: intent.id,
      payment_method: method.id,
      payment_method_details: {
        type: 'card',
        card: {
          amount_authorized: status === 'succeeded' ? intent.amount : null,
          authorization_code: status === 'succeeded' ? String(randomInt(100_000, 1_000_000)) : null,
          brand: method.card.brand,
          capture_before: intent.created + 7 * DAY_S,
          exp_month: method.card.exp_month,
          exp_year: method.card.exp_year,
          incremental_authorization: { status: incremental ? 'available' : 'unavailable' },
          last4: method.card.last4,
        },
      },
      status,
    };
    charges.set(charge.id, charge);
    intent.latest_charge = charge.id;
    return charge;
  }

  /** `expand[]=latest_charge` (or `data.latest_charge` on a list) swaps the id for the Charge. */
  function expand(intent: Json, request: FastifyRequest, prefix = ''): Json {
    const params = ((request.method === 'GET' ? request.query : request.body) ?? {}) as Params;
    const wanted = Array.isArray(params.expand) ? params.expand : [];
    const copy = structuredClone(intent);
    if (wanted.includes(`${prefix}latest_charge`) && intent.latest_charge) {
      copy.latest_charge = structuredClone(charges.get(intent.latest_charge));
    }
    return copy;
  }

  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    host: '127.0.0.1',
    port,
    apiKey,
    requests,
    paymentIntent: (key) => (intents.has(key) ? structuredClone(intents.get(key)) : undefined),
    failNext(count, status = 503) {
      faults = { remaining: count, status };
    },
    declineNextIncrement(declineCode) {
      incrementDecline = declineCode;
    },
    close: () => app.close(),
  };
}

function send(reply: FastifyReply, answer: Answer, idempotencyKey?: string) {
  reply.header('request-id', `req_${id(14)}`);
  if (idempotencyKey) reply.header('idempotency-key', idempotencyKey);
  return reply.code(answer.status).type('application/json').send(JSON.stringify(answer.body));
}

function error(type: string, fields: { code?: string; param?: string; message: string }): Json {
  return { error: { type, ...fields } };
}

function invalid(code: string, param: string, message: string): Answer {
  return { status: 400, body: error('invalid_request_error', { code, param, message }), replayable: false };
}

function missing(request: FastifyRequest): Answer {
  const key = (request.params as { id: string }).id;
  const message = `No such payment_intent: '${key}'`;
  return { status: 404, body: error('invalid_request_error', { code: 'resource_missing', param: 'intent', message }) };
}

function unexpectedState(intent: Json, action: string): Answer {
  const message = `You cannot ${action} this PaymentIntent because it has a status of ${intent.status}.`;
  const body = error('invalid_request_error', { code: 'payment_intent_unexpected_state', message });
  body.error.payment_intent = structuredClone(intent);
  return { status: 400, body };
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Stripe's form encoding: `a[b][c]=v` nests, `a[0]=v` makes arrays. URLSearchParams already
 * undoes the percent- and plus-encoding; brackets may arrive encoded or not.
 */
export function parseForm(text: string): Params {
  const root: Params = {};
  for (const [key, value] of new URLSearchParams(text)) {
    const match = /^([^[\]]+)((?:\[[^[\]]*\])*)$/.exec(key);
    if (!match) continue;
    const path = [match[1]!, ...[...match[2]!.matchAll(/\[([^[\]]*)\]/g)].map((m) => m[1]!)];
    if (path.some((part) => part === '__proto__' || part === 'constructor' || part === 'prototype')) continue;
    let node: Params = root;
    for (const part of path.slice(0, -1)) {
      const next = node[part];
      node = (typeof next === 'object' && next !== null ? next : (node[part] = {})) as Params;
    }
    node[path.at(-1)!] = value;
  }
  return arraysFromIndexes(root) as Params;
}

function arraysFromIndexes(value: Param): Param {
  if (typeof value === 'string') return value;
  const entries = Object.entries(value).map(([key, child]) => [key, arraysFromIndexes(child)] as const);
  if (entries.length > 0 && entries.every(([key]) => /^\d+$/.test(key))) {
    return entries.sort(([a], [b]) => Number(a) - Number(b)).map(([, child]) => child);
  }
  return Object.fromEntries(entries);
}

function luhn(number: string): boolean {
  let sum = 0;
  for (let i = 0; i < number.length; i++) {
    let digit = Number(number[number.length - 1 - i]);
    if (i % 2 === 1) digit = digit * 2 > 9 ? digit * 2 - 9 : digit * 2;
    sum += digit;
  }
  return sum % 10 === 0;
}

function brandOf(number: string): string {
  if (number.startsWith('4')) return 'visa';
  if (/^(5[1-5]|2[2-7])/.test(number)) return 'mastercard';
  if (/^3[47]/.test(number)) return 'amex';
  return 'unknown';
}

function id(length: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return [...randomBytes(length)].map((byte) => alphabet[byte % alphabet.length]).join('');
}
