import { randomUUID } from 'node:crypto';
import type { Queryable, TransactionSql } from '../db/sql.js';
import { formatAmount, type Micros } from '../billing/money.js';
import { appendEvents, type StoredEvent } from '../events/event-store.js';
import { periodAfter, type StatementPeriod } from './periods.js';

/** One line of a statement: a session's capture, or a top-up. Amounts in micro-units, as text. */
export type StatementLine =
  | {
      kind: 'session';
      sessionId: string;
      serviceId: string;
      service: string;
      startedAt: string | null;
      endedAt: string | null;
      minutes: number;
      uses: number;
      chargeMicros: string;
      paidFrom: 'card' | 'balance' | 'postpaid';
      chargeSlipId: string;
      capturedAt: string;
    }
  | { kind: 'top_up'; topUpId: string; amountMicros: string; chargeId: string | null; at: string }
  /** The balance sent back to the card at the close, dated then; `state` as it was when the statement was produced. */
  | { kind: 'refund'; refundId: string; topUpId: string; captureId: string; amountMicros: string; state: 'pending' | 'refunded' | 'refused'; at: string };

export interface StoredStatement {
  id: string;
  accountId: string;
  period: StatementPeriod;
  periodStart: Date;
  periodEnd: Date;
  currency: string;
  chargesMicros: bigint;
  paidByCardMicros: bigint;
  paidFromBalanceMicros: bigint;
  topUpsMicros: bigint;
  refundsMicros: bigint;
  dueMicros: bigint;
  chargeState: 'none' | 'pending' | 'charged' | 'declined';
  chargeId: string | null;
  chargeDeclineReason: string | null;
  lines: StatementLine[];
  producedAt: Date;
}

const COLUMNS = `id, account_id as "accountId", period, period_start as "periodStart", period_end as "periodEnd", currency,
  charges_micros as "chargesMicros", paid_by_card_micros as "paidByCardMicros", paid_from_balance_micros as "paidFromBalanceMicros",
  top_ups_micros as "topUpsMicros", refunds_micros as "refundsMicros", due_micros as "dueMicros", charge_state as "chargeState", charge_id as "chargeId",
  charge_decline_reason as "chargeDeclineReason", lines, produced_at as "producedAt"`;

/**
 * Accounts whose period has ended by `now`, oldest first. A closed account gets the statement of
 * the period it closed in, and none after.
 */
export async function dueAccounts(db: Queryable, now: number, limit: number): Promise<string[]> {
  const rows = await db<{ id: string }[]>`
    select id from accounts
    where statement_due_at <= ${new Date(now)} and (closed_at is null or statement_from <= closed_at)
    order by statement_due_at limit ${limit}`;
  return rows.map((row) => row.id);
}

/** The earliest instant any account's period ends. */
export async function nextDue(db: Queryable): Promise<number | null> {
  const [row] = await db<{ at: Date | null }[]>`
    select min(statement_due_at) as at from accounts where closed_at is null or statement_from <= closed_at`;
  return row?.at?.getTime() ?? null;
}

/**
 * Produces the account's statement for its period that ended, in the caller's transaction, with
 * every line that is on no statement yet and dated before the period's end: the
 * account's row is claimed first (an advisory lock: a second producer, in this process or
 * another, passes on), the period read under it, the statement inserted (unique per account and
 * period), `statement.ready` appended, and the account moved to its next period. Null when there
 * was nothing to do (claimed elsewhere, or not yet due); `statement` null when the period's
 * statement existed already (the account is moved on all the same).
 */
