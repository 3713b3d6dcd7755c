import { z } from 'zod';
import { formatAmount, parseAmount } from '../billing/money.js';
import { isTimeZone } from '../billing/zoned-time.js';
import type { Pricing } from '../catalogue/catalogue.js';
import { WEBHOOK_EVENT_TYPES } from '../webhooks/webhook-events.js';

/** The documented maxima every request is checked against (DESIGN rule 16; README "Input limits"). */
export interface Limits {
  maxAmountMicros: bigint;
  maxPricePerMinuteMicros: bigint;
  maxEstimate: number;
  maxSessionMinutes: number;
  maxWaitSeconds: number;
}

// PostgreSQL refuses NUL in text, and no name, e-mail or label needs a control character (C0, DEL,
// C1), a line or paragraph separator (one line of text), or a bidirectional embedding, override or
// isolate (they show a name, on a page or in a log, other than the one stored).
const CONTROL = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

/** One line of text a person typed: trimmed, bounded, with no control character. */
export const text = (max: number) =>
  z
    .string()
    .trim()
    .min(1)
    .max(max)
    .refine((value) => !CONTROL.test(value), { message: 'must not contain control characters, line separators or bidirectional overrides' });

/** A secret: any characters but NUL, bounded (long passwords cost argon2 time). */
export const secret = (min: number, max: number) =>
  z
    .string()
    .min(min)
    .max(max)
    .refine((value) => !value.includes('\u0000'), { message: 'must not contain NUL' });

/** A decimal string amount ("12.50") parsed to integer micro-units, at most `maxMicros`. */
export function amount(maxDecimals: number, maxMicros: bigint) {
  return z.string().transform((input, ctx) => {
    const micros = parseAmount(input, maxDecimals);
    if (micros === null) {
      // Well formed but past parseAmount's twelve digits: too large, not malformed.
      const [, whole, fraction = ''] = /^([1-9]\d*)(?:\.(\d+))?$/.exec(input) ?? [];
      const tooLarge = whole !== undefined && fraction.length <= maxDecimals;
      ctx.addIssue({ code: 'custom', message: tooLarge ? `must be at most ${formatAmount(maxMicros)}` : `must be a decimal string with at most ${maxDecimals} decimals, like "12.50"` });
      return z.NEVER;
    }
    if (micros > maxMicros) {
      ctx.addIssue({ code: 'custom', message: `must be at most ${formatAmount(maxMicros)}` });
      return z.NEVER;
    }
    return micros;
  });
}

export const positiveAmount = (maxDecimals: number, maxMicros: bigint) =>
  amount(maxDecimals, maxMicros).refine((micros) => micros > 0n, { message: 'must be greater than zero' });

export const idParams = z.object({ id: z.uuid() });

/** Card details as a customer types them: exchanged for a token at once, never stored (DESIGN rule 10). */
export const cardInput = z.object({
  number: z.string().regex(/^[\d ]{12,23}$/, 'must be the card number digits').transform((n) => n.replaceAll(' ', '')),
  expMonth: z.number().int().min(1).max(12),
  expYear: z.number().int().min(2000).max(2100),
  cvc: z.string().regex(/^\d{3,4}$/, 'must be 3 or 4 digits'),
});

const EARLIEST = Date.UTC(1970, 0, 1);
const LATEST = Date.UTC(9999, 11, 31);
/**
 * An instant a request names (ISO 8601, UTC), within what PostgreSQL and a Date both hold: the
 * fuzz test found year 0 passing the format and failing in PostgreSQL (a 500).
 */
export const instantParam = z.iso
  .datetime()
  .refine((text) => Date.parse(text) >= EARLIEST && Date.parse(text) <= LATEST, { message: 'must lie between 1970-01-01T00:00:00Z and 9999-12-31T00:00:00Z' });

/** Every 4xx and 5xx body (DESIGN rule 9). */
export const problemSchema = z.looseObject({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  code: z.string(),
  detail: z.string(),
  instance: z.string().optional(),
  requestId: z.string().optional(),
});

/** Response schemas for errors, documented on every route. */
export const problems = { '4xx': problemSchema, '5xx': problemSchema };

const instant = z.iso.datetime();

