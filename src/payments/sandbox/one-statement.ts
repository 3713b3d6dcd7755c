import { randomBytes } from 'node:crypto';
import { formatAmount, type Micros } from '../../billing/money.js';
import type { Sql } from '../../db/sql.js';
import type { Behavior } from './cards.js';

/**
 * The sandbox's common calls, each as one autocommitted statement that does the work and stores
 * its answer against the idempotency key together: one round trip and one commit instead of a
 * transaction of five. The key's primary key is the guard: a key already answered (a retry) or
 * taken by a concurrent twin makes the statement fail whole, having done nothing, and the caller
 * goes the careful way (a lock on the key, then the stored answer). Anything unusual (a hold not
 * open, an amount over it, a card that fails captures) is left to the careful way too: these
 * return null and have written nothing.
 */
export interface StoredAnswer {
  status: number;
  body: Record<string, unknown>;
}

const UNIQUE_VIOLATION = '23505';

const isUniqueViolation = (error: unknown) => (error as { code?: unknown }).code === UNIQUE_VIOLATION;

export interface Authorization {
  key: string;
  requestHash: string;
  behavior: Behavior;
  hold: { token: string; currency: string; amount: Micros; reference: string | null; authorizationNumber: string };
  now: number;
  expiresAt: number;
}

interface Row {
  key: string;
  hash: string;
  status: number;
  body: string;
  createdAt: string;
  holdId: string | null;
  reference: string | null;
  auth: string | null;
  token: string | null;
  currency: string | null;
  amount: string | null;
  expiresAt: string | null;
}

/** The answer an authorization gets, and the row that stores it (with its hold, unless declined). */
function planned(call: Authorization): { answer: StoredAnswer; row: Row } {
  const { hold, behavior } = call;
  const createdAt = new Date(call.now).toISOString();
  const stored = { key: call.key, hash: call.requestHash, createdAt };
  const none = { holdId: null, reference: null, auth: null, token: null, currency: null, amount: null, expiresAt: null };
  if (behavior.kind === 'decline') {
    const body = { code: 'card_declined', reason: behavior.reason, detail: 'the card was declined' };
    return { answer: { status: 402, body }, row: { ...stored, status: 402, body: JSON.stringify(body), ...none } };
  }
  const id = `hold_${randomBytes(12).toString('hex')}`;
  const expiresAt = new Date(call.expiresAt).toISOString();
  const body = {
    id,
    reference: hold.reference,
    authorizationNumber: hold.authorizationNumber,
    amount: formatAmount(hold.amount),
    capturedAmount: formatAmount(0n),
    currency: hold.currency,
    state: 'open',
    expiresAt,
  };
  return {
    answer: { status: 201, body },
    row: {
      ...stored,
      status: 201,
      body: JSON.stringify(body),
      holdId: id,
      reference: hold.reference,
      auth: hold.authorizationNumber,
      token: hold.token,
      currency: hold.currency,
      amount: String(hold.amount),
      expiresAt,
    },
  };
}

/** Every row's answer stored and hold placed, in one statement: all of them, or (a key or number taken) none. */
async function insertAll(sql: Sql, rows: readonly Row[]): Promise<void> {
  const column = <K extends keyof Row>(name: K) => rows.map((r) => r[name]);
  await sql`
    with input as (
      select * from unnest(
        ${column('key')}::text[], ${column('hash')}::text[], ${column('status')}::int[], ${column('body')}::text[],
        ${column('createdAt')}::timestamptz[], ${column('holdId')}::text[], ${column('reference')}::text[], ${column('auth')}::text[],
        ${column('token')}::text[], ${column('currency')}::text[], ${column('amount')}::int8[], ${column('expiresAt')}::timestamptz[]
      ) as t(key, hash, status, body, created_at, hold_id, reference, auth, token, currency, amount, expires_at)
    ), stored as (
      insert into card_network.idempotency_keys (key, request_hash, status, body, created_at)
      select key, hash, status, body::jsonb, created_at from input
      returning key
    )
    insert into card_network.holds
      (id, reference, authorization_number, token, currency, amount_micros, state, expires_at, created_at, updated_at)
    select i.hold_id, i.reference, i.auth, i.token, i.currency, i.amount, 'open', i.expires_at, i.created_at, i.created_at
    from input i join stored using (key)
    where i.hold_id is not null`;
}

