import { randomUUID } from 'node:crypto';
import type { AccountChanger } from '../../machines/account/index.js';
import { recordAudit } from '../audit/audit-log.js';
import { formatAmount } from '../billing/money.js';
import type { Clock } from '../clock.js';
import type { Queryable, Sql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';
import { appendEvents, type StoredEvent } from '../events/event-store.js';
import type { Logger } from '../logger.js';
import { CardNetworkRequestError } from '../payments/card-network-client.js';
import type { CardGateway } from '../payments/gateway.js';

export interface RefundView {
  id: string;
  topUpId: string;
  /** The top-up's capture at the card company that this refund goes against. */
  captureId: string;
  amount: string;
  currency: string;
  /** pending: the card company has not answered yet (driven again until it does); refused: it said no for good. */
  state: 'pending' | 'refunded' | 'refused';
  /** The refund's id at the card company, once refunded. */
  refundId: string | null;
  attempts: number;
  lastError: string | null;
  createdAt: string;
  settledAt: string | null;
}

type Row = {
  id: string;
  accountId: string;
  topUpId: string;
  captureId: string;
  amountMicros: bigint;
  currency: string;
  state: RefundView['state'];
  refundId: string | null;
  attempts: number;
  lastError: string | null;
  createdAt: Date;
  settledAt: Date | null;
};

const COLUMNS = `id, account_id as "accountId", top_up_id as "topUpId", capture_id as "captureId", amount_micros as "amountMicros",
  currency, state, refund_id as "refundId", attempts, last_error as "lastError", created_at as "createdAt", settled_at as "settledAt"`;

const view = (row: Row): RefundView => ({
  id: row.id,
  topUpId: row.topUpId,
  captureId: row.captureId,
  amount: formatAmount(row.amountMicros),
  currency: row.currency,
  state: row.state,
  refundId: row.refundId,
  attempts: row.attempts,
  lastError: row.lastError,
  createdAt: row.createdAt.toISOString(),
  settledAt: row.settledAt?.toISOString() ?? null,
});

/** The card call's key, derived from the refund row written before it (DESIGN rule 3): re-driven, refunded once. */
const refundKey = (id: string) => `refund:${id}`;

/** Who the audit log names for what tollgate does by itself. */
const TOLLGATE = { operatorId: null, name: 'tollgate' } as const;

const auditActor = (by: AccountChanger) =>
  by.kind === 'operator' ? { operatorId: by.id, name: by.name } : { operatorId: null, name: by.kind === 'customer' ? `customer ${by.name}` : by.name };

/**
 * In the caller's transaction, with the account's row locked (the close's): the free prepaid
 * balance leaves the account as refund rows, spread over its top-up captures newest first, each
 * never above what that capture has left unrefunded. Whatever no capture can take (none should:
 * the balance only ever grows by top-ups) stays on the balance and is logged. Answers the rows.
 */
export async function planRefunds(
  tx: Queryable,
  request: { accountId: string; at: number; by: AccountChanger; log: Logger },
): Promise<RefundView[]> {
  const [account] = await tx<{ balance: bigint; currency: string }[]>`
    select balance_micros as balance, currency from accounts where id = ${request.accountId}`;
  if (!account || account.balance <= 0n) return [];
  const captures = await tx<{ topUpId: string; captureId: string; remaining: bigint }[]>`
    select t.id as "topUpId", t.charge_id as "captureId",
      t.amount_micros - coalesce((select sum(r.amount_micros) from balance_refunds r where r.top_up_id = t.id and r.state <> 'refused'), 0)::bigint as remaining
    from top_ups t
    where t.account_id = ${request.accountId} and t.state = 'charged' and t.charge_id is not null
    order by t.settled_at desc, t.id desc`;
  let left = account.balance;
  const planned: Row[] = [];
  for (const capture of captures) {
    if (left === 0n) break;
    const amount = capture.remaining < left ? capture.remaining : left;
    if (amount <= 0n) continue;
    const [row] = await tx<Row[]>`
      insert into balance_refunds (id, account_id, top_up_id, capture_id, amount_micros, currency, state, created_at)
      values (${randomUUID()}, ${request.accountId}, ${capture.topUpId}, ${capture.captureId}, ${amount}, ${account.currency}, 'pending', ${new Date(request.at)})
      returning ${tx.unsafe(COLUMNS)}`;
    planned.push(row!);
    left -= amount;
  }
  if (left > 0n) request.log.warn({ accountId: request.accountId, unrefundable: formatAmount(left) }, 'part of a closed account’s balance has no top-up capture to go back to');
  if (planned.length === 0) return [];
  await tx`update accounts set balance_micros = balance_micros - ${account.balance - left} where id = ${request.accountId}`;
  await recordAudit(tx, {
    actor: auditActor(request.by),
    action: 'account.refund_planned',
    targetType: 'account',
    targetId: request.accountId,
    before: { balance: formatAmount(account.balance) },
    after: { balance: formatAmount(left), refunds: planned.map((row) => ({ id: row.id, captureId: row.captureId, amount: formatAmount(row.amountMicros) })) },
    at: request.at,
  });
  return planned.map(view);
}

/**
 * Sends planned refunds to the card company and records its answer: refunded (with an
 * `account.refunded` event), refused for good (a 4xx: `account.refund_refused`, left to an
 * operator, the money still owed to the customer), or no answer (down, timed out, a decline that
 * is the line's and not the card's): the row stays pending, counts the attempt, and is driven
 * again with the same key at start-up and with the housekeeping, as pending top-ups are, until
 * the card company answers. The key makes every re-drive (after a crash, or by two drivers at
 * once) refund once.
 */
export class BalanceRefunds {
  constructor(
    private readonly deps: {
      sql: Sql;
      clock: Clock;
      gateway: CardGateway;
      log: Logger;
      published: (events: readonly StoredEvent[]) => void;
    },
  ) {}

  async list(accountId: string): Promise<RefundView[]> {
    const rows = await this.deps.sql<Row[]>`
      select ${this.deps.sql.unsafe(COLUMNS)} from balance_refunds where account_id = ${accountId} order by created_at desc, id limit 1000`;
    return rows.map(view);
  }

  /** Drives the account's pending refunds (right after its close). Answers how many were settled. */
  async drive(accountId: string): Promise<number> {
    const rows = await this.deps.sql<Row[]>`
      select ${this.deps.sql.unsafe(COLUMNS)} from balance_refunds where account_id = ${accountId} and state = 'pending' order by created_at, id`;
    return this.driveRows(rows);
  }

  /**
   * Plans refunds for closed accounts that a balance reached after their close (a top-up whose
   * charge was answered late), then drives every pending refund. Answers how many were settled.
   */
  async recover(): Promise<number> {
    const { sql, clock, log } = this.deps;
    const late = await sql<{ id: string }[]>`select id from accounts where closed_at is not null and balance_micros > 0 limit 100`;
    for (const account of late) {
      await transaction(sql, async (tx) => {
        await tx`select 1 from accounts where id = ${account.id} for no key update`;
        await planRefunds(tx, { accountId: account.id, at: clock.now(), by: { kind: 'system', id: null, name: 'tollgate' }, log });
      });
    }
    const rows = await sql<Row[]>`select ${sql.unsafe(COLUMNS)} from balance_refunds where state = 'pending' order by created_at, id limit 1000`;
    return this.driveRows(rows);
  }

  private async driveRows(rows: Row[]): Promise<number> {
    let settled = 0;
    for (const row of rows) if (await this.driveOne(row)) settled++;
    return settled;
  }

  private async driveOne(row: Row): Promise<boolean> {
    const { gateway, log } = this.deps;
    try {
      const refund = await gateway.refund({
        captureId: row.captureId,
        amountMicros: row.amountMicros,
        currency: row.currency,
        reference: row.id,
        idempotencyKey: refundKey(row.id),
      });
      return await this.settle(row, { state: 'refunded', refundId: refund.refundId, error: null });
    } catch (error) {
      if (error instanceof CardNetworkRequestError) {
        log.error({ refundId: row.id, accountId: row.accountId, code: error.code }, 'the card company refused a refund for good; an operator must settle it');
        return this.settle(row, { state: 'refused', refundId: null, error: `${error.code}: ${error.message}` });
      }
      log.warn({ refundId: row.id, accountId: row.accountId, err: String(error) }, 'refund not answered yet; it is driven again later');
      await this.deps.sql`
        update balance_refunds set attempts = attempts + 1, last_error = ${String(error).slice(0, 500)} where id = ${row.id} and state = 'pending'`;
      return false;
    }
  }

  /** Records the answer once (whoever drove it), with its domain event and audit entry, in one transaction. */
  private async settle(row: Row, outcome: { state: 'refunded' | 'refused'; refundId: string | null; error: string | null }): Promise<boolean> {
    const at = this.deps.clock.now();
    const events = await transaction(this.deps.sql, async (tx) => {
      const [settled] = await tx<Row[]>`
        update balance_refunds set state = ${outcome.state}, refund_id = ${outcome.refundId}, attempts = attempts + 1,
          last_error = ${outcome.error}, settled_at = ${new Date(at)}
        where id = ${row.id} and state = 'pending'
        returning ${tx.unsafe(COLUMNS)}`;
      if (!settled) return null;
      const type = outcome.state === 'refunded' ? 'account.refunded' : 'account.refund_refused';
      await recordAudit(tx, {
        actor: TOLLGATE,
        action: type,
        targetType: 'account',
        targetId: row.accountId,
        before: { refund: row.id, state: 'pending' },
        after: { refund: row.id, state: outcome.state, refundId: outcome.refundId, captureId: row.captureId, amount: formatAmount(row.amountMicros), error: outcome.error },
        at,
      });
      return appendEvents(tx, [
        {
          key: `refund:${row.id}`,
          stream: `account:${row.accountId}`,
          type,
          at,
          payload: {
            accountId: row.accountId,
            refund: row.id,
            topUpId: row.topUpId,
            captureId: row.captureId,
            refundId: outcome.refundId,
            amount: formatAmount(row.amountMicros),
            currency: row.currency,
          },
        },
      ]);
    });
    if (!events) return false;
    this.deps.published(events);
    return true;
  }
}
