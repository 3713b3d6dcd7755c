import { costOfTime, holdForTime, minimumChargeOf } from '../billing/charge.js';
import { formatAmount, type Micros, MICROS_PER_CENT, minMicros } from '../billing/money.js';
import type { TariffSpec } from '../billing/tariff.js';
import type { Queryable } from '../db/sql.js';
import { errors } from '../errors.js';

/**
 * The hold a new session asks for, given what is left of the account's outstanding limit:
 * maxCharge when given; with none, what is left, or, when a time limit is set, just what that
 * time can cost from now at the service's tariff (rounded up to a cent, at least the minimum
 * charge, a cent more where the charge, rounded to cents, would reach it before the time is up). The reservation itself is made, under the account's row
 * lock, by the statement that opens the session (insertOpening), which checks it still fits
 * (DESIGN rule 6).
 */
export function proposedHold(request: {
  availableMicros: bigint;
  maxChargeMicros: bigint | null;
  maxMs: number | null;
  tariff: TariffSpec;
  at: number;
}): bigint {
  if (request.maxChargeMicros !== null) return request.maxChargeMicros;
  if (request.maxMs === null) return request.availableMicros;
  return minMicros(request.availableMicros, timeHold(request.tariff, request.at, request.maxMs));
}

/** What a session limited only by time holds, whatever is free: the time's cost, at least a cent. */
function timeHold(tariff: TariffSpec, at: number, maxMs: number): Micros {
  const timeCost = costOfTime({ tariff, startedAt: at, resumes: [] }, maxMs);
  const hold = timeCost < MICROS_PER_CENT ? MICROS_PER_CENT : timeCost;
  return holdForTime({ tariff, at, maxMs, holdMicros: hold as Micros });
}

/**
 * The least hold an open could be given, for a refusal to name when less is free: its charge
 * limit, or its time's hold, or else a cent (and the tariff's minimum charge, which any session
 * that runs is charged).
 */
export function holdNeeded(request: { maxChargeMicros: bigint | null; maxMs: number | null; tariff: TariffSpec; at: number }): bigint {
  if (request.maxChargeMicros !== null) return request.maxChargeMicros;
  const minimum = minimumChargeOf(request.tariff);
  const least = request.maxMs === null ? MICROS_PER_CENT : timeHold(request.tariff, request.at, request.maxMs);
  return least > minimum ? least : minimum;
}

/** What is left of the account's outstanding limit now (null: no such account). */
export async function availableHeadroom(db: Queryable, accountId: string): Promise<bigint | null> {
  const [account] = await db<{ available: bigint }[]>`
    select outstanding_limit_micros - reserved_micros as available from accounts where id = ${accountId}`;
  return account?.available ?? null;
}

/**
 * What a new session of the account may hold when it names no charge limit: what is left of the
 * outstanding limit (for a prepaid account, no more than its free balance, which holds it), or for a postpaid account (trusted: never cut at a limit, billed on its
 * statement) `postpaidCeilingMicros`, the largest amount any request may name. Null: no such account.
 */
export async function openingHeadroom(db: Queryable, accountId: string, postpaidCeilingMicros: bigint): Promise<bigint | null> {
  const [account] = await db<{ available: bigint }[]>`
    select case payment_mode
      when 'postpaid' then ${postpaidCeilingMicros}::int8
      when 'prepaid' then least(outstanding_limit_micros - reserved_micros, balance_micros)
      else outstanding_limit_micros - reserved_micros end as available
    from accounts where id = ${accountId}`;
  return account?.available ?? null;
}

/**
 * The answer when the hold an open derived from the account does not fit: an account that may not
 * open says so; a prepaid balance that is what binds says so (BALANCE_TOO_LOW), not the outstanding limit.
 */
export async function derivedHoldRefusal(db: Queryable, accountId: string, holdMicros: bigint, availableMicros: bigint) {
  const [account] = await db<{ balanceBinds: boolean; mayOpen: boolean; state: string }[]>`
    select payment_mode = 'prepaid' and balance_micros < outstanding_limit_micros - reserved_micros as "balanceBinds", may_open as "mayOpen", state
    from accounts where id = ${accountId}`;
  // An account that may not open (closed or suspended while the open waited for a seat) says so,
  // as a card account's open does, not that its balance (refunded at a close) is too low.
  if (account && !account.mayOpen) return errors.accountNotActive(account.state);
  return account?.balanceBinds ? errors.cardDeclined('balance_too_low') : limitReached(holdMicros, availableMicros);
}

/**
 * The answer when a hold does not fit what is left of the outstanding limit. What is free is never
 * less than nothing: postpaid sessions are not held to the limit, and may hold past it.
 */
export function limitReached(holdMicros: bigint, reportedMicros: bigint) {
  const availableMicros = reportedMicros < 0n ? 0n : reportedMicros;
  return errors.outstandingLimitReached(
    formatAmount(availableMicros),
    `This session needs a hold of ${formatAmount(holdMicros)} but only ${formatAmount(availableMicros)} of the outstanding limit is free.`,
  );
}
