import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { Sql, TransactionSql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';
import { CardDeclinedError, type Capture, type CardGateway, type Hold } from './gateway.js';

/** How an account pays for its sessions (0008_accounts.sql). */
export type PaymentMode = 'card' | 'prepaid' | 'postpaid';

/**
 * What a session's holds are placed with: a prepaid account's on its balance, a postpaid one's on
 * nothing (what it uses is owed, and charged with its statement), any other's on its card.
 */
export const paymentToken = (account: { accountId: string; paymentMode: PaymentMode; cardToken: string }) =>
  account.paymentMode === 'card' ? account.cardToken : `${account.paymentMode}:${account.accountId}`;
const BALANCE_HOLD = 'bal_';
const TOKEN = /^(prepaid|postpaid):(.+)$/;
const isBalanceHold = (holdId: string) => holdId.startsWith(BALANCE_HOLD);

/** A balance hold does not lapse as a card's does: no session renews one. */
const BALANCE_HOLD_VALIDITY_MS = 10 * 365 * 86_400_000;

type HoldKind = 'prepaid' | 'postpaid';
type HoldRow = {
  id: string;
  kind: HoldKind;
  accountId: string;
  amountMicros: bigint;
  capturedMicros: bigint | null;
  state: 'open' | 'captured' | 'voided';
  createdAt: Date;
};

const authorizationNumberOf = (holdId: string) => `PP${holdId.slice(-8).toUpperCase()}`;

/**
 * Holds on prepaid balances, with the card company's contract (the session machine cannot tell
 * them apart): each call is idempotent by its key or its hold, a hold moves money from the
 * balance to `balance_held`, a capture takes what was used and gives the rest back, a void gives
 * it all back. Every change is one transaction under the account's row lock. A postpaid
 * account's holds are the same rows with no money behind them: always granted, their captures
 * owed until the statement charges them.
 */
export class BalanceHolds {
  constructor(private readonly deps: { sql: Sql; clock: Clock }) {}

  async authorize(request: { kind: HoldKind; accountId: string; amountMicros: bigint; reference: string; idempotencyKey: string }): Promise<Hold> {
    const row = await transaction(this.deps.sql, async (tx) => {
      await tx`select 1 from accounts where id = ${request.accountId} for no key update`;
      const [existing] = await tx<HoldRow[]>`select ${tx.unsafe(COLUMNS)} from balance_holds where authorize_key = ${request.idempotencyKey}`;
      if (existing) return existing;
      if (request.kind === 'prepaid') {
        const [taken] = await tx`
          update accounts set balance_micros = balance_micros - ${request.amountMicros},
            balance_held_micros = balance_held_micros + ${request.amountMicros}
          where id = ${request.accountId} and balance_micros >= ${request.amountMicros} returning 1`;
        if (!taken) return null;
      }
      const [placed] = await tx<HoldRow[]>`
        insert into balance_holds (id, kind, authorize_key, account_id, session_id, amount_micros, state, created_at)
        values (${BALANCE_HOLD + randomBytes(12).toString('hex')}, ${request.kind}, ${request.idempotencyKey}, ${request.accountId}, ${request.reference},
          ${request.amountMicros}, 'open', ${new Date(this.deps.clock.now())})
        returning ${tx.unsafe(COLUMNS)}`;
      return placed!;
    });
    if (!row) throw new CardDeclinedError('balance_too_low');
    return this.hold(row, request.reference);
  }

  /** Raises an open hold to `amountMicros` in total, if the balance has the difference. */
  async increment(request: { holdId: string; amountMicros: bigint }): Promise<Hold> {
    const row = await this.onHold(request.holdId, async (tx, hold) => {
      if (hold.state !== 'open') throw new Error(`balance hold ${hold.id} is ${hold.state}`);
      const delta = request.amountMicros - hold.amountMicros;
      if (delta <= 0n) return hold;
      const [taken] = hold.kind === 'postpaid' ? [1] : await tx`
        update accounts set balance_micros = balance_micros - ${delta}, balance_held_micros = balance_held_micros + ${delta}
        where id = ${hold.accountId} and balance_micros >= ${delta} returning 1`;
      if (!taken) throw new CardDeclinedError('balance_too_low');
      const [raised] = await tx<HoldRow[]>`
        update balance_holds set amount_micros = ${request.amountMicros} where id = ${hold.id} returning ${tx.unsafe(COLUMNS)}`;
      return raised!;
    });
    return this.hold(row, null);
  }

  /** Takes what was used from the hold; the rest goes back to the balance. A second capture answers as the first. */
  async capture(request: { holdId: string; amountMicros: bigint }): Promise<Capture> {
    const row = await this.onHold(request.holdId, async (tx, hold) => {
      if (hold.state === 'captured') return hold;
      if (hold.state !== 'open') throw new Error(`balance hold ${hold.id} is ${hold.state}`);
      const captured = request.amountMicros < hold.amountMicros ? request.amountMicros : hold.amountMicros;
      if (hold.kind === 'prepaid') await tx`
        update accounts set balance_held_micros = balance_held_micros - ${hold.amountMicros},
          balance_micros = balance_micros + ${hold.amountMicros - captured}
        where id = ${hold.accountId}`;
      const [closed] = await tx<HoldRow[]>`
        update balance_holds set state = 'captured', captured_micros = ${captured}, closed_at = ${new Date(this.deps.clock.now())}
        where id = ${hold.id} returning ${tx.unsafe(COLUMNS)}`;
      return closed!;
    });
    return { captureId: `balcap_${row.id.slice(BALANCE_HOLD.length)}`, authorizationNumber: authorizationNumberOf(row.id), amountMicros: row.capturedMicros! };
  }

  /** Gives the whole hold back to the balance; voiding it again changes nothing. */
  async void(request: { holdId: string }): Promise<void> {
    await this.onHold(request.holdId, async (tx, hold) => {
      if (hold.state === 'voided') return hold;
      if (hold.state !== 'open') throw new Error(`balance hold ${hold.id} is ${hold.state}`);
      if (hold.kind === 'prepaid') await tx`
        update accounts set balance_held_micros = balance_held_micros - ${hold.amountMicros}, balance_micros = balance_micros + ${hold.amountMicros}
        where id = ${hold.accountId}`;
      await tx`update balance_holds set state = 'voided', closed_at = ${new Date(this.deps.clock.now())} where id = ${hold.id}`;
      return hold;
    });
  }

  /** Runs `change` on the hold with its account's row locked first (the order every balance change takes). */
  private async onHold(holdId: string, change: (tx: TransactionSql, hold: HoldRow) => Promise<HoldRow>): Promise<HoldRow> {
    return transaction(this.deps.sql, async (tx) => {
      const [owner] = await tx<{ accountId: string }[]>`select account_id as "accountId" from balance_holds where id = ${holdId}`;
      if (!owner) throw new Error(`no balance hold ${holdId}`);
      await tx`select 1 from accounts where id = ${owner.accountId} for no key update`;
      const [hold] = await tx<HoldRow[]>`select ${tx.unsafe(COLUMNS)} from balance_holds where id = ${holdId}`;
      return change(tx, hold!);
    });
  }

  private hold(row: HoldRow, reference: string | null): Hold {
    return {
      holdId: row.id,
      reference,
      authorizationNumber: authorizationNumberOf(row.id),
      amountMicros: row.amountMicros,
      expiresAt: row.createdAt.getTime() + BALANCE_HOLD_VALIDITY_MS,
    };
  }
}

const COLUMNS = `id, kind, account_id as "accountId", amount_micros as "amountMicros", captured_micros as "capturedMicros", state, created_at as "createdAt"`;

/**
 * The gateway sessions use: calls for a prepaid or postpaid token, or on a hold it placed, go to
 * the balance holds, the rest to the card company. Reconciliation lists the card company's holds only.
 */
export function withBalances(card: CardGateway, balances: BalanceHolds): CardGateway {
  return {
    tokenize: (details, key) => card.tokenize(details, key),
    authorize: (request) => {
      const [, kind, accountId] = TOKEN.exec(request.token) ?? [];
      if (!kind || !accountId) return card.authorize(request);
      return balances.authorize({ kind: kind as HoldKind, accountId, amountMicros: request.amountMicros, reference: request.reference, idempotencyKey: request.idempotencyKey });
    },
    increment: (request) => (isBalanceHold(request.holdId) ? balances.increment(request) : card.increment(request)),
    capture: (request) => (isBalanceHold(request.holdId) ? balances.capture(request) : card.capture(request)),
    void: (request) => (isBalanceHold(request.holdId) ? balances.void(request) : card.void(request)),
    // Refunds go back to a card: balance holds are never refunded, only given back by capture or void.
    refund: (request) => card.refund(request),
    listOpenHolds: () => card.listOpenHolds(),
  };
}
