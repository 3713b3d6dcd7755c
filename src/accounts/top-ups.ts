import { randomUUID } from 'node:crypto';
import { formatAmount } from '../billing/money.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';
import { errors } from '../errors.js';
import type { Logger } from '../logger.js';
import { chargeCard } from '../payments/charge-card.js';
import type { CardGateway } from '../payments/gateway.js';

export interface TopUpView {
  id: string;
  amount: string;
  currency: string;
  state: 'pending' | 'charged' | 'declined';
  chargeId: string | null;
  declineReason: string | null;
  createdAt: string;
  settledAt: string | null;
}

type Row = {
  id: string;
  accountId: string;
  amountMicros: bigint;
  currency: string;
  state: TopUpView['state'];
  chargeId: string | null;
  declineReason: string | null;
  createdAt: Date;
  settledAt: Date | null;
};

const COLUMNS = `id, account_id as "accountId", amount_micros as "amountMicros", currency, state, charge_id as "chargeId",
  decline_reason as "declineReason", created_at as "createdAt", settled_at as "settledAt"`;

const view = (row: Row): TopUpView => ({
  id: row.id,
  amount: formatAmount(row.amountMicros),
  currency: row.currency,
  state: row.state,
  chargeId: row.chargeId,
  declineReason: row.declineReason,
  createdAt: row.createdAt.toISOString(),
  settledAt: row.settledAt?.toISOString() ?? null,
});

/** Idempotency keys of a top-up's two card calls, derived from its id (DESIGN rule 3). */
const keys = (id: string) => ({ authorize: `topup:${id}:authorize`, capture: `topup:${id}:capture` });

/**
 * A prepaid balance grows by a card charge: the top-up's intent is written first, then the card
 * is authorized and captured with keys derived from the top-up, and the balance grows in the
 * transaction that marks it charged (once, whatever is re-driven). A top-up whose card call got
 * no answer stays pending and is driven again, with the same keys, by `recover`.
 */
export class TopUps {
  constructor(
    private readonly deps: {
      sql: Sql;
      clock: Clock;
      gateway: CardGateway;
      log: Logger;
      /** A charge reached the balance of an account that closed meanwhile: its refund is planned and sent (BalanceRefunds.recover). */
      closedMeanwhile?: () => Promise<unknown>;
    },
  ) {}

  /**
   * `id`: chosen by an Idempotency-Key's first attempt, or by the portal's form, so that sending
   * it again drives the same top-up. The id sent again for another amount (a form edited after it
   * was sent) or by another account is refused: nothing is charged that the customer did not ask for.
   */
  async topUp(accountId: string, amountMicros: bigint, id: string = randomUUID()): Promise<TopUpView> {
    const { sql, clock } = this.deps;
    const sameRequest = (found: Row | undefined) => {
      if (found && (found.accountId !== accountId || found.amountMicros !== amountMicros)) throw errors.topUpAlreadySent(formatAmount(amountMicros));
      return found;
    };
    const [existing] = await sql<Row[]>`select ${sql.unsafe(COLUMNS)} from top_ups where id = ${id}`;
    const row =
      sameRequest(existing) ??
      (
        await sql<Row[]>`
          insert into top_ups (id, account_id, amount_micros, currency, state, created_at)
          select ${id}, a.id, ${amountMicros}, a.currency, 'pending', ${new Date(clock.now())}
          from accounts a where a.id = ${accountId} and a.payment_mode = 'prepaid' and a.state <> 'closed'
          -- A close committing meanwhile is waited for, and then its state read: a request that got
          -- past the token check just before the close charges nothing.
          for share of a
          on conflict (id) do nothing
          returning ${sql.unsafe(COLUMNS)}`
      )[0] ??
      // Nothing inserted: the same id sent twice at once (the first one's row is driven), not prepaid, or closed.
      sameRequest((await sql<Row[]>`select ${sql.unsafe(COLUMNS)} from top_ups where id = ${id}`)[0]);
    if (!row) {
      const [account] = await sql<{ state: string; paymentMode: string }[]>`select state, payment_mode as "paymentMode" from accounts where id = ${accountId}`;
      if (account?.state === 'closed') throw errors.accountNotActive('closed');
      throw errors.notPrepaid(account?.paymentMode === 'postpaid');
    }
    const driven = await this.drive(row);
    if (driven.state === 'declined') throw errors.cardDeclined(driven.declineReason ?? 'generic_decline');
    if (driven.state === 'pending') throw errors.topUpPending(driven.id);
    // A close committed while the card was charged: the customer is told so, and the charge goes
    // back now rather than at the next housekeeping round.
    const [account] = await sql<{ closed: boolean }[]>`select closed_at is not null as closed from accounts where id = ${accountId}`;
    if (account?.closed) {
      await this.deps.closedMeanwhile?.().catch((error: unknown) => this.deps.log.warn({ err: String(error) }, 'could not refund a top-up charged as its account closed'));
      throw errors.closedDuringTopUp();
    }
    return view(driven);
  }

