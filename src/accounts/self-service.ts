import { randomUUID } from 'node:crypto';
import { formatAmount } from '../billing/money.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';
import { errors } from '../errors.js';
import { CardDeclinedError, CardInvalidError, CardNetworkUnavailableError, type CardDetails, type CardGateway } from '../payments/gateway.js';
import { hashPassword, verifyPassword } from './credentials.js';
import type { StatementPeriod } from '../statements/periods.js';

/**
 * A new card for the account: exchanged for a token at the card network first (DESIGN rule 10),
 * then it replaces the old one, whose token is forgotten. Sessions already running keep the hold
 * they have on the old card; new sessions hold on the new one.
 */
export async function changeCard(deps: { sql: Sql; gateway: CardGateway }, accountId: string, card: CardDetails): Promise<void> {
  const tokenized = await deps.gateway.tokenize(card, `card-change:${accountId}:${randomUUID()}`).catch((error: unknown) => {
    if (error instanceof CardInvalidError) throw errors.cardInvalid(error.field, error.message);
    if (error instanceof CardDeclinedError) throw errors.cardDeclined(error.reason);
    if (error instanceof CardNetworkUnavailableError) throw errors.cardNetworkUnavailable();
    throw error;
  });
  await deps.sql`
    update accounts set card_token = ${tokenized.token}, card_brand = ${tokenized.brand}, card_last4 = ${tokenized.last4},
      card_exp_month = ${tokenized.expMonth}, card_exp_year = ${tokenized.expYear}
    where id = ${accountId}`;
}

/**
 * A new outstanding limit, never below what the account's open sessions hold now. One
 * conditional statement: an open reserving at the same moment either committed first (and the
 * check sees it) or waits for the row and finds the new limit (DESIGN rule 6).
 */
export async function changeOutstandingLimit(sql: Sql, accountId: string, limitMicros: bigint): Promise<void> {
  const [changed] = await sql`
    update accounts set outstanding_limit_micros = ${limitMicros}
    where id = ${accountId} and reserved_micros <= ${limitMicros} returning 1`;
  if (changed) return;
  const [account] = await sql<{ reserved: bigint }[]>`select reserved_micros as reserved from accounts where id = ${accountId}`;
  if (!account) throw errors.accountNotFound();
  throw errors.limitBelowReserved(formatAmount(account.reserved));
}

/**
 * A new password, given the current one. Every other token of the account is revoked with it
 * (whoever knew the old password may hold one); the token this request came with stays. Returns
 * the revoked tokens' hashes, for caches to forget at once.
 */
export async function changePassword(
  deps: { sql: Sql; clock: Clock },
  request: { accountId: string; tokenId: string; currentPassword: string; newPassword: string },
): Promise<Buffer[]> {
  const [account] = await deps.sql<{ passwordHash: string }[]>`
    select password_hash as "passwordHash" from accounts where id = ${request.accountId}`;
  if (!account) throw errors.accountNotFound();
  if (!(await verifyPassword(account.passwordHash, request.currentPassword))) throw errors.wrongPassword();
  const passwordHash = await hashPassword(request.newPassword);
  return transaction(deps.sql, async (tx) => {
    await tx`update accounts set password_hash = ${passwordHash} where id = ${request.accountId}`;
    const revoked = await tx<{ tokenHash: Buffer }[]>`
      update api_tokens set revoked_at = ${new Date(deps.clock.now())}
      where account_id = ${request.accountId} and id <> ${request.tokenId} and revoked_at is null
      returning token_hash as "tokenHash"`;
    return revoked.map((row) => row.tokenHash);
  });
}

/**
 * The customer's own choice between holds on the card and a prepaid balance. A session keeps the
 * holds it has (they are settled where they were placed); the next one holds the new way.
 * Postpaid is the operators' to give and take.
 */
export async function changePaymentMode(sql: Sql, accountId: string, mode: 'card' | 'prepaid'): Promise<void> {
  const [changed] = await sql`
    update accounts set payment_mode = ${mode} where id = ${accountId} and payment_mode <> 'postpaid' returning 1`;
  if (!changed) throw errors.paymentModeNotYours();
}

/** Monthly or weekly statements: the period under way keeps its length; the next one has the new length. */
export async function changeStatementPeriod(sql: Sql, accountId: string, period: StatementPeriod): Promise<void> {
  await sql`update accounts set statement_period = ${period} where id = ${accountId}`;
}