export async function produceStatement(
  tx: TransactionSql,
  accountId: string,
  now: number,
): Promise<{ statement: StoredStatement | null; events: StoredEvent[] } | null> {
  const [claimed] = await tx<{ claimed: boolean }[]>`select pg_try_advisory_xact_lock(hashtext(${`statement:${accountId}`})) as claimed`;
  if (!claimed?.claimed) return null;
  const [account] = await tx<{ period: StatementPeriod; nextPeriod: StatementPeriod; from: Date; dueAt: Date; currency: string }[]>`
    select statement_current_period as period, statement_period as "nextPeriod", statement_from as from, statement_due_at as "dueAt", currency
    from accounts where id = ${accountId}`;
  if (!account || account.dueAt.getTime() > now) return null;
  const start = account.from;
  const end = account.dueAt;
  const sessionLines = await tx<Extract<StatementLine, { kind: 'session' }>[]>`
    select 'session' as kind, s.id as "sessionId", s.service_id as "serviceId", l.service_name as service,
      to_char(s.started_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as "startedAt",
      to_char(s.ended_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as "endedAt",
      round((coalesce(s.billable_ms, 0) / 1000) / 60.0, 3)::float8 as minutes, s.uses_units::float8 as uses, c.amount_micros::text as "chargeMicros",
      coalesce((select case b.kind when 'prepaid' then 'balance' else 'postpaid' end from balance_holds b
        where b.session_id = s.id and b.state = 'captured' limit 1), 'card') as "paidFrom",
      c.id as "chargeSlipId", to_char(c.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as "capturedAt"
    from charge_slips c join sessions s on s.id = c.session_id join session_log l on l.session_id = s.id
    where s.account_id = ${accountId} and c.statement_id is null and c.created_at < ${end}
    order by c.created_at, s.id`;
  const topUpLines = await tx<Extract<StatementLine, { kind: 'top_up' }>[]>`
    select 'top_up' as kind, id as "topUpId", amount_micros::text as "amountMicros", charge_id as "chargeId",
      to_char(settled_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at
    from top_ups where account_id = ${accountId} and state = 'charged' and statement_id is null and settled_at < ${end}
    order by settled_at, id`;
  const refundLines = await tx<Extract<StatementLine, { kind: 'refund' }>[]>`
    select 'refund' as kind, id as "refundId", top_up_id as "topUpId", capture_id as "captureId", amount_micros::text as "amountMicros", state,
      to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at
    from balance_refunds where account_id = ${accountId} and statement_id is null and created_at < ${end}
    order by created_at, id`;
  const sum = (values: string[]) => values.reduce((total, v) => total + BigInt(v), 0n);
  const byCard = sessionLines.filter((l) => l.paidFrom === 'card').map((l) => l.chargeMicros);
  const fromBalance = sessionLines.filter((l) => l.paidFrom === 'balance').map((l) => l.chargeMicros);
  const due = sum(sessionLines.filter((l) => l.paidFrom === 'postpaid').map((l) => l.chargeMicros));
  const lines: StatementLine[] = [...sessionLines.map((l) => ({ ...l })), ...topUpLines.map((l) => ({ ...l })), ...refundLines.map((l) => ({ ...l }))];
  const id = randomUUID();
  const [statement] = await tx<StoredStatement[]>`
    insert into statements (id, account_id, period, period_start, period_end, currency, charges_micros, paid_by_card_micros,
      paid_from_balance_micros, top_ups_micros, refunds_micros, due_micros, charge_state, lines, produced_at, charge_card_token)
    values (${id}, ${accountId}, ${account.period}, ${start}, ${end}, ${account.currency},
      ${sum(byCard) + sum(fromBalance) + due}, ${sum(byCard)}, ${sum(fromBalance)}, ${sum(topUpLines.map((l) => l.amountMicros))},
      ${sum(refundLines.map((l) => l.amountMicros))}, ${due}, ${due > 0n ? 'pending' : 'none'}, ${tx.json(lines as never)}, ${new Date(now)},
      (select card_token from accounts where id = ${accountId}))
    on conflict (account_id, period_start) do nothing
    returning ${tx.unsafe(COLUMNS)}`;
  const next = periodAfter(account.nextPeriod, end.getTime());
  await tx`
    update accounts set statement_current_period = ${account.nextPeriod}, statement_from = ${end}, statement_due_at = ${new Date(next.end)}
    where id = ${accountId}`;
  if (!statement) return { statement: null, events: [] };
  // Each line is on this statement and no other: one written late (its transition dated in this
  // period, committed after) is not yet on any, and goes on the next.
  await tx`update charge_slips set statement_id = ${statement.id} where id = any(${sessionLines.map((l) => l.chargeSlipId)})`;
  await tx`update top_ups set statement_id = ${statement.id} where id = any(${topUpLines.map((l) => l.topUpId)})`;
  await tx`update balance_refunds set statement_id = ${statement.id} where id = any(${refundLines.map((l) => l.refundId)})`;
  const events = await appendEvents(tx, [
    {
      key: `statement:${accountId}:${start.toISOString()}`,
      stream: `account:${accountId}`,
      type: 'statement.ready',
      at: now,
      payload: { accountId, statementId: statement.id, periodStart: start.toISOString(), periodEnd: end.toISOString() },
    },
  ]);
  return { statement, events };
}

export async function listStatements(db: Queryable, accountId: string): Promise<StoredStatement[]> {
  return db<StoredStatement[]>`
    select ${db.unsafe(COLUMNS)} from statements where account_id = ${accountId} order by period_start desc limit 1000`;
}

