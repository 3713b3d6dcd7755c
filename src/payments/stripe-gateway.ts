import Stripe from 'stripe';
import type { Micros } from '../billing/money.js';
import { CardNetworkRequestError } from './card-network-client.js';
import {
  CardDeclinedError,
  CardInvalidError,
  CardNetworkUnavailableError,
  DECLINE_REASONS,
  type CardGateway,
  type DeclineReason,
  type Hold,
} from './gateway.js';

export interface StripeGatewayOptions {
  /** sk_live_… or sk_test_…; a restricted key needs write access to PaymentIntents, PaymentMethods and Refunds. */
  apiKey: string;
  /** host/port/protocol exist so tests can point the official client at a local server. */
  host?: string;
  port?: number;
  protocol?: 'http' | 'https';
  /** Per attempt; the package's default is 80 s, far longer than a customer waits for a session to open. */
  timeoutMs?: number;
  /** The package retries connection errors, 409 and 5xx with backoff, reusing the same Idempotency-Key. */
  maxNetworkRetries?: number;
  /** Wall clock in epoch ms, for the look-back of listOpenHolds. */
  now?: () => number;
}

const DAY_MS = 86_400_000;
/** Stripe cancels an uncaptured PaymentIntent this long after creation unless the charge says otherwise. */
const DEFAULT_HOLD_MS = 7 * DAY_MS;
/** Extended authorizations last up to 30 days, so nothing older can still be awaiting capture. */
const OPEN_HOLD_LOOKBACK_MS = 31 * DAY_MS;
/**
 * Marks the PaymentIntents tollgate created. A Stripe account is often shared with other
 * systems, and reconciliation voids every listed hold no session owns: it must never see theirs.
 */
const ORIGIN = { created_by: 'tollgate' } as const;

/**
 * Micro-units per minor unit ("smallest currency unit" in Stripe's words). Deliberately a
 * short allow-list: guessing the exponent wrong charges a hundred times too much or too little.
 * Stripe's three-decimal and special-case currencies (ISK, HUF, TWD, UGX) are left out on purpose.
 */
const MICROS_PER_MINOR_UNIT: Record<string, bigint> = {
  usd: 10_000n,
  eur: 10_000n,
  gbp: 10_000n,
  chf: 10_000n,
  cad: 10_000n,
  aud: 10_000n,
  nzd: 10_000n,
  sek: 10_000n,
  nok: 10_000n,
  dkk: 10_000n,
  jpy: 1_000_000n,
  krw: 1_000_000n,
};

function microsPerMinorUnit(currency: string): bigint {
  const step = MICROS_PER_MINOR_UNIT[currency.toLowerCase()];
  if (step === undefined) throw new Error(`the Stripe gateway has no minor unit for ${currency.toUpperCase()}`);
  return step;
}

/** Refuses rather than rounds: a hold or capture must be for exactly the amount tollgate computed. */
export function toMinorUnits(amountMicros: Micros, currency: string): number {
  const step = microsPerMinorUnit(currency);
  if (amountMicros <= 0n) throw new Error(`amount must be positive, got ${amountMicros} micros`);
  if (amountMicros % step !== 0n) {
    throw new Error(`${amountMicros} micros is not a whole number of ${currency.toUpperCase()} minor units`);
  }
  const minor = amountMicros / step;
  if (minor > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`amount ${amountMicros} micros is too large`);
  return Number(minor);
}

export function fromMinorUnits(amount: number, currency: string): Micros {
  if (!Number.isSafeInteger(amount)) throw new Error(`Stripe sent a non-integer amount: ${amount}`);
  return BigInt(amount) * microsPerMinorUnit(currency);
}

const INVALID_CARD_FIELDS: Record<string, 'number' | 'expiry' | 'cvc'> = {
  incorrect_number: 'number',
  invalid_number: 'number',
  invalid_expiry_month: 'expiry',
  invalid_expiry_year: 'expiry',
  expired_card: 'expiry',
  invalid_cvc: 'cvc',
  incorrect_cvc: 'cvc',
};

function declineReason(error: Stripe.errors.StripeCardError): DeclineReason {
  // The issuer's reason is in decline_code; some failures (expired_card, processing_error) carry it only in code.
  for (const candidate of [error.decline_code, error.code]) {
    const known = DECLINE_REASONS.find((reason) => reason === candidate);
    if (known) return known;
  }
  return 'generic_decline';
}

