import { randomUUID } from 'node:crypto';
import { formatAmount } from '../billing/money.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';
import { errors } from '../errors.js';
import { CardDeclinedError, CardInvalidError, CardNetworkUnavailableError, type CardDetails, type CardGateway } from '../payments/gateway.js';
import { hashPassword, verifyPassword } from './credentials.js';
import type { StatementPeriod } from '../statements/periods.js';
import { retryDeclinedCharges } from '../statements/statement-sql.js';

/**
 * A new card for the account: exchanged for a token at the card network first (DESIGN rule 10),
 * then it replaces the old one, whose token is forgotten. Sessions already running keep the hold
 * they have on the old card; new sessions hold on the new one. Statements the old card was
 * declined for are charged to the new one, at once.
 */
export async function changeCard(deps: { sql: Sql; gateway: CardGateway; chargeStatements: () => void }, accountId: string, card: CardDetails): Promise<void> {
  const tokenized = await deps.gateway.tokenize(card, `card-change:${accountId}:${randomUUID()}`).catch((error: unknown) => {
    if (error instanceof CardInvalidError) throw errors.cardInvalid(error.field, error.message);
    if (error instanceof CardDeclinedError) throw errors.cardDeclined(error.reason);
    if (error instanceof CardNetworkUnavailableError) throw errors.cardNetworkUnavailable();
    throw error;
  });
  const retried = await transaction(deps.sql, async (tx) => {
    await tx`
      update accounts set card_token = ${tokenized.token}, card_brand = ${tokenized.brand}, card_last4 = ${tokenized.last4},
        card_exp_month = ${tokenized.expMonth}, card_exp_year = ${tokenized.expYear}
      where id = ${accountId}`;
    return retryDeclinedCharges(tx, accountId);
  });
  if (retried > 0) deps.chargeStatements();
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

/** What a customer may change of their account's settings at once. */
export interface AccountChange {
  /** Never below what the account's open sessions hold now. */
  outstandingLimit?: bigint | undefined;
  /**
   * Holds on the card or a prepaid balance. A session keeps the holds it has (they are settled
   * where they were placed); the next one holds the new way. Postpaid is the operators' to give and take.
   */
  paymentMode?: 'card' | 'prepaid' | undefined;
  /** Monthly or weekly statements: the period under way keeps its length; the next one has the new length. */
  statementPeriod?: StatementPeriod | undefined;
}

/**
 * A customer's change to their settings, all of it or none: the account's row is locked, checked
 * (a limit below what is held, a postpaid account's mode) and changed in one transaction, so a part
 * refused changes nothing else, and an open reserving at the same moment either committed first
 * (and the check sees it) or waits for the row and finds the new limit (DESIGN rule 6).
 */
export async function changeAccount(sql: Sql, accountId: string, change: AccountChange): Promise<void> {
  const limit = change.outstandingLimit ?? null;
  const mode = change.paymentMode ?? null;
  await transaction(sql, async (tx) => {
    const [account] = await tx<{ reserved: bigint; paymentMode: string }[]>`
      select reserved_micros as reserved, payment_mode as "paymentMode" from accounts where id = ${accountId} for no key update`;
    if (!account) throw errors.accountNotFound();
    if (limit !== null && account.reserved > limit) throw errors.limitBelowReserved(formatAmount(account.reserved));
    if (mode !== null && account.paymentMode === 'postpaid') throw errors.paymentModeNotYours();
    await tx`
      update accounts set
        outstanding_limit_micros = coalesce(${limit}::bigint, outstanding_limit_micros),
        payment_mode = coalesce(${mode}::text, payment_mode),
        statement_period = coalesce(${change.statementPeriod ?? null}::text, statement_period)
      where id = ${accountId}`;
  });
}
