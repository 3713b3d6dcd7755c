import type { SessionContext, SessionStateName } from '../../machines/session/index.js';
import type { Queryable, TransactionSql } from '../db/sql.js';

/** What one persisted transition of a session carries (DESIGN rule 2). */
export interface Transition {
  from: string | null;
  to: string;
  state: SessionStateName;
  event: string;
  at: number;
  context: SessionContext;
  previousContext: SessionContext | null;
  snapshot: unknown;
  machineVersion: number;
}

const date = (ms: number | null) => (ms === null ? null : new Date(ms));
const micros = (text: string | null | undefined) => (text == null ? null : BigInt(text));

export interface OpeningRecord {
  context: SessionContext;
  snapshot: unknown;
  machineVersion: number;
  service: { name: string };
  server: { name: string };
}

export interface OpenedCustomer {
  name: string;
  email: string;
  currency: string;
  estimatedStorageGb: string;
  estimatedProcessingHours: string;
  cardToken: string;
}

export type OpeningOutcome =
  | { kind: 'opened'; customer: OpenedCustomer }
  | { kind: 'no_account' }
  | { kind: 'currency_mismatch' }
  /** The hold does not fit what is left of the outstanding limit; nothing was written. */
  | { kind: 'limit_reached'; availableMicros: bigint };

/**
 * One statement, so one round trip and one commit: under the account's row lock it reserves the
 * session's hold (context.maxChargeMicros) if it fits the outstanding limit (DESIGN rule 6) and
 * the currency matches, and only then writes the session's first row, its log row (the customer
 * as they are now) and its first history line: the intent to authorize. Nothing is written
 * when the reservation is refused.
 */
export async function insertOpening(db: Queryable, record: OpeningRecord): Promise<OpeningOutcome> {
  const c = record.context;
  const createdAt = new Date(c.createdAt);
  const hold = BigInt(c.maxChargeMicros);
  const [row] = await db<(OpenedCustomer & { availableMicros: bigint; reserved: boolean })[]>`
    with account as (
      select id, name, email, currency, card_token, estimated_storage_gb, estimated_processing_hours,
        outstanding_limit_micros - reserved_micros as available
      from accounts where id = ${c.accountId} for no key update
    ), reserved as (
      update accounts a set reserved_micros = a.reserved_micros + ${hold}
      from account
      where a.id = account.id and account.available >= ${hold} and account.currency = ${c.currency}
      returning a.id
    ), opened as (
      insert into sessions (id, account_id, service_id, server_id, state, machine_version, snapshot, currency,
        price_per_minute_micros, max_ms, max_charge_micros, reserved_micros, created_at, updated_at)
      select ${c.sessionId}, reserved.id, ${c.serviceId}, ${c.serverId}, 'authorizing', ${record.machineVersion},
        ${db.json(record.snapshot as never)}, ${c.currency}, ${BigInt(c.pricePerMinuteMicros)}, ${c.maxMs},
        ${hold}, ${hold}, ${createdAt}, ${createdAt}
      from reserved
      returning id
    ), logged as (
      insert into session_log (session_id, account_id, customer_name, customer_email, estimated_storage_gb,
        estimated_processing_hours, service_id, service_name, server_id, server_name, currency, opened_at)
      select opened.id, account.id, account.name, account.email, account.estimated_storage_gb,
        account.estimated_processing_hours, ${c.serviceId}, ${record.service.name}, ${c.serverId},
        ${record.server.name}, ${c.currency}, ${createdAt}
      from opened, account
    ), history as (
      insert into session_events (session_id, event, from_state, to_state, at, detail)
      select opened.id, 'OPEN', null, 'authorizing.requesting', ${createdAt},
        ${db.json({ maxChargeMicros: c.maxChargeMicros, maxMs: c.maxMs })}
      from opened
    )
    select name, email, currency, card_token as "cardToken", estimated_storage_gb::text as "estimatedStorageGb",
      estimated_processing_hours::text as "estimatedProcessingHours", available as "availableMicros",
      exists (select 1 from reserved) as reserved
    from account`;
  if (!row) return { kind: 'no_account' };
  const { availableMicros, reserved, ...customer } = row;
  if (reserved) return { kind: 'opened', customer };
  if (customer.currency !== c.currency) return { kind: 'currency_mismatch' };
  return { kind: 'limit_reached', availableMicros };
}