/** Every Stripe failure becomes one of the gateway's errors, so callers never import the package. */
function translate(error: unknown, operation: string): Error {
  if (!(error instanceof Stripe.errors.StripeError)) {
    return error instanceof Error ? error : new Error(String(error));
  }
  const detail = `${operation}: ${error.message}`;
  if (
    error instanceof Stripe.errors.StripeConnectionError ||
    error instanceof Stripe.errors.StripeAPIError ||
    error instanceof Stripe.errors.StripeRateLimitError
  ) {
    // The package has already spent its retries on these; what is left is "no answer".
    return new CardNetworkUnavailableError(`no answer from Stripe (${detail})`, { cause: error });
  }
  if (error instanceof Stripe.errors.StripeCardError) return new CardDeclinedError(declineReason(error));
  const failure = new CardNetworkRequestError(error.statusCode ?? 0, error.code ?? error.rawType ?? error.type, detail);
  failure.cause = error;
  return failure;
}

async function call<T>(operation: string, request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (error) {
    throw translate(error, operation);
  }
}

function chargeOf(intent: Stripe.PaymentIntent): Stripe.Charge | null {
  return typeof intent.latest_charge === 'object' ? intent.latest_charge : null;
}

function holdFrom(intent: Stripe.PaymentIntent): Hold {
  const card = chargeOf(intent)?.payment_method_details?.card;
  return {
    holdId: intent.id,
    reference: intent.metadata?.reference ?? null,
    // Issuers do not always return an authorization code; the PI id is unique and stable.
    authorizationNumber: card?.authorization_code ?? intent.id,
    amountMicros: fromMinorUnits(intent.amount_capturable, intent.currency),
    expiresAt: card?.capture_before !== undefined ? card.capture_before * 1000 : intent.created * 1000 + DEFAULT_HOLD_MS,
  };
}

/** The hold exists only when Stripe says the funds are authorized and waiting for capture. */
function requireHold(intent: Stripe.PaymentIntent): Hold {
  if (intent.status !== 'requires_capture') {
    // requires_action (3-D Secure) cannot be completed server-side; error_on_requires_action should prevent it.
    throw new CardDeclinedError('generic_decline');
  }
  return holdFrom(intent);
}

/**
 * CardGateway over Stripe PaymentIntents with manual capture, through the official package.
 * Every mutating call passes tollgate's idempotency key, so a re-driven call after a crash
 * is answered from Stripe's idempotency store instead of authorizing or capturing twice.
 */
