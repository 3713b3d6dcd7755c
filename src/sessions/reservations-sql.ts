import type { ReserveInput } from '../../machines/session/index.js';
import type { TransactionSql } from '../db/sql.js';

/**
 * Raises the session's share of its account's outstanding limit to `toMicros`, if what is left
 * allows it; a session held on a postpaid account's statement is not held to the limit here, as
 * it was not when it opened (opening-sql.ts), but the share is still counted. Safe to run again:
 * a share already that large is reported reserved. Rows are locked session first, then account, as the journal does.
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
    where id = ${input.accountId}
      and (outstanding_limit_micros - reserved_micros >= ${delta}
        -- A session keeps the way it pays: one held on a card is held to the limit even if an
        -- operator made the account postpaid since, and a postpaid one is not after it changed back.
        or exists (select 1 from balance_holds h
          where h.account_id = ${input.accountId} and h.session_id = ${input.sessionId} and h.kind = 'postpaid' and h.state = 'open'))
    returning id`;
  if (!account) return false;
  // The fencing token, as every write of the row carries (migration 0013_cluster.sql).
  await tx`update sessions set reserved_micros = ${to}, owner_epoch = ${epoch}::int8 where id = ${input.sessionId}`;
  return true;
}
