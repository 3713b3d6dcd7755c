// Over 300 lines: the whole HTTP API of the stand-in card network (its money-moving calls share
// one idempotency and fault-injection wrapper here); its rules live in cards.ts and faults.ts.
import { createHash, createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import { z } from 'zod';
import { formatAmount, parseAmount, type Micros } from '../../billing/money.js';
import type { Clock } from '../../clock.js';
import type { Sql, TransactionSql } from '../../db/sql.js';
import { behaviorFor, checkCard, decodeBehavior, encodeBehavior, type Behavior } from './cards.js';
import { createFaultInjector, faultConfigSchema, type FaultInjector, type Phase } from './faults.js';
import { transaction } from '../../db/transaction.js';
import { Authorizations, captureAtOnce } from './one-statement.js';

/**
 * The card-network sandbox: a stand-in for a card processor, with the behaviour tollgate
 * must survive (declines, slow answers, transient 503s, idempotent replays, lapsing holds),
 * and an admin API (`/v1/faults`) through which a test makes the network misbehave on cue.
 */
export interface CardNetworkAppOptions {
  sql: Sql;
  clock: Clock;
  /** How long an authorization hold stays open before it lapses; `PUT /v1/faults` can override it. */
  holdValidityMs?: number;
  /** The delay of every answer about the "slow" test card. */
  slowMs?: number;
  /** The bearer token of the fault API (`/v1/faults`); without one the fault API is off (403). */
  faultsToken?: string | undefined;
  /** Added before every answer, as the round trip to a card company far away would (benchmarks). */
  latencyMs?: number;
  logger?: boolean | object;
}

const DAY_MS = 86_400_000;

/** What a POST answers; `delayMs` is the slow card's lag, applied after the work is committed. */
interface Answer {
  status: number;
  body: Record<string, unknown>;
  delayMs?: number;
  /** Not stored against the idempotency key. */
  transient?: boolean;
}

type Effect = (tx: TransactionSql, now: number) => Promise<Answer>;

const HOLD_STATES = ['open', 'captured', 'voided', 'expired'] as const;
type HoldState = (typeof HOLD_STATES)[number];

interface HoldRow {
  id: string;
  reference: string | null;
  authorization_number: string;
  token: string;
  currency: string;
  amount_micros: bigint;
  captured_micros: bigint;
  state: HoldState;
  failed_capture_attempts: number;
  expires_at: Date;
  created_at: Date;
}

interface CaptureRow {
  id: string;
  hold_id: string;
  authorization_number: string;
  amount_micros: bigint;
}

const tokenBody = z.object({
  number: z.string().max(40),
  expMonth: z.number().int(),
  expYear: z.number().int().min(1000).max(9999),
  cvc: z.string().max(8),
});
const holdBody = z.object({
  token: z.string().min(1).max(200),
  amount: z.string().max(40),
  currency: z.string().regex(/^[A-Z]{3}$/, 'currency must be an ISO code such as USD'),
  reference: z.string().min(1).max(200).optional(),
});
const incrementBody = z.object({ amount: z.string().max(40) });
const captureBody = z.object({ amount: z.string().max(40) });
const voidBody = z.object({});
const refundBody = z.object({
  capture: z.string().min(1).max(200),
  amount: z.string().max(40),
  reference: z.string().min(1).max(200).optional(),
});
const refundsQuery = z.object({
  capture: z.string().min(1).max(200).optional(),
  reference: z.string().min(1).max(200).optional(),
});

interface RefundRow {
  id: string;
  capture_id: string;
  amount_micros: bigint;
  reference: string | null;
  created_at: Date;
}
const holdsQuery = z.object({
  state: z.enum(HOLD_STATES).optional(),
  reference: z.string().min(1).max(200).optional(),
});

export function buildCardNetworkApp(options: CardNetworkAppOptions): FastifyInstance {
  const { sql, clock } = options;
  const faults: FaultInjector = createFaultInjector({ holdValidityMs: options.holdValidityMs ?? 7 * DAY_MS });
  const slowMs = options.slowMs ?? 2000;
  // Request bodies carry card numbers: the default request serializer logs none of them.
  const app = Fastify({ logger: (options.logger ?? false) as FastifyServerOptions['logger'] });

  // Injected waits can be minutes long; closing the sandbox cuts them short instead of
  // waiting them out (a cut-short hang-up still hangs up, a cut-short slow answer answers).
  const closing = new AbortController();
  // Every wait under way listens to it (a slow card network has hundreds at once), each until it ends:
  // many listeners, no leak, so Node's warning past ten says nothing.
  setMaxListeners(0, closing.signal);
  app.addHook('preClose', (done) => {
    closing.abort();
    done();
  });
  const pause = async (ms: number) => {
    if (ms <= 0 || closing.signal.aborted) return;
    await sleep(ms, undefined, { signal: closing.signal }).catch(() => {});
  };

  if (options.latencyMs) {
    const latencyMs = options.latencyMs;
    app.addHook('onSend', async (_request, _reply, payload) => {
      await pause(latencyMs);
      return payload;
    });
  }

  let salt: Promise<string> | undefined;
  const installSalt = (): Promise<string> => {
    if (!salt) {
      salt = sql<{ salt: string }[]>`select salt from card_network.install`.then(([row]) => {
        if (!row) throw new Error('card_network.install has no salt: run the sandbox migrations');
        return row.salt;
      });
      // A failed read is tried again by the next request rather than remembered.
      salt.catch(() => (salt = undefined));
    }
    return salt;
  };
  const keyed = async (purpose: string, text: string) =>
    createHmac('sha256', await installSalt()).update(`${purpose}\n${text}`).digest('hex');

  // Calls by idempotency key from their arrival until what they do is committed (see the decline below).
  const committing = new Map<string, Set<Promise<void>>>();
  const arrivals = new WeakMap<FastifyRequest, { arrival: Promise<void>; finish: () => void }>();
  /**
   * An attempt counts as on its way from the moment its headers arrive, before its body is read
   * (an attempt whose body was still being read when a retry's decline was drawn committed a
   * hold after it: seen in CI's card-faults-load at 16:01). Finished once, by whichever comes
   * first: its handler, or the end of its response (a body that failed to parse).
   */
  function arrive(request: FastifyRequest): void {
    const key = request.headers['idempotency-key'];
    if (typeof key !== 'string' || key.length === 0 || key.length > 255) return;
    let resolve!: () => void;
    const arrival = new Promise<void>((done) => (resolve = done));
    const attempts = committing.get(key) ?? new Set<Promise<void>>();
    committing.set(key, attempts.add(arrival));
    let finished = false;
    arrivals.set(request, {
      arrival,
      finish: () => {
        if (finished) return;
        finished = true;
        resolve();
        attempts.delete(arrival);
        if (attempts.size === 0 && committing.get(key) === attempts) committing.delete(key);
      },
    });
  }
  const finishArrival = (request: FastifyRequest) => arrivals.get(request)?.finish();
  const delayFor = (behavior: Behavior) => (behavior.kind === 'slow' ? slowMs : 0);

  /**
   * Runs `effect` at most once per idempotency key. The advisory lock on the key makes a
   * second identical request wait for the first and then replay its stored answer. 5xx
   * answers are not stored, so a retry with the same key tries again.
   */
  async function once(key: string, requestHash: string, effect: Effect, now: number): Promise<Answer> {
    return transaction(sql, async (tx) => {
      // Sent together (one round trip): the connection runs them in order, so the lookup sees
      // the key only once the lock is held.
      const [, [seen]] = await Promise.all([
        tx`select pg_advisory_xact_lock(hashtextextended(${key}, 0))`,
        tx<{ request_hash: string; status: number; body: Record<string, unknown> }[]>`
          select request_hash, status, body from card_network.idempotency_keys where key = ${key}`,
      ]);
      if (seen) {
        return seen.request_hash === requestHash
          ? { status: seen.status, body: seen.body }
          : problem(409, 'idempotency_key_reused', 'this Idempotency-Key was used with a different request');
      }
      const answer = await effect(tx, now);
      // Not kept: 5xx (a retry tries again) and injected declines of calls on a hold (the fault is
      // on the line, not the card: a retry of a capture or a void may go through).
      if (answer.status < 500 && !answer.transient) {
        await tx`
          insert into card_network.idempotency_keys (key, request_hash, status, body, created_at)
          values (${key}, ${requestHash}, ${answer.status}, ${JSON.stringify(answer.body)}::jsonb, ${new Date(now)})`;
      }
      return answer;
    }) as Promise<Answer>;
  }

  /**
   * A mutating route: Idempotency-Key required, body validated. `plan` answers at once for
   * input it refuses (such answers are not stored against the key) or returns the effect.
   * Every call is counted for its phase; a well-formed one may then draw an injected fault
   * (a malformed one is refused as usual and uses up no rule). Replays draw like first calls:
   * the network can fail on either, but only a new request can be declined.
   */
  function mutation<S extends z.ZodType>(
    phase: Phase,
    path: string,
    schema: S,
    plan: (input: z.output<S>, params: Record<string, string>, now: number) => Answer | Effect,
    /** The usual case in one statement (one-statement.ts), or null to go the careful way. */
    atOnce?: (input: z.output<S>, params: Record<string, string>, call: { key: string; requestHash: string; now: number }) => Promise<Answer | null>,
  ): void {
    const hooks = {
      onRequest: (request: FastifyRequest, _reply: FastifyReply, done: () => void) => {
        arrive(request);
        done();
      },
      onResponse: (request: FastifyRequest, _reply: FastifyReply, done: () => void) => {
        finishArrival(request);
        done();
      },
      onRequestAbort: (request: FastifyRequest, done: () => void) => {
        finishArrival(request);
        done();
      },
    };
    app.post(path, hooks, async (request, reply) => {
      try {
        return await handle(request, reply);
      } finally {
        finishArrival(request);
      }
    });

    async function handle(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
      faults.arrive(phase);
      const key = request.headers['idempotency-key'];
      if (typeof key !== 'string' || key.length === 0) {
        return send(reply, problem(400, 'idempotency_key_required', 'the Idempotency-Key header is required'));
      }
      if (key.length > 255) return send(reply, problem(400, 'invalid_request', 'Idempotency-Key is at most 255 characters'));
      const raw = request.body ?? {};
      const parsed = schema.safeParse(raw);
      if (!parsed.success) return send(reply, problem(400, 'invalid_request', describeIssues(parsed.error)));

      const fault = faults.draw(phase);
      switch (fault?.fault) {
        case 'error':
          return send(reply, problem(503, 'unavailable', 'the card network is temporarily unavailable'));
        case 'timeout_before_commit':
          await pause(fault.delayMs);
          return hangUp(request, reply);
      }

      // A decline commits nothing: it stops counting as on its way, and waits (below) for the
      // attempts of its key that arrived before it was drawn.
      const own = arrivals.get(request);
      if (fault?.fault === 'decline') own?.finish();
      const earlier = [...(committing.get(key) ?? [])].filter((attempt) => attempt !== own?.arrival);
      const now = clock.now();
      const input = parsed.data;
      const idempotencyKey = key;
      let answer: Answer;
      try {
        answer = await decide();
      } finally {
        own?.finish();
      }
      // Committed (and the answer stored against the key) before the line goes dead.
      if (fault?.fault === 'drop_after_commit') return hangUp(request, reply);
      if (answer.delayMs) await pause(answer.delayMs);
      if (fault?.fault === 'slow') await pause(fault.delayMs);
      return send(reply, answer);

      async function decide(): Promise<Answer> {
        const planned = plan(input, request.params as Record<string, string>, now);
        if (typeof planned === 'function') {
          const requestHash = await keyed('request', `POST ${request.url.split('?')[0]}\n${canonicalJson(raw)}`);
          // An injected decline is decided under the key's lock, as a real processor decides: a
          // key that already has an answer (or gets one from a request still in flight) is
          // replayed, never declined after it was approved.
          // An authorization declined on the line stays declined for its key: an earlier attempt
          // of the key that reaches the network after the decline (held up on the line while its
          // sender gave up and retried) replays it, instead of placing a hold its sender has
          // already been told was never placed (CI's card-faults-load at 20:08, the sandbox
          // sharing tollgate's busy event loop).
          const effect: Effect =
            fault?.fault === 'decline'
              ? async () => ({
                  ...problem(402, 'card_declined', 'the card network refused this call', { reason: 'processing_error' }),
                  transient: phase !== 'authorize',
                })
              : planned;
          let quick: Answer | null = null;
          if (fault?.fault !== 'decline' && atOnce) {
            quick = await atOnce(input, request.params as Record<string, string>, { key: idempotencyKey, requestHash, now });
          } else if (fault?.fault === 'decline') {
            // The one-statement path takes no lock on the key: a decline drawn for a retry waits
            // for earlier attempts of the key still on their way to a commit (registered as their
            // headers arrived), and then replays what they stored.
            await Promise.all(earlier);
          }
          return quick ?? (await once(idempotencyKey, requestHash, effect, now));
        }
        if (fault?.fault === 'decline') return problem(402, 'card_declined', 'the card network refused this call', { reason: 'processing_error' });
        return planned;
      }
    }
  }

  mutation('tokenize', '/v1/tokens', tokenBody, (input, _params, now) => {
    const checked = checkCard(input, now);
    if (!checked.ok) return problem(400, checked.code, checked.detail);
    const behavior = behaviorFor(checked.number);
    return async (tx) => {
      const token = `tok_${randomBytes(12).toString('hex')}`;
      const fingerprint = await keyed('card', checked.number);
      await tx`
        insert into card_network.cards (token, fingerprint, brand, last4, exp_month, exp_year, behavior, created_at)
        values (${token}, ${fingerprint}, ${checked.brand}, ${checked.last4}, ${input.expMonth}, ${input.expYear},
                ${encodeBehavior(behavior)}, ${new Date(now)})`;
      const body = { token, brand: checked.brand, last4: checked.last4, expMonth: input.expMonth, expYear: input.expYear };
      return { status: 201, body, delayMs: delayFor(behavior) };
    };
  });

  mutation('authorize', '/v1/holds', holdBody, (input) => {
    const amount = parseCents(input.amount);
    if (amount === null || amount === 0n) return problem(400, 'invalid_request', 'amount must be a positive decimal string in whole cents');
    return async (tx, now) => {
      const [card] = await tx<{ behavior: string }[]>`select behavior from card_network.cards where token = ${input.token}`;
      if (!card) return problem(404, 'token_not_found', 'no card has this token');
      const behavior = decodeBehavior(card.behavior);
      const delayMs = delayFor(behavior);
      if (behavior.kind === 'decline') {
        return { ...problem(402, 'card_declined', 'the card was declined', { reason: behavior.reason }), delayMs };
      }
      const reference = input.reference ?? null;
      const hold = await insertHold(tx, { token: input.token, currency: input.currency, amount, reference, now });
      return { status: 201, body: holdView(hold, now), delayMs };
    };
  }, async (input, _params, call) => {
    const amount = parseCents(input.amount)!;
    const behavior = await behaviorOf(input.token);
    if (!behavior) return null;
    const answer = await authorizations.authorize({
      ...call,
      behavior,
      hold: { token: input.token, currency: input.currency, amount, reference: input.reference ?? null, authorizationNumber: authorizationNumber() },
      expiresAt: call.now + faults.holdValidityMs(),
    });
    return answer && { ...answer, delayMs: delayFor(behavior) };
  });

  const authorizations = new Authorizations(sql);

  // A card's behaviour is fixed when it is tokenized: read once per token, then known.
  const behaviors = new Map<string, Behavior>();
  async function behaviorOf(token: string): Promise<Behavior | null> {
    const known = behaviors.get(token);
    if (known) return known;
    const [card] = await sql<{ behavior: string }[]>`select behavior from card_network.cards where token = ${token}`;
    if (!card) return null;
    const behavior = decodeBehavior(card.behavior);
    if (behaviors.size >= 100_000) behaviors.clear();
    behaviors.set(token, behavior);
    return behavior;
  }

  async function insertHold(
    tx: TransactionSql,
    h: { token: string; currency: string; amount: Micros; reference: string | null; now: number },
  ) {
    const id = `hold_${randomBytes(12).toString('hex')}`;
    const at = new Date(h.now);
    const expiresAt = new Date(h.now + faults.holdValidityMs());
    // Six characters give 2 billion numbers: a clash is rare, and answered by drawing again.
    for (let attempt = 0; attempt < 20; attempt++) {
      const [row] = await tx<HoldRow[]>`
        insert into card_network.holds
          (id, reference, authorization_number, token, currency, amount_micros, state, expires_at, created_at, updated_at)
        values (${id}, ${h.reference}, ${authorizationNumber()}, ${h.token}, ${h.currency}, ${String(h.amount)}::bigint, 'open',
                ${expiresAt}, ${at}, ${at})
        on conflict (authorization_number) do nothing
        returning *`;
      if (row) return row;
    }
    throw new Error('could not draw an unused authorization number');
  }

  /** Locks the hold so that concurrent captures and voids take turns. */
  async function lockHold(tx: TransactionSql, id: string, now: number) {
    const [row] = await tx<(HoldRow & { behavior: string })[]>`
      select h.*, c.behavior from card_network.holds h join card_network.cards c on c.token = h.token
      where h.id = ${id} for update of h`;
    if (row && stateAt(row, now) === 'expired' && row.state === 'open') {
      await tx`update card_network.holds set state = 'expired', updated_at = ${new Date(now)} where id = ${id}`;
      row.state = 'expired';
    }
    return row;
  }

  /**
   * Incremental authorization: the new amount is the hold's total, as with Stripe's
   * increment_authorization. Asking for the amount already held changes nothing and is
   * approved without asking the card, so a re-driven raise cannot be declined after the fact.
   */
  mutation('increment', '/v1/holds/:id/increment', incrementBody, (input, params) => {
    const amount = parseCents(input.amount);
    if (amount === null || amount === 0n) return problem(400, 'invalid_request', 'amount must be a positive decimal string in whole cents');
    return async (tx, now) => {
      const hold = await lockHold(tx, params.id!, now);
      if (!hold) return problem(404, 'hold_not_found', 'no hold has this id');
      const behavior = decodeBehavior(hold.behavior);
      const delayMs = delayFor(behavior);
      if (hold.state !== 'open') return { ...problem(409, 'hold_not_open', `the hold is ${hold.state}`), delayMs };
      if (amount < hold.amount_micros) {
        return { ...problem(409, 'amount_below_hold', 'an increment cannot lower a hold; capture less instead'), delayMs };
      }
      if (amount === hold.amount_micros) return { status: 200, body: holdView(hold, now), delayMs };
      if (behavior.kind === 'decline' || behavior.kind === 'increment_declines') {
        return { ...problem(402, 'card_declined', 'the increment was declined', { reason: behavior.reason }), delayMs };
      }
      const at = new Date(now);
      await tx`
        insert into card_network.increments (id, hold_id, from_micros, to_micros, created_at)
        values (${`inc_${randomBytes(12).toString('hex')}`}, ${hold.id}, ${String(hold.amount_micros)}::bigint,
                ${String(amount)}::bigint, ${at})`;
      const [raised] = await tx<HoldRow[]>`
        update card_network.holds set amount_micros = ${String(amount)}::bigint, updated_at = ${at}
        where id = ${hold.id}
        returning *`;
      return { status: 200, body: holdView(raised!, now), delayMs };
    };
  });

  mutation('capture', '/v1/holds/:id/capture', captureBody, (input, params) => {
    const amount = parseCents(input.amount);
    if (amount === null) return problem(400, 'invalid_request', 'amount must be a decimal string in whole cents');
    return async (tx, now) => {
      const hold = await lockHold(tx, params.id!, now);
      if (!hold) return problem(404, 'hold_not_found', 'no hold has this id');
      const behavior = decodeBehavior(hold.behavior);
      const delayMs = delayFor(behavior);
      if (behavior.kind === 'capture_fails_twice' && hold.failed_capture_attempts < 2) {
        await tx`update card_network.holds set failed_capture_attempts = failed_capture_attempts + 1 where id = ${hold.id}`;
        return problem(503, 'network_unavailable', 'the card network is temporarily unavailable');
      }
      if (hold.state !== 'open') return { ...problem(409, 'hold_not_open', `the hold is ${hold.state}`), delayMs };
      if (amount > hold.amount_micros) {
        return { ...problem(409, 'amount_exceeds_hold', 'the capture is larger than the hold'), delayMs };
      }
      const id = `ch_${randomBytes(12).toString('hex')}`;
      const at = new Date(now);
      await tx`
        insert into card_network.captures (id, hold_id, authorization_number, amount_micros, created_at)
        values (${id}, ${hold.id}, ${hold.authorization_number}, ${String(amount)}::bigint, ${at})`;
      // The rest of the hold is released: it is simply not captured.
      await tx`
        update card_network.holds set state = 'captured', captured_micros = ${String(amount)}::bigint, updated_at = ${at}
        where id = ${hold.id}`;
      const slip = { id, hold_id: hold.id, authorization_number: hold.authorization_number, amount_micros: amount };
      return { status: 201, body: captureView(slip), delayMs };
    };
  }, async (input, params, call) => {
    const captured = await captureAtOnce(sql, { ...call, holdId: params.id!, amount: parseCents(input.amount)! });
    return captured && { ...captured.answer, delayMs: delayFor(decodeBehavior(captured.behavior)) };
  });

  mutation('void', '/v1/holds/:id/void', voidBody, (_input, params) => async (tx, now) => {
    const hold = await lockHold(tx, params.id!, now);
    if (!hold) return problem(404, 'hold_not_found', 'no hold has this id');
    const delayMs = delayFor(decodeBehavior(hold.behavior));
    if (hold.state === 'captured') return { ...problem(409, 'hold_not_open', 'the hold is captured'), delayMs };
    if (hold.state === 'open') {
      await tx`update card_network.holds set state = 'voided', updated_at = ${new Date(now)} where id = ${hold.id}`;
      hold.state = 'voided';
    }
    // Voiding a voided or lapsed hold changes nothing and says so.
    return { status: 200, body: holdView(hold, now), delayMs };
  });

  /**
   * A refund of (part of) a capture, as Stripe's `POST /v1/refunds` with `charge`: never more than
   * what the capture has left unrefunded. The capture's row lock makes refunds of one capture take
   * turns, so two with different keys cannot both take its last cent.
   */
  mutation('refund', '/v1/refunds', refundBody, (input) => {
    const amount = parseCents(input.amount);
    if (amount === null || amount === 0n) return problem(400, 'invalid_request', 'amount must be a positive decimal string in whole cents');
    return async (tx, now) => {
      const [capture] = await tx<CaptureRow[]>`
        select id, hold_id, authorization_number, amount_micros from card_network.captures where id = ${input.capture} for update`;
      if (!capture) return problem(404, 'capture_not_found', 'no capture has this id');
      // Summed only once the lock is held: a sum in the locking statement would be read from its
      // snapshot, taken before a concurrent refund of this capture committed.
      const [sum] = await tx<{ refunded: bigint }[]>`
        select coalesce(sum(amount_micros), 0)::bigint as refunded from card_network.refunds where capture_id = ${capture.id}`;
      const refundable = BigInt(capture.amount_micros) - BigInt(sum!.refunded);
      if (amount > refundable) {
        return problem(409, 'amount_exceeds_refundable', `the capture has ${formatAmount(refundable)} left to refund`, { refundable: formatAmount(refundable) });
      }
      const [refund] = await tx<RefundRow[]>`
        insert into card_network.refunds (id, capture_id, amount_micros, reference, created_at)
        values (${`re_${randomBytes(12).toString('hex')}`}, ${capture.id}, ${String(amount)}::bigint, ${input.reference ?? null}, ${new Date(now)})
        returning *`;
      return { status: 201, body: refundView(refund!) };
    };
  });

  app.get('/v1/refunds', async (request, reply) => {
    const query = refundsQuery.safeParse(request.query ?? {});
    if (!query.success) return send(reply, problem(400, 'invalid_request', describeIssues(query.error)));
    const { capture, reference } = query.data;
    const rows = await sql<RefundRow[]>`
      select * from card_network.refunds
      where true ${capture === undefined ? sql`` : sql`and capture_id = ${capture}`} ${reference === undefined ? sql`` : sql`and reference = ${reference}`}
      order by created_at, id`;
    return { refunds: rows.map(refundView) };
  });

  /** Filters by the state a hold has now (an open hold past its expiry is expired) and by reference. */
  app.get('/v1/holds', async (request, reply) => {
    const query = holdsQuery.safeParse(request.query ?? {});
    if (!query.success) return send(reply, problem(400, 'invalid_request', describeIssues(query.error)));
    const { state, reference } = query.data;
    const now = clock.now();
    const at = new Date(now);
    const byState =
      state === undefined
        ? sql``
        : state === 'open'
          ? sql`and state = 'open' and expires_at > ${at}`
          : state === 'expired'
            ? sql`and (state = 'expired' or (state = 'open' and expires_at <= ${at}))`
            : sql`and state = ${state}`;
    const byReference = reference === undefined ? sql`` : sql`and reference = ${reference}`;
    const rows = await sql<HoldRow[]>`
      select * from card_network.holds where true ${byState} ${byReference} order by created_at, id`;
    return { holds: rows.map((row) => holdView(row, now)) };
  });

  app.get<{ Params: { id: string } }>('/v1/holds/:id', async (request, reply) => {
    const [row] = await sql<HoldRow[]>`select * from card_network.holds where id = ${request.params.id}`;
    if (!row) return send(reply, problem(404, 'hold_not_found', 'no hold has this id'));
    return holdView(row, clock.now());
  });

  app.get('/v1/increments', async () => {
    const rows = await sql<{ id: string; hold_id: string; from_micros: bigint; to_micros: bigint; created_at: Date }[]>`
      select id, hold_id, from_micros, to_micros, created_at from card_network.increments order by created_at, id`;
    return {
      increments: rows.map((row) => ({
        id: row.id,
        holdId: row.hold_id,
        fromAmount: formatAmount(BigInt(row.from_micros)),
        toAmount: formatAmount(BigInt(row.to_micros)),
        createdAt: row.created_at.toISOString(),
      })),
    };
  });

  // The fault admin API: for tests, never itself subject to faults, and only with its own token:
  // whoever can reach it can make every payment fail.
  const expectedToken = options.faultsToken === undefined ? null : createHash('sha256').update(options.faultsToken).digest();
  const faultsGuard = async (request: FastifyRequest, reply: FastifyReply) => {
    if (expectedToken === null) {
      return send(reply, problem(403, 'faults_disabled', 'the fault API is off: start the sandbox with CARD_NETWORK_FAULTS_TOKEN to use it'));
    }
    const given = /^Bearer\s+(\S{1,512})$/i.exec(request.headers.authorization ?? '')?.[1];
    if (given === undefined || !timingSafeEqual(createHash('sha256').update(given).digest(), expectedToken)) {
      return send(reply, problem(401, 'unauthenticated', 'the fault API needs its bearer token'));
    }
    return undefined;
  };
  app.get('/v1/faults', { onRequest: faultsGuard }, async () => faults.view());

  app.put('/v1/faults', { onRequest: faultsGuard }, async (request, reply) => {
    const parsed = faultConfigSchema.safeParse(request.body ?? {});
    if (!parsed.success) return send(reply, problem(400, 'invalid_request', describeIssues(parsed.error)));
    faults.configure(parsed.data);
    return faults.view();
  });

  app.delete('/v1/faults', { onRequest: faultsGuard }, async () => {
    faults.reset();
    return faults.view();
  });

  app.get('/v1/captures', async () => {
    const rows = await sql<CaptureRow[]>`
      select id, hold_id, authorization_number, amount_micros from card_network.captures order by created_at, id`;
    return { captures: rows.map(captureView) };
  });

  app.setNotFoundHandler((request, reply) =>
    send(reply, problem(404, 'not_found', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      // Fastify's own 4xx (malformed JSON, wrong content type) say nothing of the body's content.
      return send(reply, problem(status, 'invalid_request', error.message));
    }
    request.log.error({ err: error }, 'card network request failed');
    return send(reply, problem(500, 'internal_error', 'the card network could not answer'));
  });

  return app;
}

/** Ends the connection without a word: to the client it looks like a network failure. */
function hangUp(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  reply.hijack();
  request.raw.socket.destroy();
  return reply;
}

function send(reply: FastifyReply, answer: Answer): FastifyReply {
  if (answer.status >= 400) reply.type('application/problem+json; charset=utf-8');
  return reply.code(answer.status).send(answer.body);
}

function problem(status: number, code: string, detail: string, extra: Record<string, unknown> = {}): Answer {
  return { status, body: { code, ...extra, detail } };
}

function describeIssues(error: z.ZodError): string {
  // Messages only, never the offending values: they may be card data.
  return error.issues.map((issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`).join('; ');
}

/** Card networks move whole cents; sub-cent amounts are a caller's rounding bug. */
function parseCents(text: string): Micros | null {
  return parseAmount(text, 2);
}

function stateAt(row: Pick<HoldRow, 'state' | 'expires_at'>, now: number): HoldState {
  return row.state === 'open' && now >= row.expires_at.getTime() ? 'expired' : row.state;
}

function holdView(row: HoldRow, now: number) {
  return {
    id: row.id,
    reference: row.reference ?? null,
    authorizationNumber: row.authorization_number,
    amount: formatAmount(BigInt(row.amount_micros)),
    capturedAmount: formatAmount(BigInt(row.captured_micros)),
    currency: row.currency,
    state: stateAt(row, now),
    expiresAt: row.expires_at.toISOString(),
  };
}

function captureView(row: CaptureRow) {
  return {
    id: row.id,
    holdId: row.hold_id,
    authorizationNumber: row.authorization_number,
    amount: formatAmount(BigInt(row.amount_micros)),
  };
}

function refundView(row: RefundRow) {
  return {
    id: row.id,
    captureId: row.capture_id,
    amount: formatAmount(BigInt(row.amount_micros)),
    reference: row.reference ?? null,
    createdAt: row.created_at.toISOString(),
  };
}

const AUTH_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function authorizationNumber(): string {
  let text = '';
  for (let i = 0; i < 6; i++) text += AUTH_ALPHABET[randomInt(AUTH_ALPHABET.length)];
  return text;
}

/** JSON with object keys sorted, so the same request hashes the same whatever its key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