export const tariffViewSchema = z.object({
  timeZone: z.string(),
  pricePerMinute: z.string(),
  rules: z.array(z.object({ days: z.array(z.number().int()), fromHour: z.number().int(), toHour: z.number().int(), pricePerMinute: z.string() })),
  billing: z.object({ firstPeriodSeconds: z.number().int(), incrementSeconds: z.number().int(), minimumCharge: z.string() }),
  perUse: z.object({ unit: z.enum(['request', 'unit']), price: z.string() }).nullable(),
});

/** One line of an itemized charge; the lines add up to the charge. */
export const chargeLineSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('time'), from: instant, to: instant, seconds: z.number().int(), pricePerMinute: z.string(), charge: z.string() }),
  z.object({ kind: z.literal('uses'), units: z.number().int(), charge: z.string() }),
  z.object({ kind: z.literal('minimum'), charge: z.string() }),
]);

export const sessionViewSchema = z.object({
  id: z.uuid(),
  state: z.enum(['authorizing', 'active', 'over_limit', 'closing', 'settled', 'declined']),
  serviceId: z.uuid(),
  serverId: z.uuid(),
  currency: z.string(),
  pricePerMinute: z.string(),
  tariff: tariffViewSchema,
  authorizationNumber: z.string().nullable(),
  maxMinutes: z.number().nullable(),
  maxCharge: z.string(),
  createdAt: instant,
  startedAt: instant.nullable(),
  cutoffAt: instant.nullable(),
  cutoffReason: z.enum(['charge_limit', 'time_limit']).nullable(),
  warnAt: instant.nullable(),
  endedAt: instant.nullable(),
  endReason: z.string().nullable(),
  accrued: z.string(),
  uses: z.object({ units: z.number().int(), charge: z.string() }),
  lines: z.array(chargeLineSchema),
  charge: z.string().nullable(),
  chargeSlip: z.object({ id: z.string(), authorizationNumber: z.string(), amount: z.string() }).nullable(),
  declineReason: z.string().nullable(),
  quote: z.object({ id: z.uuid(), total: z.string(), withinQuote: z.boolean().nullable() }).nullable(),
  /** How to reach the service through the edge while the session is active (customers' views only). */
  access: z.object({ url: z.string(), token: z.string(), expiresAt: instant }).nullable().optional(),
  /** What the session did through the edge. */
  traffic: z.object({ requests: z.number().int(), bytesIn: z.number().int(), bytesOut: z.number().int(), connectionsCut: z.number().int() }).optional(),
});

export const quoteViewSchema = z.object({
  id: z.uuid(),
  serviceId: z.uuid(),
  startAt: instant,
  minutes: z.number().nullable(),
  runsForSeconds: z.number(),
  total: z.string(),
  lines: z.array(chargeLineSchema),
  tariff: tariffViewSchema,
  expiresAt: instant,
  sessionId: z.uuid().nullable(),
});

export const opsSessionViewSchema = sessionViewSchema.extend({
  accountId: z.uuid(),
  path: z.string(),
  stuck: z.boolean(),
  stuckReason: z.string().nullable(),
  held: z.boolean(),
  closeAttempts: z.number().int(),
  lastError: z.string().nullable(),
});

export const accountViewSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  email: z.string(),
  card: z.object({ brand: z.string(), last4: z.string(), expMonth: z.number().int(), expYear: z.number().int() }),
  estimatedStorageGb: z.number(),
  estimatedProcessingHours: z.number(),
  currency: z.string(),
  outstandingLimit: z.string(),
  reserved: z.string(),
  state: z.enum(['new', 'active', 'suspended', 'closed']),
  paymentMode: z.enum(['card', 'prepaid', 'postpaid']),
  balance: z.string(),
  balanceHeld: z.string(),
  statementPeriod: z.enum(['month', 'week']),
  resumesAt: instant.nullable(),
  createdAt: instant,
});

export const topUpViewSchema = z.object({
  id: z.uuid(),
  amount: z.string(),
  currency: z.string(),
  state: z.enum(['pending', 'charged', 'declined']),
  chargeId: z.string().nullable(),
  declineReason: z.string().nullable(),
  createdAt: instant,
  settledAt: instant.nullable(),
});

export const refundViewSchema = z.object({
  id: z.uuid(),
  topUpId: z.uuid(),
  captureId: z.string(),
  amount: z.string(),
  currency: z.string(),
  state: z.enum(['pending', 'refunded', 'refused']),
  refundId: z.string().nullable(),
  attempts: z.number().int(),
  lastError: z.string().nullable(),
  createdAt: instant,
  settledAt: instant.nullable(),
});

