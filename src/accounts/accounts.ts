import { randomUUID } from 'node:crypto';
import type { AccountStateName } from '../../machines/account/index.js';
import { formatAmount } from '../billing/money.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import { errors } from '../errors.js';
import type { PaymentMode } from '../payments/balance-gateway.js';
import { CardDeclinedError, CardInvalidError, CardNetworkUnavailableError, type CardDetails, type CardGateway } from '../payments/gateway.js';
import { hashPassword } from './credentials.js';
import { normalizeEmail } from './login.js';
import { insertToken, type TokenPolicy } from './tokens.js';
import { transaction } from '../db/transaction.js';
import { periodContaining, type StatementPeriod } from '../statements/periods.js';
import { writeSignUpState } from './account-rows.js';

export interface SignUp {
  name: string;
  email: string;
  password: string;
  card: CardDetails;
  estimatedStorageGb: number;
  estimatedProcessingHours: number;
  outstandingLimitMicros: bigint;
}

export interface AccountView {
  id: string;
  name: string;
  email: string;
  card: { brand: string; last4: string; expMonth: number; expYear: number };
  estimatedStorageGb: number;
  estimatedProcessingHours: number;
  currency: string;
  outstandingLimit: string;
  reserved: string;
  /** The account machine's state. */
  state: AccountStateName;
  /** card: each session holds on the card; prepaid: on the balance; postpaid: charged on the statement. */
  paymentMode: PaymentMode;
  /** The prepaid balance free to hold, and what open sessions hold of it. */
  balance: string;
  balanceHeld: string;
  /** How long a statement's period is: from the next period on, when changed. */
  statementPeriod: StatementPeriod;
  /** When a suspension for a time ends by itself; null otherwise. */
  resumesAt: string | null;
  createdAt: string;
}

export interface AccountsDeps {
  sql: Sql;
  clock: Clock;
  gateway: CardGateway;
  currency: string;
  tokenPolicy: TokenPolicy;
}

export async function signUp(deps: AccountsDeps, request: SignUp): Promise<{ account: AccountView; token: string }> {
  const { sql, clock, gateway } = deps;
  const email = normalizeEmail(request.email);
  const [taken] = await sql<{ closed: boolean }[]>`select state = 'closed' as closed from accounts where email_normalized = ${email}`;
  if (taken) throw errors.emailTaken(taken.closed);
  // The card is exchanged for a token before anything is stored (DESIGN rule 10).
  const card = await gateway.tokenize(request.card, `signup:${randomUUID()}`).catch((error: unknown) => {
    if (error instanceof CardInvalidError) throw errors.cardInvalid(error.field, error.message);
    if (error instanceof CardDeclinedError) throw errors.cardDeclined(error.reason);
    if (error instanceof CardNetworkUnavailableError) throw errors.cardNetworkUnavailable();
    throw error;
  });
  const id = randomUUID();
  const passwordHash = await hashPassword(request.password);
  const now = clock.now();
  const createdAt = new Date(now);
  // Statements are monthly until the customer asks for weekly ones.
  const firstPeriod = periodContaining('month', now);
  let token = '';
  try {
    await transaction(sql, async (tx) => {
      await tx`
        insert into accounts (id, name, email, email_normalized, password_hash, estimated_storage_gb,
          estimated_processing_hours, card_token, card_brand, card_last4, card_exp_month, card_exp_year, currency,
          outstanding_limit_micros, created_at, statement_from, statement_due_at)
        values (${id}, ${request.name}, ${request.email.trim()}, ${email}, ${passwordHash}, ${request.estimatedStorageGb},
          ${request.estimatedProcessingHours}, ${card.token}, ${card.brand}, ${card.last4}, ${card.expMonth},
          ${card.expYear}, ${deps.currency}, ${request.outstandingLimitMicros}, ${createdAt},
          ${new Date(firstPeriod.start)}, ${new Date(firstPeriod.end)})`;
      await writeSignUpState(tx, id, createdAt, { kind: 'customer', id, name: request.name });
      ({ token } = await insertToken(tx, id, deps.tokenPolicy, now));
    });
  } catch (error) {
    if ((error as { code?: string }).code === '23505') throw errors.emailTaken();
    throw error;
  }
  return { account: (await findAccount(sql, id))!, token };
}

