import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { z } from 'zod';
import { formatAmount, parseAmount } from '../billing/money.js';
import {
  CardDeclinedError,
  CardInvalidError,
  CardNetworkUnavailableError,
  DECLINE_REASONS,
  type CardGateway,
  type DeclineReason,
  type Hold,
} from './gateway.js';

export interface CardNetworkClientOptions {
  baseUrl: string;
  /** Per attempt, including reading the answer. */
  timeoutMs?: number;
  maxAttempts?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Source of jitter in [0, 1); tests pass a fixed one. */
  random?: () => number;
}

/** The card network refused the request itself (4xx other than a decline): retrying will not help. */
export class CardNetworkRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    detail: string,
  ) {
    super(`card network refused the request (${status} ${code}): ${detail}`);
    this.name = 'CardNetworkRequestError';
  }
}

class AttemptTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
    this.name = 'AttemptTimeoutError';
  }
}

const problemSchema = z.object({ code: z.string(), detail: z.string().optional(), reason: z.string().optional() });
const tokenSchema = z.object({
  token: z.string(),
  brand: z.string(),
  last4: z.string(),
  expMonth: z.number(),
  expYear: z.number(),
});
const holdSchema = z.object({
  id: z.string(),
  // Answers stored before references existed replay without one.
  reference: z.string().nullable().default(null),
  authorizationNumber: z.string(),
  amount: z.string(),
  expiresAt: z.string(),
});
const holdListSchema = z.object({ holds: z.array(holdSchema) });
const captureSchema = z.object({ id: z.string(), authorizationNumber: z.string(), amount: z.string() });
const refundSchema = z.object({ id: z.string(), captureId: z.string(), amount: z.string() });

const INVALID_FIELDS: Record<string, 'number' | 'expiry' | 'cvc'> = {
  invalid_number: 'number',
  expired_card: 'expiry',
  invalid_cvc: 'cvc',
};

interface Reply {
  status: number;
  body: unknown;
}

export interface CardNetworkClient extends CardGateway {
  /** Closes the client's connections to the card network. */
  close(): Promise<void>;
}

/**
 * tollgate's client for the card network. Every attempt of one call carries the same
 * Idempotency-Key, so a retry after a timeout gets the first answer instead of a second charge.
 *
 * It speaks through an undici Pool of keep-alive connections rather than fetch: the open path
 * makes one call per session, and fetch's WHATWG streams, AbortSignal and Response objects were
 * about a seventh of tollgate's CPU per open in the benchmark (docs/benchmarks.md).
 */
