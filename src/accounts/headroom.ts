import { ceilToCents, formatAmount, MICROS_PER_CENT, minMicros } from '../billing/money.js';
import { accruedMicros } from '../billing/tariff.js';
import type { TransactionSql } from '../db/sql.js';
import { errors } from '../errors.js';

export interface Customer {
  name: string;
  email: string;
  currency: string;
  estimatedStorageGb: string;
  estimatedProcessingHours: string;
}

/**
 * Reserves a session's hold against the account's limit on outstanding charges, under a row
 * lock so concurrent opens cannot oversubscribe it (DESIGN rule 6). With no maxCharge the hold
 * is what is left of the limit, or, when a time limit is set, just what that time can cost.
 */
export async function reserveHeadroom(
  tx: TransactionSql,
  request: { accountId: string; maxChargeMicros: bigint | null; maxMs: number | null; pricePerMinuteMicros: bigint },
): Promise<{ holdMicros: bigint; customer: Customer; cardToken: string }> {
  const [account] = await tx<(Customer & { limit: bigint; reserved: bigint; cardToken: string })[]>`
    select name, email, currency, card_token as "cardToken", estimated_storage_gb::text as "estimatedStorageGb",
      estimated_processing_hours::text as "estimatedProcessingHours",
      outstanding_limit_micros as limit, reserved_micros as reserved
    from accounts where id = ${request.accountId} for update`;
  if (!account) throw errors.unauthenticated();
  const available = account.limit - account.reserved;
  let hold = request.maxChargeMicros;
  if (hold === null) {
    hold = available;
    if (request.maxMs !== null) {
      const timeCost = ceilToCents(accruedMicros(request.pricePerMinuteMicros, request.maxMs));
      hold = minMicros(available, timeCost < MICROS_PER_CENT ? MICROS_PER_CENT : timeCost);
    }
  }
  if (hold < MICROS_PER_CENT || hold > available) {
    throw errors.outstandingLimitReached(
      formatAmount(available),
      `This session needs a hold of ${formatAmount(hold)} but only ${formatAmount(available)} of the outstanding limit is free.`,
    );
  }
  await tx`update accounts set reserved_micros = reserved_micros + ${hold} where id = ${request.accountId}`;
  const { limit: _limit, reserved: _reserved, cardToken, ...customer } = account;
  return { holdMicros: hold, customer, cardToken };
}

/** Reserves the extra hold of an extension against the account's limit and the session's share. */
export async function reserveExtension(
  tx: TransactionSql,
  request: { accountId: string; sessionId: string; deltaMicros: bigint },
): Promise<void> {
  const [account] = await tx<{ available: bigint }[]>`
    select outstanding_limit_micros - reserved_micros as available from accounts where id = ${request.accountId} for update`;
  if (!account || request.deltaMicros > account.available) {
    const available = account?.available ?? 0n;
    throw errors.outstandingLimitReached(
      formatAmount(available),
      `Raising the limit needs ${formatAmount(request.deltaMicros)} more but only ${formatAmount(available)} of the outstanding limit is free.`,
    );
  }
  await tx`update accounts set reserved_micros = reserved_micros + ${request.deltaMicros} where id = ${request.accountId}`;
  await tx`update sessions set reserved_micros = reserved_micros + ${request.deltaMicros} where id = ${request.sessionId}`;
}