type AccountRow = {
  id: string;
  name: string;
  email: string;
  brand: string;
  last4: string;
  expMonth: number;
  expYear: number;
  storage: string;
  processing: string;
  currency: string;
  limit: bigint;
  reserved: bigint;
  state: AccountStateName;
  paymentMode: PaymentMode;
  balance: bigint;
  balanceHeld: bigint;
  statementPeriod: StatementPeriod;
  resumesAt: Date | null;
  createdAt: Date;
};

const ACCOUNT_COLUMNS = `id, name, email, card_brand as brand, card_last4 as last4, card_exp_month as "expMonth",
  card_exp_year as "expYear", estimated_storage_gb::text as storage, estimated_processing_hours::text as processing,
  currency, outstanding_limit_micros as limit, reserved_micros as reserved, state,
  payment_mode as "paymentMode", balance_micros as balance, balance_held_micros as "balanceHeld",
  statement_period as "statementPeriod", resumes_at as "resumesAt", created_at as "createdAt"`;

const accountView = (row: AccountRow): AccountView => ({
  id: row.id,
  name: row.name,
  email: row.email,
  card: { brand: row.brand, last4: row.last4, expMonth: row.expMonth, expYear: row.expYear },
  estimatedStorageGb: Number(row.storage),
  estimatedProcessingHours: Number(row.processing),
  currency: row.currency,
  outstandingLimit: formatAmount(row.limit),
  reserved: formatAmount(row.reserved),
  state: row.state,
  paymentMode: row.paymentMode,
  balance: formatAmount(row.balance),
  balanceHeld: formatAmount(row.balanceHeld),
  statementPeriod: row.statementPeriod,
  resumesAt: row.resumesAt?.toISOString() ?? null,
  createdAt: row.createdAt.toISOString(),
});

export async function findAccount(sql: Sql, id: string): Promise<AccountView | null> {
  const [row] = await sql<AccountRow[]>`select ${sql.unsafe(ACCOUNT_COLUMNS)} from accounts where id = ${id}`;
  return row ? accountView(row) : null;
}

export interface AccountFilter {
  state?: AccountStateName | undefined;
  /** Part of the name or the e-mail, any case. */
  search?: string | undefined;
  limit: number;
  /** The nextCursor of the page before. */
  cursor?: string | undefined;
}

/** A nextCursor as listAccounts gave it out; anything else would silently give the first page again, and a client paging would never end. */
function accountCursor(cursor: string): { at: Date; id: string } {
  const [at, id, ...rest] = cursor.split('|');
  const date = new Date(at ?? '');
  if (rest.length === 0 && id && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id) && !Number.isNaN(date.getTime()) && date.toISOString() === at) {
    return { at: date, id };
  }
  throw errors.validation('cursor is not one this API gave out.', [{ path: 'querystring.cursor', message: 'must be the nextCursor of a previous page' }]);
}

/** A page of accounts for operators, newest first; the cursor is the last row's creation and id, so a page never repeats or skips a row. */
export async function listAccounts(sql: Sql, filter: AccountFilter): Promise<{ accounts: AccountView[]; nextCursor: string | null }> {
  const after = filter.cursor ? accountCursor(filter.cursor) : null;
  // LIKE's own wildcards in what the operator typed are matched as themselves.
  const pattern = filter.search ? `%${filter.search.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%` : null;
  const rows = await sql<AccountRow[]>`
    select ${sql.unsafe(ACCOUNT_COLUMNS)} from accounts
    where true
      ${filter.state ? sql`and state = ${filter.state}` : sql``}
      ${pattern ? sql`and (lower(name) like ${pattern} or email_normalized like ${pattern})` : sql``}
      ${after ? sql`and (created_at, id) < (${after.at}, ${after.id})` : sql``}
    order by created_at desc, id desc
    limit ${filter.limit + 1}`;
  const page = rows.slice(0, filter.limit);
  const last = page.at(-1);
  return { accounts: page.map(accountView), nextCursor: rows.length > filter.limit && last ? `${last.createdAt.toISOString()}|${last.id}` : null };
}
