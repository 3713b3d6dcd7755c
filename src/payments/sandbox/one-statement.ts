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

/** An authorization of a card whose behaviour is known: the hold and the answer, or the decline and the answer. */
export async function authorizeAtOnce(
  sql: Sql,
  call: {
    key: string;
    requestHash: string;
    behavior: Behavior;
    hold: { token: string; currency: string; amount: Micros; reference: string | null; authorizationNumber: string };
    now: number;
    expiresAt: number;
  },
): Promise<StoredAnswer | null> {
  const at = new Date(call.now);
  const { hold, behavior } = call;
  try {
    if (behavior.kind === 'decline') {
      const body = { code: 'card_declined', reason: behavior.reason, detail: 'the card was declined' };
      await sql`
        insert into card_network.idempotency_keys (key, request_hash, status, body, created_at)
        values (${call.key}, ${call.requestHash}, 402, ${sql.json(body)}, ${at})`;
      return { status: 402, body };
    }
    const id = `hold_${randomBytes(12).toString('hex')}`;
    const body = {
      id,
      reference: hold.reference,
      authorizationNumber: hold.authorizationNumber,
      amount: formatAmount(hold.amount),
      capturedAmount: formatAmount(0n),
      currency: hold.currency,
      state: 'open',
      expiresAt: new Date(call.expiresAt).toISOString(),
    };
    await sql`
      with stored as (
        insert into card_network.idempotency_keys (key, request_hash, status, body, created_at)
        values (${call.key}, ${call.requestHash}, 201, ${sql.json(body)}, ${at})
        returning key
      )
      insert into card_network.holds
        (id, reference, authorization_number, token, currency, amount_micros, state, expires_at, created_at, updated_at)
      select ${id}, ${hold.reference}, ${hold.authorizationNumber}, ${hold.token}, ${hold.currency}, ${String(hold.amount)}::bigint,
        'open', ${new Date(call.expiresAt)}, ${at}, ${at}
      from stored`;
    return { status: 201, body };
  } catch (error) {
    // The key was answered before (or is being answered), or the authorization number is taken.
    if (isUniqueViolation(error)) return null;
    throw error;
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
