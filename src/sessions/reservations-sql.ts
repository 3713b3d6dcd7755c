import type { ReserveInput } from '../../machines/session/index.js';
import type { TransactionSql } from '../db/sql.js';

/**
 * Raises the session's share of its account's outstanding limit to `toMicros`, if what is left
 * allows it; a postpaid account is not held to its limit here, as it is not when a session opens
 * (opening-sql.ts), but the share is still counted. Safe to run again: a share already that large
 * is reported reserved. Rows are locked session first, then account, as the journal does.
 */
export async function reserveShare(tx: TransactionSql, input: ReserveInput, epoch: bigint | null = null): Promise<boolean> {
  const to = BigInt(input.toMicros);
  const [session] = await tx<{ reserved: bigint }[]>`
    select reserved_micros as reserved from sessions where id = ${input.sessionId} for update`;
  if (!session) throw new Error(`session ${input.sessionId} has no row`);
  if (session.reserved >= to) return true;
  const delta = to - session.reserved;
  const [account] = await tx`
    update accounts set reserved_micros = reserved_micros + ${delta}
    where id = ${input.accountId} and (payment_mode = 'postpaid' or outstanding_limit_micros - reserved_micros >= ${delta})
    returning id`;
  if (!account) return false;
  // The fencing token, as every write of the row carries (migration 0013_cluster.sql).
  await tx`update sessions set reserved_micros = ${to}, owner_epoch = ${epoch}::int8 where id = ${input.sessionId}`;
  return true;
}
