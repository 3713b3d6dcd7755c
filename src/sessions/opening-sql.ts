import { openedEvent, type SessionContext } from '../../machines/session/index.js';
import type { Queryable } from '../db/sql.js';
import type { PaymentMode } from '../payments/balance-gateway.js';
import type { StoredEvent } from '../events/event-store.js';

export interface OpeningRecord {
  context: SessionContext;
  /** The state path of the first snapshot. */
  path: string;
  snapshot: unknown;
  machineVersion: number;
  service: { name: string };
  server: { name: string };
  /** Unsettled sessions the account may have at once (MAX_OPEN_SESSIONS_PER_ACCOUNT). */
  maxOpenSessions: number;
  /** The fencing token: the epoch of this node's lease on the server (null: not fenced). */
  ownerEpoch?: bigint | null;
}

export interface OpenedCustomer {
  name: string;
  email: string;
  currency: string;
  estimatedStorageGb: string;
  estimatedProcessingHours: string;
  cardToken: string;
  paymentMode: PaymentMode;
}

export type OpeningOutcome =
  | { kind: 'opened'; customer: OpenedCustomer; events: StoredEvent[] }
  | { kind: 'no_account' }
  /** The account's state opens no session (suspended, closed: its machine's tag `opens`); nothing was written. */
  | { kind: 'account_not_open'; state: string }
  | { kind: 'currency_mismatch' }
  /** The quote it opens with opened another session meanwhile. */
  | { kind: 'quote_used' }
  /** The hold does not fit what is left of the outstanding limit; nothing was written. */
  | { kind: 'limit_reached'; availableMicros: bigint }
  /** The account has as many unsettled sessions as it may; nothing was written. */
  | { kind: 'session_quota' };

/**
 * One statement, so one round trip: under the account's row lock it reserves the session's hold
 * (context.maxChargeMicros) if it fits the outstanding limit (DESIGN rule 6; a postpaid account,
 * which operators trust, is not held to it) and the currency
 * matches, and only then writes the session's first row, its log row (the customer as they are
 * now), its first history line and its `session.opened` event: the intent to authorize. Nothing
 * is written when the reservation is refused. Written again (its commit's answer lost), it finds
 * the row and reserves nothing twice.
 */
export async function insertOpening(db: Queryable, record: OpeningRecord): Promise<OpeningOutcome> {
  const c = record.context;
  const createdAt = new Date(c.createdAt);
  const hold = BigInt(c.maxChargeMicros);
  const { type, at, ...payload } = openedEvent(c);
  const [row] = await db<
    (OpenedCustomer & {
      availableMicros: bigint;
      atQuota: boolean;
      mayOpen: boolean;
      state: string;
      reserved: boolean;
      existing: boolean;
      events: StoredEvent[] | null;
    })[]
  >`
    with existing as (
      select id from sessions where id = ${c.sessionId}
    ), claimable as (
      -- A quote is used once: locked here, claimed below by the session this writes.
      select id from quotes where id = ${c.quote?.quoteId ?? null}::uuid and session_id is null for update
    ), account as (
      select id, name, email, currency, card_token, payment_mode, estimated_storage_gb, estimated_processing_hours,
        outstanding_limit_micros - reserved_micros as available, open_sessions, may_open, state
      from accounts where id = ${c.accountId} for no key update
    ), reserved as (
      update accounts a set reserved_micros = a.reserved_micros + ${hold}, open_sessions = a.open_sessions + 1
      from account
      where a.id = account.id and account.may_open and (account.payment_mode = 'postpaid' or account.available >= ${hold}) and account.currency = ${c.currency}
        and account.open_sessions < ${record.maxOpenSessions}
        and not exists (select 1 from existing)
        and (${c.quote?.quoteId ?? null}::uuid is null or exists (select 1 from claimable))
      returning a.id
    ), opened as (
      insert into sessions (id, account_id, service_id, server_id, state, path, seq, machine_version, snapshot, currency,
        price_per_minute_micros, max_ms, max_charge_micros, reserved_micros, created_at, updated_at, owner_epoch)
      select ${c.sessionId}, reserved.id, ${c.serviceId}, ${c.serverId}, 'authorizing', ${record.path}, 0, ${record.machineVersion},
        ${db.json(record.snapshot as never)}, ${c.currency}, ${BigInt(c.tariff.pricePerMinuteMicros)}, ${c.maxMs},
        ${hold}, ${hold}, ${createdAt}, ${createdAt}, ${record.ownerEpoch ?? null}::int8
      from reserved
      returning id
    ), agreed as (
      update quotes q set session_id = opened.id from opened where q.id = ${c.quote?.quoteId ?? null}::uuid
    ), logged as (
      insert into session_log (session_id, account_id, customer_name, customer_email, estimated_storage_gb,
        estimated_processing_hours, service_id, service_name, server_id, server_name, currency, opened_at)
      select opened.id, account.id, account.name, account.email, account.estimated_storage_gb,
        account.estimated_processing_hours, ${c.serviceId}, ${record.service.name}, ${c.serverId},
        ${record.server.name}, ${c.currency}, ${createdAt}
      from opened, account
    ), history as (
      insert into session_events (session_id, seq, event, from_state, to_state, at, detail, owner_epoch)
      select opened.id, 0, 'OPEN', null, ${record.path}, ${createdAt},
        ${db.json({ maxChargeMicros: c.maxChargeMicros, maxMs: c.maxMs })}, ${record.ownerEpoch ?? null}::int8
      from opened
    ), published as (
      insert into domain_events (event_key, stream, type, at, payload)
      select ${`${c.sessionId}:0:0`}, ${`session:${c.sessionId}`}, ${type}, ${new Date(at)}, ${db.json(payload as never)}
      from opened
      returning position, tx::text as tx, stream, type, at, payload
    )
    select name, email, currency, card_token as "cardToken", payment_mode as "paymentMode", estimated_storage_gb::text as "estimatedStorageGb",
      estimated_processing_hours::text as "estimatedProcessingHours", available as "availableMicros",
      open_sessions >= ${record.maxOpenSessions} as "atQuota", may_open as "mayOpen", state,
      exists (select 1 from reserved) as reserved, exists (select 1 from existing) as existing,
      (select json_agg(published) from published) as events
    from account`;
  if (!row) return { kind: 'no_account' };
  const { availableMicros, atQuota, mayOpen, state, reserved, existing, events, ...customer } = row;
  if (reserved || existing) return { kind: 'opened', customer, events: (events ?? []).map(eventFromJson) };
  if (!mayOpen) return { kind: 'account_not_open', state };
  if (customer.currency !== c.currency) return { kind: 'currency_mismatch' };
  if (c.quote && availableMicros >= hold) return { kind: 'quote_used' };
  if (atQuota) return { kind: 'session_quota' };
  return { kind: 'limit_reached', availableMicros };
}

/** json_agg gives numbers and text where a direct row gives bigint and Date. */
function eventFromJson(e: StoredEvent): StoredEvent {
  return { ...e, position: BigInt(e.position as unknown as number), at: new Date(e.at) };
}