export async function findStatement(db: Queryable, id: string, accountId?: string): Promise<StoredStatement | null> {
  const [row] = await db<StoredStatement[]>`
    select ${db.unsafe(COLUMNS)} from statements where id = ${id} ${accountId ? db`and account_id = ${accountId}` : db``}`;
  return row ?? null;
}

/** Statements whose postpaid total is still to be charged to the card, with the attempt under way and the card it is made on. */
export async function pendingCharges(db: Queryable, limit: number): Promise<(StoredStatement & { cardToken: string; attempt: number })[]> {
  return db<(StoredStatement & { cardToken: string; attempt: number })[]>`
    select ${db.unsafe(COLUMNS)}, coalesce(charge_card_token, (select card_token from accounts a where a.id = statements.account_id)) as "cardToken",
      charge_attempt as attempt
    from statements where charge_state = 'pending' order by produced_at limit ${limit}`;
}

/**
 * Records how the charge of a statement's postpaid total ended; once, whoever drove it. A decline
 * on a card the account has since replaced is no decline of the account's: the statement is tried
 * again on the new card ('retry'). A decline of the account's card appends
 * `statement.charge_declined` in the same transaction: the account is suspended on it
 * (src/accounts/declined-statements.ts) and operators' webhooks hear of it.
 */
export async function settleCharge(
  db: TransactionSql,
  statement: { id: string; accountId: string; attempt: number; cardToken: string; dueMicros: bigint; currency: string },
  outcome: { state: 'charged' | 'declined'; chargeId: string | null; declineReason: string | null },
  at: number,
): Promise<{ events: StoredEvent[]; retry: boolean }> {
  if (outcome.state === 'declined') {
    const [retried] = await db`
      update statements s set charge_attempt = charge_attempt + 1, charge_card_token = a.card_token
      from accounts a
      where s.id = ${statement.id} and s.charge_state = 'pending' and s.charge_attempt = ${statement.attempt}
        and a.id = s.account_id and a.card_token is distinct from ${statement.cardToken}
      returning s.id`;
    if (retried) return { events: [], retry: true };
  }
  const settled = await db`
    update statements set charge_state = ${outcome.state}, charge_id = ${outcome.chargeId}, charge_decline_reason = ${outcome.declineReason}
    where id = ${statement.id} and charge_state = 'pending' and charge_attempt = ${statement.attempt}`;
  if (settled.count === 0 || outcome.state !== 'declined') return { events: [], retry: false };
  const events = await appendEvents(db, [
    {
      key: `statement:${statement.id}:declined:${statement.attempt}`,
      stream: `account:${statement.accountId}`,
      type: 'statement.charge_declined',
      at,
      payload: {
        accountId: statement.accountId,
        statementId: statement.id,
        attempt: statement.attempt,
        due: formatAmount(statement.dueMicros as Micros),
        currency: statement.currency,
        declineReason: outcome.declineReason,
      },
    },
  ]);
  return { events, retry: false };
}

/**
 * A new card pays what the old one was refused: the account's declined statements are charged
 * again on it, each as a new attempt with keys of its own. Answers how many. (One whose charge is
 * under way goes on with its own card; if that declines, settleCharge tries the new card.)
 */
export async function retryDeclinedCharges(db: Queryable, accountId: string): Promise<number> {
  const retried = await db`
    update statements s set charge_state = 'pending', charge_attempt = charge_attempt + 1, charge_decline_reason = null, charge_card_token = a.card_token
    from accounts a
    where s.account_id = ${accountId} and s.charge_state = 'declined' and a.id = s.account_id`;
  return retried.count;
}

/** Whether the statement's charge is still declined at this attempt (a new card may have paid it since). */
export async function stillDeclined(db: Queryable, statementId: string, attempt: number): Promise<boolean> {
  const [row] = await db`select 1 from statements where id = ${statementId} and charge_state = 'declined' and charge_attempt = ${attempt}`;
  return row !== undefined;
}

/**
 * What the account's statements owe and are not paid: declined, or pending (a charge on its way,
 * or the card company not answering). Null when nothing is.
 */
export async function unpaidStatements(db: Queryable, accountId: string): Promise<{ declinedMicros: bigint; pendingMicros: bigint } | null> {
  const [row] = await db<{ declinedMicros: string; pendingMicros: string }[]>`
    select coalesce(sum(due_micros) filter (where charge_state = 'declined'), 0)::text as "declinedMicros",
           coalesce(sum(due_micros) filter (where charge_state = 'pending'), 0)::text as "pendingMicros"
    from statements where account_id = ${accountId} and charge_state in ('declined', 'pending')
    having count(*) > 0`;
  return row ? { declinedMicros: BigInt(row.declinedMicros), pendingMicros: BigInt(row.pendingMicros) } : null;
}
