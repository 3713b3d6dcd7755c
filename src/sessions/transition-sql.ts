import type { Booking, SessionContext, SessionDomainEvent, SessionStateName } from '../../machines/session/index.js';
import type { TransactionSql } from '../db/sql.js';
import type { StoredEvent } from '../events/event-store.js';

/** What one persisted transition of a session carries (DESIGN rule 2). */
export interface TransitionRecord {
  seq: number;
  from: string;
  to: string;
  state: SessionStateName;
  event: string;
  at: number;
  context: SessionContext;
  snapshot: unknown;
  machineVersion: number;
  stuckReason: string | null;
  /** Billable time once the session ended (for usage reports), else null. */
  billableMs: number | null;
  bookings: Booking[];
  events: SessionDomainEvent[];
  /** The fencing token: the epoch of the writing node's lease on the session's server (null: not fenced). */
  epoch?: bigint | null;
}

const date = (ms: number | null) => (ms === null ? null : new Date(ms));
const micros = (text: string | null | undefined) => (text == null ? null : BigInt(text));
const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Writes one transition as one statement: the row, its history line, the ledger rows, the
 * reservation, the charge slip, the log row and the domain events it implies. Only a row whose
 * transition number is below this one's is written, and everything else hangs on that row, so
 * a transition written twice (its commit's answer lost, then retried) changes nothing; one
 * whose number another owner has taken since is refused for its stale epoch.
 */
export async function writeTransition(tx: TransactionSql, t: TransitionRecord): Promise<StoredEvent[]> {
  const c = t.context;
  const at = new Date(t.at);
  const ledger = t.bookings.flatMap((b) =>
    b.kind === 'ledger'
      ? [{ key: `${c.sessionId}:${b.key}`, entry: b.entry, debit: b.debit, credit: b.credit, amount: b.amountMicros.toString(), auth: b.authorizationNumber }]
      : [],
  );
  const slips = t.bookings.flatMap((b) =>
    b.kind === 'charge_slip' ? [{ id: b.slip.id, auth: b.slip.authorizationNumber, amount: b.slip.amountMicros }] : [],
  );
  const reservation = t.bookings.find((b) => b.kind === 'reservation');
  const completed = t.bookings.find((b) => b.kind === 'log_completed');
  const events = t.events.map(({ type, at: when, ...payload }, i) => ({ i, type, at: iso(when), payload }));
  const detail = detailOf(c);
  return tx<StoredEvent[]>`
    with old as (
      select reserved_micros as before, state in ('settled', 'declined') as was_final
      from sessions where id = ${c.sessionId} and seq < ${t.seq} for update
    ), written as (
      update sessions s set
        state = ${t.state}, path = ${t.to}, seq = ${t.seq}, machine_version = ${t.machineVersion},
        snapshot = ${tx.json(t.snapshot as never)}, max_charge_micros = ${BigInt(c.maxChargeMicros)},
        authorized_micros = ${micros(c.hold?.amountMicros)}, authorization_number = ${c.hold?.authorizationNumber ?? null},
        started_at = ${date(c.startedAt)}, cutoff_at = ${date(c.cutoffAt)}, ended_at = ${date(c.endedAt)},
        charge_micros = ${micros(c.chargeMicros)}, end_reason = ${c.endReason}, stuck_reason = ${t.stuckReason},
        closing_since = ${date(c.closingSince)}, close_attempts = ${c.closeAttempts}, updated_at = ${at},
        billable_ms = ${t.billableMs}, uses_units = ${c.uses.usedUnits}, uses_micros = ${BigInt(c.uses.usedMicros)},
        reserved_micros = coalesce(${reservation ? reservation.targetMicros : null}::int8, s.reserved_micros),
        owner_epoch = ${t.epoch ?? null}::int8
      from old where s.id = ${c.sessionId}
      returning s.account_id, old.before, s.reserved_micros as after,
        (not old.was_final and s.state in ('settled', 'declined'))::int as ended
    ), fenced as (
      -- The row has moved past this transition's number. A replay of this node's own write changes
      -- nothing; a write of a node whose epoch is not the row's is stale, and is made to reach the
      -- fencing trigger, which refuses it: matching no row, it would commit unchecked, and the call
      -- out waiting on it would go (a hold voided under a session its new owner runs).
      update sessions set owner_epoch = ${t.epoch ?? null}::int8
      where id = ${c.sessionId} and seq >= ${t.seq} and ${t.epoch ?? null}::int8 is not null
        and owner_epoch is distinct from ${t.epoch ?? null}::int8
    ), reserved as (
      -- The account's share of the outstanding limit, and its count of unsettled sessions (the quota).
      update accounts a set reserved_micros = a.reserved_micros + (written.after - written.before),
        open_sessions = greatest(0, a.open_sessions - written.ended)
      from written where a.id = written.account_id and (written.after <> written.before or written.ended = 1)
    ), ${freedQuote(tx, t)} history as (
      insert into session_events (session_id, seq, event, from_state, to_state, at, detail, owner_epoch)
      select ${c.sessionId}, ${t.seq}, ${t.event}, ${t.from}, ${t.to}, ${at}, ${tx.json(detail as never)}, ${t.epoch ?? null}::int8
      from written where ${t.from} <> ${t.to}
    ), ledger as (
      insert into ledger_entries (entry_key, session_id, kind, debit, credit, amount_micros, authorization_number, at)
      select l.key, ${c.sessionId}, l.entry, l.debit, l.credit, l.amount::int8, l.auth, ${at}
      from written, jsonb_to_recordset(${tx.json(ledger as never)}::jsonb)
        as l(key text, entry text, debit text, credit text, amount text, auth text)
      on conflict (entry_key) do nothing
    ), slip as (
      insert into charge_slips (id, session_id, authorization_number, amount_micros, currency, created_at)
      select s.id, ${c.sessionId}, s.auth, s.amount::int8, ${c.currency}, ${at}
      from written, jsonb_to_recordset(${tx.json(slips as never)}::jsonb) as s(id text, auth text, amount text)
      on conflict do nothing
    ), logged as (
      update session_log set started_at = ${date(completed?.startedAt ?? null)}, ended_at = ${date(completed?.endedAt ?? null)},
        charge_micros = ${completed ? completed.chargeMicros : null}::int8, end_reason = ${completed?.endReason ?? null}
      where session_id = ${c.sessionId} and ${completed !== undefined} and exists (select 1 from written)
    ), published as (
      insert into domain_events (event_key, stream, type, at, payload)
      select ${`${c.sessionId}:${t.seq}:`} || e.i, ${`session:${c.sessionId}`}, e.type, e.at, e.payload
      from written, jsonb_to_recordset(${tx.json(events as never)}::jsonb) as e(i int, type text, at timestamptz, payload jsonb)
      on conflict (event_key) do nothing
      returning position, tx::text as tx, stream, type, at, payload
    )
    select * from published order by position`;
}

/** A declined open used nothing of its quote: the agreed price may open another session. Only in a declined transition's statement. */
function freedQuote(tx: TransactionSql, t: TransitionRecord) {
  const quoteId = t.context.quote?.quoteId;
  if (t.state !== 'declined' || !quoteId) return tx``;
  return tx`freed as (
      update quotes q set session_id = null
      from written where q.id = ${quoteId}::uuid and q.session_id = ${t.context.sessionId}
    ),`;
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