export const serviceViewSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  serverId: z.uuid(),
  /** The default price per minute (where no rule of the tariff applies). */
  pricePerMinute: z.string(),
  tariff: tariffViewSchema,
  currency: z.string(),
  maxUsers: z.number().int(),
  activeUsers: z.number().int(),
  /** Seats an open could take now: the service's free seats within what its server has left. */
  seatsFree: z.number().int(),
  /** Whether its upstream took a connection at the last check; false: opens are refused (SERVICE_UNREACHABLE); null: not checked, or not proxied. */
  reachable: z.boolean().nullable(),
});

/** A service as operators see it: where its traffic goes, and its signing secret the one time it is made. */
export const opsServiceViewSchema = serviceViewSchema.extend({
  upstreamUrl: z.string().nullable(),
  signingSecret: z.string().optional(),
});

/**
 * A service's upstream: an absolute http or https URL (WebSocket goes over the same), without
 * credentials, query or fragment (the edge appends the customer's path and query to it).
 */
export const upstreamUrlInput = z
  .string()
  .max(2048)
  .refine((text) => {
    if (!URL.canParse(text)) return false;
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && !url.username && !url.password && !url.search && !url.hash && url.hostname !== '';
  }, 'must be an http or https URL without credentials, query or fragment')
  .transform((text) => new URL(text).href);

/** A tariff as operators set it: prices as decimal strings, checked against the maxima. */
export function tariffInput(limits: Limits) {
  const price = amount(6, limits.maxPricePerMinuteMicros);
  return z
    .object({
      timeZone: z.string().max(64).refine(isTimeZone, 'must be an IANA time zone, like Europe/Paris').default('UTC'),
      rules: z
        .array(
          z.object({
            days: z.array(z.number().int().min(1).max(7)).min(1).max(7),
            fromHour: z.number().int().min(0).max(23),
            toHour: z.number().int().min(1).max(24),
            pricePerMinute: price,
          }),
        )
        .max(50)
        .default([]),
      billing: z
        .object({
          firstPeriodSeconds: z.number().int().min(1).max(3600),
          incrementSeconds: z.number().int().min(1).max(3600),
          minimumCharge: amount(2, limits.maxAmountMicros),
        })
        .default({ firstPeriodSeconds: 1, incrementSeconds: 1, minimumCharge: 0n }),
      perUse: z.object({ unit: z.enum(['request', 'unit']), price: positiveAmount(6, limits.maxPricePerMinuteMicros) }).nullable().default(null),
    })
    .transform(
      (t): Pricing => ({
        timeZone: t.timeZone,
        rules: t.rules.map((r) => ({ days: [...new Set(r.days)].sort(), fromHour: r.fromHour, toHour: r.toHour, pricePerMinuteMicros: r.pricePerMinute.toString() })),
        billing: { firstPeriodSeconds: t.billing.firstPeriodSeconds, incrementSeconds: t.billing.incrementSeconds, minimumChargeMicros: t.billing.minimumCharge.toString() },
        perUse: t.perUse ? { unit: t.perUse.unit, priceMicros: t.perUse.price.toString() } : null,
      }),
    );
}

export const serverViewSchema = z.object({ id: z.uuid(), name: z.string(), maxUsers: z.number().int() });

const occupancy = z.object({
  id: z.uuid(),
  name: z.string(),
  maxUsers: z.number().int(),
  activeUsers: z.number().int(),
  queued: z.number().int(),
  oldestWaitSeconds: z.number().nullable(),
});

export const serversOccupancySchema = z.object({
  servers: z.array(
    occupancy.extend({
      services: z.array(occupancy),
      connectedCustomers: z.number().int(),
      estimatedStorageGb: z.number(),
      estimatedProcessingHours: z.number(),
    }),
  ),
});

export const historyLineSchema = z.object({
  event: z.string(),
  from: z.string().nullable(),
  to: z.string(),
  at: instant,
  detail: z.unknown(),
});

export const sessionLogRowSchema = z.object({
  sessionId: z.uuid(),
  accountId: z.uuid(),
  customerName: z.string(),
  customerEmail: z.string(),
  estimatedStorageGb: z.number(),
  estimatedProcessingHours: z.number(),
  serviceId: z.uuid(),
  serviceName: z.string(),
  serverId: z.uuid(),
  serverName: z.string(),
  openedAt: instant,
  startedAt: instant.nullable(),
  endedAt: instant.nullable(),
  minutes: z.number().nullable(),
  charge: z.string().nullable(),
  currency: z.string(),
  endReason: z.string().nullable(),
  requests: z.number().int(),
  bytesIn: z.number().int(),
  bytesOut: z.number().int(),
  connectionsCut: z.number().int(),
});