  async list(accountId: string): Promise<TopUpView[]> {
    const rows = await this.deps.sql<Row[]>`
      select ${this.deps.sql.unsafe(COLUMNS)} from top_ups where account_id = ${accountId} order by created_at desc, id limit 1000`;
    return rows.map(view);
  }

  /** Drives every top-up left pending (its card call got no answer, or the process stopped). */
  async recover(): Promise<number> {
    const rows = await this.deps.sql<Row[]>`select ${this.deps.sql.unsafe(COLUMNS)} from top_ups where state = 'pending' order by created_at limit 1000`;
    // One that cannot be driven (the card company refuses its key: the card was changed after its
    // authorization was made) waits for an operator; it does not stop the others.
    for (const row of rows) {
      await this.drive(row).catch((error: unknown) => this.deps.log.warn({ topUpId: row.id, err: String(error) }, 'a pending top-up could not be driven'));
    }
    return rows.length;
  }

  private async drive(row: Row): Promise<Row> {
    if (row.state !== 'pending') return row;
    const { sql, gateway, log } = this.deps;
    const [account] = await sql<{ cardToken: string }[]>`select card_token as "cardToken" from accounts where id = ${row.accountId}`;
    // Not a session id: reconciliation leaves it alone, and the capture follows at once.
    const charge = await chargeCard(gateway, {
      token: account!.cardToken,
      amountMicros: row.amountMicros,
      currency: row.currency,
      reference: `topup:${row.id}`,
      keys: keys(row.id),
    });
    switch (charge.kind) {
      case 'charged':
        return this.settle(row, { state: 'charged', chargeId: charge.capture.captureId, authorizationNumber: charge.capture.authorizationNumber, declineReason: null });
      case 'declined':
        return this.settle(row, { state: 'declined', chargeId: null, authorizationNumber: null, declineReason: charge.reason });
      case 'pending':
        log.warn({ topUpId: row.id, err: charge.detail }, 'top-up not charged yet; it is driven again later');
        return row;
    }
  }

  /** Marks the top-up settled and, if charged, adds it to the balance: once, in one transaction. */
  private settle(row: Row, outcome: { state: 'charged' | 'declined'; chargeId: string | null; authorizationNumber: string | null; declineReason: string | null }): Promise<Row> {
    return transaction(this.deps.sql, async (tx) => {
      const [settled] = await tx<Row[]>`
        update top_ups set state = ${outcome.state}, charge_id = ${outcome.chargeId}, authorization_number = ${outcome.authorizationNumber},
          decline_reason = ${outcome.declineReason}, settled_at = ${new Date(this.deps.clock.now())}
        where id = ${row.id} and state = 'pending'
        returning ${tx.unsafe(COLUMNS)}`;
      if (!settled) return (await tx<Row[]>`select ${tx.unsafe(COLUMNS)} from top_ups where id = ${row.id}`)[0]!;
      if (outcome.state === 'charged') await tx`update accounts set balance_micros = balance_micros + ${row.amountMicros} where id = ${row.accountId}`;
      return settled;
    });
  }
}