export function createStripeGateway(options: StripeGatewayOptions): CardGateway {
  const stripe = new Stripe(options.apiKey, {
    ...(options.host !== undefined && { host: options.host }),
    ...(options.port !== undefined && { port: options.port }),
    ...(options.protocol !== undefined && { protocol: options.protocol }),
    timeout: options.timeoutMs ?? 10_000,
    maxNetworkRetries: options.maxNetworkRetries ?? 2,
    appInfo: { name: 'tollgate' },
  });
  const expandCharge = ['latest_charge'];
  const now = options.now ?? Date.now;

  return {
    async tokenize(card, idempotencyKey) {
      // Sending raw card numbers from a server needs Stripe's approval and puts tollgate in
      // full PCI DSS scope. In production the web page should tokenize with Stripe.js and
      // hand tollgate only the pm_… id; this path is for the sandbox-shaped sign-up flow.
      try {
        const method = await stripe.paymentMethods.create(
          {
            type: 'card',
            card: { number: card.number, exp_month: card.expMonth, exp_year: card.expYear, cvc: card.cvc },
          },
          { idempotencyKey },
        );
        if (!method.card) throw new Error(`Stripe returned a ${method.type} PaymentMethod for a card`);
        return {
          token: method.id,
          brand: method.card.brand,
          last4: method.card.last4,
          expMonth: method.card.exp_month,
          expYear: method.card.exp_year,
        };
      } catch (error) {
        if (error instanceof Stripe.errors.StripeCardError) {
          const field = error.code ? INVALID_CARD_FIELDS[error.code] : undefined;
          if (field) throw new CardInvalidError(field, error.message);
        }
        throw translate(error, 'create PaymentMethod');
      }
    },

    async authorize({ token, amountMicros, currency, reference, idempotencyKey }) {
      const amount = toMinorUnits(amountMicros, currency);
      const intent = await call('create PaymentIntent', () =>
        stripe.paymentIntents.create(
          {
            amount,
            currency: currency.toLowerCase(),
            payment_method: token,
            confirm: true,
            capture_method: 'manual',
            // API 2026-09-30.endive (pinned by stripe 23.x) refuses payment_method_types with a 400.
            allowed_payment_method_types: ['card'],
            payment_method_options: { card: { request_incremental_authorization: 'if_available' } },
            // Nobody is there to complete 3-D Secure during a server-side authorization.
            error_on_requires_action: true,
            metadata: { reference, ...ORIGIN },
            expand: expandCharge,
          },
          { idempotencyKey },
        ),
      );
      return requireHold(intent);
    },

    async increment({ holdId, amountMicros, idempotencyKey }) {
      const current = await call('retrieve PaymentIntent', () =>
        stripe.paymentIntents.retrieve(holdId, { expand: expandCharge }),
      );
      // The network, card brand and pricing plan decide this at authorization; asking anyway only
      // earns a 400, and "this hold cannot grow" is final for the session, like a decline.
      const incremental = chargeOf(current)?.payment_method_details?.card?.incremental_authorization?.status;
      if (incremental !== 'available') throw new CardDeclinedError('generic_decline');
      const amount = toMinorUnits(amountMicros, current.currency);
      // Already that large (an earlier increment whose answer was lost): the hold as it is, as the
      // sandbox answers an increment to its own amount (src/sessions/effects.ts raisedEarlier).
      if (amount <= current.amount_capturable) return requireHold(current);
      const intent = await call('increment authorization', () =>
        stripe.paymentIntents.incrementAuthorization(holdId, { amount, expand: expandCharge }, { idempotencyKey }),
      );
      return requireHold(intent);
    },

    async capture({ holdId, amountMicros, idempotencyKey }) {
      const current = await call('retrieve PaymentIntent', () => stripe.paymentIntents.retrieve(holdId));
      const amountToCapture = toMinorUnits(amountMicros, current.currency);
      const intent = await call('capture PaymentIntent', () =>
        stripe.paymentIntents.capture(
          holdId,
          { amount_to_capture: amountToCapture, expand: expandCharge },
          { idempotencyKey },
        ),
      );
      const charge = chargeOf(intent);
      if (!charge) throw new Error(`Stripe captured ${holdId} without a charge`);
      return {
        captureId: charge.id,
        authorizationNumber: charge.payment_method_details?.card?.authorization_code ?? intent.id,
        amountMicros: fromMinorUnits(intent.amount_received, intent.currency),
      };
    },

    async void({ holdId, idempotencyKey }) {
      try {
        await stripe.paymentIntents.cancel(holdId, {}, { idempotencyKey });
      } catch (error) {
        // Voiding is asked for again after crashes and lapses; a hold already gone is the wanted outcome.
        const unexpectedState =
          error instanceof Stripe.errors.StripeInvalidRequestError && error.code === 'payment_intent_unexpected_state';
        if (unexpectedState) {
          const status =
            error.payment_intent?.status ??
            (await call('retrieve PaymentIntent', () => stripe.paymentIntents.retrieve(holdId))).status;
          if (status === 'canceled') return;
        }
        throw translate(error, 'cancel PaymentIntent');
      }
    },

    // A top-up's capture is a Charge (ch_…): Stripe refunds it in parts up to its amount.
    async refund({ captureId, amountMicros, currency, reference, idempotencyKey }) {
      const amount = toMinorUnits(amountMicros, currency);
      const refund = await call('create Refund', () =>
        stripe.refunds.create({ charge: captureId, amount, metadata: { reference, ...ORIGIN } }, { idempotencyKey }),
      );
      if (refund.status === 'failed' || refund.status === 'canceled') {
        throw new CardNetworkRequestError(402, `refund_${refund.status}`, `Stripe answered the refund of ${captureId} with ${refund.status}`);
      }
      return { refundId: refund.id, captureId, amountMicros: fromMinorUnits(refund.amount, refund.currency) };
    },

    async listOpenHolds() {
      const holds: Hold[] = [];
      const since = Math.floor((now() - OPEN_HOLD_LOOKBACK_MS) / 1000);
      await call('list PaymentIntents', async () => {
        // Stripe's list has no status filter; auto-pagination walks every page with starting_after.
        const listing = { limit: 100, created: { gte: since }, expand: ['data.latest_charge'] };
        for await (const intent of stripe.paymentIntents.list(listing)) {
          if (intent.status === 'requires_capture' && intent.metadata?.created_by === ORIGIN.created_by) {
            holds.push(holdFrom(intent));
          }
        }
      });
      return holds;
    },
  };
}