interface Waiting {
  row: Row;
  answer: StoredAnswer;
  resolve: (answer: StoredAnswer | null) => void;
  reject: (error: unknown) => void;
}

/**
 * Authorizations of cards whose behaviour is known, written as the journal writes transitions:
 * those that arrive while a write is in flight go together in the next one (one commit for many).
 * A batch that a taken key or authorization number fails is written again one by one, so that
 * only the request it concerns goes the careful way (null).
 */
export class Authorizations {
  private queue: Waiting[] = [];
  private writing = false;

  constructor(private readonly sql: Sql) {}

  authorize(call: Authorization): Promise<StoredAnswer | null> {
    const { answer, row } = planned(call);
    return new Promise((resolve, reject) => {
      this.queue.push({ row, answer, resolve, reject });
      if (!this.writing) {
        this.writing = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, 500);
      try {
        await insertAll(this.sql, batch.map((w) => w.row));
        for (const w of batch) w.resolve(w.answer);
      } catch (error) {
        if (batch.length === 1 || !isUniqueViolation(error)) {
          for (const w of batch) (isUniqueViolation(error) ? w.resolve(null) : w.reject(error));
          continue;
        }
        for (const w of batch) {
          try {
            await insertAll(this.sql, [w.row]);
            w.resolve(w.answer);
          } catch (alone) {
            if (isUniqueViolation(alone)) w.resolve(null);
            else w.reject(alone);
          }
        }
      }
    }
    this.writing = false;
  }
}

/**
 * A capture of an open, unexpired hold of a card with no capture failures to act out, for at most
 * what it holds: the charge slip, the hold captured (the rest released) and the answer.
 */
export async function captureAtOnce(
  sql: Sql,
  call: { key: string; requestHash: string; holdId: string; amount: Micros; now: number },
): Promise<{ answer: StoredAnswer; behavior: string } | null> {
  const at = new Date(call.now);
  const id = `ch_${randomBytes(12).toString('hex')}`;
  try {
    const [row] = await sql<{ authorizationNumber: string; behavior: string }[]>`
      with hold as (
        select h.id, h.authorization_number, c.behavior
        from card_network.holds h join card_network.cards c on c.token = h.token
        where h.id = ${call.holdId} and h.state = 'open' and h.expires_at > ${at} and h.amount_micros >= ${String(call.amount)}::bigint
          and c.behavior <> 'capture_fails_twice'
        for update of h
      ), slip as (
        insert into card_network.captures (id, hold_id, authorization_number, amount_micros, created_at)
        select ${id}, hold.id, hold.authorization_number, ${String(call.amount)}::bigint, ${at} from hold
        returning hold_id, authorization_number
      ), captured as (
        update card_network.holds h set state = 'captured', captured_micros = ${String(call.amount)}::bigint, updated_at = ${at}
        from slip where h.id = slip.hold_id
      ), stored as (
        insert into card_network.idempotency_keys (key, request_hash, status, body, created_at)
        select ${call.key}, ${call.requestHash}, 201,
          jsonb_build_object('id', ${id}::text, 'holdId', slip.hold_id, 'authorizationNumber', slip.authorization_number,
            'amount', ${formatAmount(call.amount)}::text),
          ${at}
        from slip
      )
      select slip.authorization_number as "authorizationNumber", hold.behavior from slip, hold`;
    if (!row) return null;
    return {
      answer: { status: 201, body: { id, holdId: call.holdId, authorizationNumber: row.authorizationNumber, amount: formatAmount(call.amount) } },
      behavior: row.behavior,
    };
  } catch (error) {
    if (isUniqueViolation(error)) return null;
    throw error;
  }
}