export function createCardNetworkClient(options: CardNetworkClientOptions): CardNetworkClient {
  const base = new URL(options.baseUrl);
  const basePath = base.pathname.replace(/\/+$/, '');
  const pool = new Pool(base.origin);
  const timeoutMs = options.timeoutMs ?? 3000;
  const maxAttempts = Math.max(1, options.maxAttempts ?? 4);
  const backoffBaseMs = options.backoffBaseMs ?? 100;
  const backoffMaxMs = options.backoffMaxMs ?? 2000;
  const random = options.random ?? Math.random;

  /** Full jitter: anywhere between 0 and the exponential ceiling, so retrying clients spread out. */
  const backoff = (retry: number) => random() * Math.min(backoffMaxMs, backoffBaseMs * 2 ** (retry - 1));

  /**
   * Answers the first non-retryable reply; throws CardNetworkUnavailableError when none came.
   * Retryable are a failure to get any answer (refused, reset, timed out, or the connection
   * dropped before the answer: the same key makes the retry safe), 5xx and 429. Every other
   * answer is the network's word and is returned as it is.
   */
  async function request(method: 'GET' | 'POST', path: string, body?: unknown, idempotencyKey?: string): Promise<Reply> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    let lastFailure: unknown;
    let reached = false;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      if (attempt > 1) await sleep(backoff(attempt - 1));
      let status: number;
      let text: string;
      // undici's own headersTimeout runs on a coarse timer (about half a second of slack), so
      // the attempt's deadline is a plain timer that aborts it.
      const attemptAbort = new AbortController();
      const deadline = setTimeout(() => attemptAbort.abort(new AttemptTimeoutError(timeoutMs)), timeoutMs);
      try {
        const response = await pool.request({ path: basePath + path, method, headers, body: payload, signal: attemptAbort.signal });
        status = response.statusCode;
        text = await response.body.text();
      } catch (error) {
        lastFailure = error;
        if (!neverSent(error)) reached = true;
        continue;
      } finally {
        clearTimeout(deadline);
      }
      reached = true;
      if (status >= 500 || status === 429) {
        lastFailure = new Error(`HTTP ${status}`);
        continue;
      }
      return { status, body: parseJson(text, status) };
    }
    throw new CardNetworkUnavailableError(
      `no answer from the card network after ${maxAttempts} attempts: ${describe(lastFailure)}`,
      { cause: lastFailure, mayHaveCommitted: reached },
    );
  }

  const post = (path: string, body: unknown, idempotencyKey: string) => request('POST', path, body, idempotencyKey);
  const holdPath = (holdId: string, action: string) => `/v1/holds/${encodeURIComponent(holdId)}/${action}`;

  return {
    close: () => pool.close(),

    async tokenize(card, idempotencyKey) {
      const reply = await post('/v1/tokens', card, idempotencyKey);
      if (reply.status === 400) {
        const problem = problemSchema.safeParse(reply.body);
        const field = problem.success ? INVALID_FIELDS[problem.data.code] : undefined;
        if (field) throw new CardInvalidError(field, problem.success ? (problem.data.detail ?? problem.data.code) : '');
      }
      return expect(reply, 201, tokenSchema);
    },

    async authorize({ token, amountMicros, currency, reference, idempotencyKey }) {
      const body = { token, amount: formatAmount(amountMicros), currency, reference };
      const reply = await post('/v1/holds', body, idempotencyKey);
      return holdFrom(expect(reply, 201, holdSchema));
    },

    async increment({ holdId, amountMicros, idempotencyKey }) {
      const reply = await post(holdPath(holdId, 'increment'), { amount: formatAmount(amountMicros) }, idempotencyKey);
      return holdFrom(expect(reply, 200, holdSchema));
    },

    async capture({ holdId, amountMicros, idempotencyKey }) {
      const reply = await post(holdPath(holdId, 'capture'), { amount: formatAmount(amountMicros) }, idempotencyKey);
      const slip = expect(reply, 201, captureSchema);
      return { captureId: slip.id, authorizationNumber: slip.authorizationNumber, amountMicros: amountFrom(slip.amount) };
    },

    async void({ holdId, idempotencyKey }) {
      const reply = await post(holdPath(holdId, 'void'), {}, idempotencyKey);
      expect(reply, 200, z.object({ id: z.string() }));
    },

    async refund({ captureId, amountMicros, reference, idempotencyKey }) {
      const reply = await post('/v1/refunds', { capture: captureId, amount: formatAmount(amountMicros), reference }, idempotencyKey);
      const refund = expect(reply, 201, refundSchema);
      return { refundId: refund.id, captureId: refund.captureId, amountMicros: amountFrom(refund.amount) };
    },

    async listOpenHolds() {
      // A GET changes nothing, so it is retried like the keyed POSTs without needing a key.
      const reply = await request('GET', '/v1/holds?state=open');
      return expect(reply, 200, holdListSchema).holds.map(holdFrom);
    },
  };
}

/**
 * A connection that was refused or never resolved carried nothing to the card network, nor did
 * a call the closed client never dispatched (shutdown during a backoff).
 */
function neverSent(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED';
}

/** undici puts the system error's code on the error itself; fetch wrapped it in `cause`. */
function errorCode(error: unknown): string | undefined {
  const failure = error as { code?: unknown; cause?: { code?: unknown } } | undefined;
  const code = failure?.code ?? failure?.cause?.code;
  return typeof code === 'string' ? code : undefined;
}

function holdFrom(view: z.output<typeof holdSchema>): Hold {
  const expiresAt = Date.parse(view.expiresAt);
  if (Number.isNaN(expiresAt)) throw new Error(`card network sent an unreadable expiresAt: ${view.expiresAt}`);
  return {
    holdId: view.id,
    reference: view.reference,
    authorizationNumber: view.authorizationNumber,
    amountMicros: amountFrom(view.amount),
    expiresAt,
  };
}

/** The success body in the expected shape, or the error the reply stands for. */
function expect<T>(reply: Reply, status: number, schema: z.ZodType<T>): T {
  if (reply.status === status) {
    const parsed = schema.safeParse(reply.body);
    if (parsed.success) return parsed.data;
    throw new Error(`card network answered ${status} with an unexpected body: ${z.prettifyError(parsed.error)}`);
  }
  const problem = problemSchema.safeParse(reply.body);
  const code = problem.success ? problem.data.code : 'unknown';
  if (reply.status === 402 && code === 'card_declined') throw new CardDeclinedError(declineReason(problem.data?.reason));
  throw new CardNetworkRequestError(reply.status, code, (problem.success && problem.data.detail) || 'no detail');
}

function declineReason(reason: string | undefined): DeclineReason {
  return DECLINE_REASONS.find((known) => known === reason) ?? 'generic_decline';
}

function amountFrom(text: string) {
  const micros = parseAmount(text);
  if (micros === null) throw new Error(`card network sent an unreadable amount: ${text}`);
  return micros;
}

function parseJson(text: string, status: number): unknown {
  try {
    return text === '' ? null : JSON.parse(text);
  } catch {
    throw new Error(`card network answered ${status} with a body that is not JSON`);
  }
}

function describe(failure: unknown): string {
  if (failure instanceof Error) {
    const code = errorCode(failure);
    return code ? `${failure.message} (${code})` : failure.message;
  }
  return String(failure);
}