/**
 * Writes one transition with the ledger rows it implies, in the caller's transaction. Safe to
 * apply twice: ledger rows are keyed, and the reservation is released only by the write that
 * moves the row into a final state.
 */
export async function writeTransition(tx: TransactionSql, t: Transition): Promise<void> {
  const c = t.context;
  const at = new Date(t.at);
  const [row] = await tx<{ previous: string }[]>`
    with old as (select state from sessions where id = ${c.sessionId} for update)
    update sessions s set
      state = ${t.state}, machine_version = ${t.machineVersion}, snapshot = ${tx.json(t.snapshot as never)},
      max_charge_micros = ${BigInt(c.maxChargeMicros)},
      authorized_micros = ${micros(c.hold?.amountMicros)}, authorization_number = ${c.hold?.authorizationNumber ?? null},
      started_at = ${date(c.startedAt)}, cutoff_at = ${date(c.cutoffAt)}, ended_at = ${date(c.endedAt)},
      charge_micros = ${micros(c.chargeMicros)}, end_reason = ${c.endReason}, updated_at = ${at}
    from old where s.id = ${c.sessionId}
    returning old.state as previous`;
  if (!row) throw new Error(`session ${c.sessionId} has no row`);
  const enteringFinal = (t.state === 'settled' || t.state === 'declined') && !isFinal(row.previous);

  // The rest depends only on the update above; sent together, they share the round trip.
  const writes: Promise<unknown>[] = [];
  if (t.from !== t.to) {
    writes.push(tx`
      insert into session_events (session_id, event, from_state, to_state, at, detail)
      values (${c.sessionId}, ${t.event}, ${t.from}, ${t.to}, ${at}, ${tx.json(detailOf(c) as never)})`);
  }
  writes.push(holdLedger(tx, c, t.previousContext?.hold ?? null, at));
  const extension = c.extension;
  if (extension?.outcome === 'declined' && t.previousContext?.extension?.outcome === 'pending') {
    // The extension's share was reserved before asking the card company; a refusal returns it.
    writes.push(releaseReservation(tx, c, BigInt(extension.toMicros) - BigInt(extension.fromMicros)));
  }
  if (enteringFinal) writes.push(...finalWrites(tx, t, at));
  await Promise.all(writes);
}

/** A session that ends returns its reservation, completes its log row and, settled, books its charge slip. */
function finalWrites(tx: TransactionSql, t: Transition, at: Date): Promise<unknown>[] {
  const c = t.context;
  const writes: Promise<unknown>[] = [
    releaseReservation(tx, c, null),
    tx`
      update session_log set started_at = ${date(c.startedAt)}, ended_at = ${date(c.endedAt)},
        charge_micros = ${micros(c.chargeMicros) ?? 0n}, end_reason = ${c.endReason}
      where session_id = ${c.sessionId}`,
  ];
  if (t.state !== 'settled' || !c.hold) return writes;
  const { holdId, authorizationNumber } = c.hold;
  const held = BigInt(c.hold.amountMicros);
  const charged = micros(c.chargeSlip?.amountMicros) ?? 0n;
  if (c.chargeSlip) {
    writes.push(
      ledger(tx, c.sessionId, `capture:${holdId}`, 'capture', 'receivable', 'card_hold', charged, authorizationNumber, at),
      tx`
        insert into charge_slips (id, session_id, authorization_number, amount_micros, currency, created_at)
        values (${c.chargeSlip.id}, ${c.sessionId}, ${c.chargeSlip.authorizationNumber}, ${charged}, ${c.currency}, ${at})
        on conflict do nothing`,
    );
  }
  writes.push(ledger(tx, c.sessionId, `release:${holdId}`, 'release', 'card_available', 'card_hold', held - charged, authorizationNumber, at));
  return writes;
}

/**
 * Hold rows follow the hold in the context: a new hold books its amount (and a renewal
 * releases the one it replaced); an incremental authorization books the difference.
 */