/** A text body (CSV, Prometheus): sent as it is, described for the API reference. */
export const textBody = z.string();

export const operatorViewSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  role: z.enum(['admin', 'support', 'read_only']),
  hasPassword: z.boolean(),
  hasApiKey: z.boolean(),
  createdAt: instant,
  createdBy: z.uuid().nullable(),
  disabledAt: instant.nullable(),
});

export const auditEntrySchema = z.object({
  id: z.string(),
  at: instant,
  operatorId: z.uuid().nullable(),
  operatorName: z.string(),
  action: z.string(),
  targetType: z.string(),
  targetId: z.string().nullable(),
  before: z.unknown(),
  after: z.unknown(),
  requestId: z.string().nullable(),
});

export const tokenViewSchema = z.object({
  id: z.uuid(),
  createdAt: instant,
  lastUsedAt: instant,
  expiresAt: instant,
  current: z.boolean(),
});

const changer = z.object({ kind: z.enum(['customer', 'operator', 'system']), id: z.string().nullable(), name: z.string() });

/** One change of an account's state: what, from and to, when, who and why. */
export const accountHistoryLineSchema = z.object({
  event: z.string(),
  from: z.string().nullable(),
  to: z.string(),
  at: instant,
  by: changer,
  reason: z.string(),
});

/** What registers a webhook endpoint: the operator API's body, and the console's form once read. */
export const webhookEndpointInput = z.object({
  // Credentials in the URL would be shown to every operator, and fetch refuses to send them anyway.
  url: z
    .url({ protocol: /^https?$/, message: 'must be an http or https URL' })
    // Its own message: the url format's message is given to every check of the string.
    .max(2000, 'must be at most 2000 characters')
    .refine((text) => !URL.canParse(text) || (!new URL(text).username && !new URL(text).password), 'must not carry a user name or password: sign deliveries instead'),
  eventTypes: z.array(z.enum(WEBHOOK_EVENT_TYPES)).min(1, 'choose at least one event').max(WEBHOOK_EVENT_TYPES.length),
});

export const webhookEndpointSchema = z.object({
  id: z.uuid(),
  url: z.string(),
  eventTypes: z.array(z.string()),
  createdAt: instant,
  disabledAt: instant.nullable(),
});

export const webhookDeliverySchema = z.object({
  id: z.string(),
  eventId: z.string(),
  eventType: z.string(),
  state: z.enum(['pending', 'delivered', 'failed', 'cancelled']),
  attempts: z.number().int(),
  createdAt: instant,
  nextAttemptAt: instant.nullable(),
  deliveredAt: instant.nullable(),
  log: z.array(z.object({ attempt: z.number().int(), at: instant, statusCode: z.number().int().nullable(), error: z.string().nullable(), durationMs: z.number().int() })),
});

export const statementViewSchema = z.object({
  id: z.uuid(),
  period: z.enum(['month', 'week']),
  periodStart: instant,
  periodEnd: instant,
  currency: z.string(),
  totals: z.object({ charges: z.string(), paidByCard: z.string(), paidFromBalance: z.string(), topUps: z.string(), refunds: z.string(), due: z.string() }),
  charge: z.object({ state: z.enum(['none', 'pending', 'charged', 'declined']), chargeId: z.string().nullable(), declineReason: z.string().nullable() }),
  sessions: z.array(
    z.object({
      sessionId: z.uuid(),
      serviceId: z.uuid(),
      service: z.string(),
      startedAt: instant.nullable(),
      endedAt: instant.nullable(),
      minutes: z.number(),
      uses: z.number().int(),
      charge: z.string(),
      paidFrom: z.enum(['card', 'balance', 'postpaid']),
      chargeSlipId: z.string(),
      capturedAt: instant,
    }),
  ),
  topUps: z.array(z.object({ topUpId: z.uuid(), amount: z.string(), chargeId: z.string().nullable(), at: instant })),
  refunds: z.array(z.object({ refundId: z.uuid(), topUpId: z.uuid(), captureId: z.string(), amount: z.string(), state: z.enum(['pending', 'refunded', 'refused']), at: instant })),
  producedAt: instant,
});