async function holdLedger(tx: TransactionSql, c: SessionContext, previous: SessionContext['hold'], at: Date) {
  const hold = c.hold;
  if (!hold) return;
  const book = (amount: bigint) =>
    ledger(tx, c.sessionId, `hold:${hold.holdId}:${hold.amountMicros}`, 'hold', 'card_hold', 'card_available', amount, hold.authorizationNumber, at);
  if (!previous || previous.holdId !== hold.holdId) {
    await book(BigInt(hold.amountMicros));
    if (previous) {
      await ledger(tx, c.sessionId, `release:${previous.holdId}`, 'release', 'card_available', 'card_hold', BigInt(previous.amountMicros), previous.authorizationNumber, at);
    }
  } else if (previous.amountMicros !== hold.amountMicros) {
    await book(BigInt(hold.amountMicros) - BigInt(previous.amountMicros));
  }
}

/** Returns `amount` of the session's reservation to its account, or all of it when null. */
async function releaseReservation(tx: TransactionSql, c: SessionContext, amount: bigint | null) {
  await tx`
    with released as (
      update sessions set reserved_micros = reserved_micros - least(reserved_micros, coalesce(${amount}::int8, reserved_micros))
      from (select reserved_micros as before from sessions where id = ${c.sessionId} for update) old
      where id = ${c.sessionId}
      returning old.before - sessions.reserved_micros as amount
    )
    update accounts set reserved_micros = reserved_micros - released.amount from released where id = ${c.accountId}`;
}

function isFinal(state: string): boolean {
  return state === 'settled' || state === 'declined';
}

function detailOf(c: SessionContext) {
  return {
    ...(c.endReason ? { endReason: c.endReason } : {}),
    ...(c.chargeMicros !== null ? { chargeMicros: c.chargeMicros } : {}),
    ...(c.declineReason ? { declineReason: c.declineReason } : {}),
    ...(c.lastError ? { lastError: c.lastError } : {}),
    ...(c.closeAttempts > 0 ? { closeAttempts: c.closeAttempts } : {}),
  };
}

async function ledger(
  tx: TransactionSql,
  sessionId: string,
  key: string,
  kind: 'hold' | 'capture' | 'release',
  debit: string,
  credit: string,
  amount: bigint,
  authorizationNumber: string,
  at: Date,
): Promise<void> {
  await tx`
    insert into ledger_entries (entry_key, session_id, kind, debit, credit, amount_micros, authorization_number, at)
    values (${`${sessionId}:${key}`}, ${sessionId}, ${kind}, ${debit}, ${credit}, ${amount}, ${authorizationNumber}, ${at})
    on conflict (entry_key) do nothing`;
}

export interface StoredSession {
  state: SessionStateName;
  machineVersion: number;
  snapshot: { value: unknown; context: SessionContext } & Record<string, unknown>;
}

export interface UnsettledSession extends StoredSession {
  customer: { accountId: string; estimatedStorageGb: number; estimatedProcessingHours: number };
}

export async function findSession(db: Queryable, id: string, accountId?: string): Promise<StoredSession | null> {
  const rows = await db<StoredSession[]>`
    select state, machine_version as "machineVersion", snapshot from sessions
    where id = ${id} ${accountId ? db`and account_id = ${accountId}` : db``}`;
  return rows[0] ?? null;
}

export async function listSessions(db: Queryable, accountId: string, limit = 200): Promise<StoredSession[]> {
  return db<StoredSession[]>`
    select state, machine_version as "machineVersion", snapshot from sessions
    where account_id = ${accountId} order by created_at desc limit ${limit}`;
}

/** Every session not yet settled or declined, oldest first, in batches of `batch` rows. */
export async function* loadUnsettled(db: Queryable, batch = 2000): AsyncGenerator<UnsettledSession[]> {
  const cursor = db<(StoredSession & { accountId: string; storage: string; processing: string })[]>`
    select s.state, s.machine_version as "machineVersion", s.snapshot, a.id as "accountId",
      a.estimated_storage_gb::text as storage, a.estimated_processing_hours::text as processing
    from sessions s join accounts a on a.id = s.account_id
    where s.state not in ('settled', 'declined') order by s.created_at`.cursor(batch);
  for await (const rows of cursor) {
    yield rows.map(({ accountId, storage, processing, ...row }) => ({
      ...row,
      customer: { accountId, estimatedStorageGb: Number(storage), estimatedProcessingHours: Number(processing) },
    }));
  }
}
