import { expect } from 'vitest';
import type { Sql } from '../../src/db/sql.js';

/**
 * The ledger invariant for every settled session: captured ≤ authorized, captured = charge,
 * and the rest of every hold released (a renewed session's replaced holds included), so the
 * holds account balances to zero; an account's reservation is the sum of its open sessions' shares.
 *
 * `settled` is how many settled sessions the caller expects the check to cover: a ledger with
 * fewer (or more) settled sessions than the test saw settle is a failure, not a vacuous pass.
 */
export async function expectLedgerBalanced(sql: Sql, expected: { settled: number }): Promise<void> {
  const rows = await sql<
    { id: string; authorized: bigint; charge: bigint; hold: bigint; captured: bigint; released: bigint; slip: bigint | null }[]
  >`
    select s.id, s.authorized_micros as authorized, s.charge_micros as charge,
      coalesce(sum(l.amount_micros) filter (where l.kind = 'hold'), 0)::int8 as hold,
      coalesce(sum(l.amount_micros) filter (where l.kind = 'capture'), 0)::int8 as captured,
      coalesce(sum(l.amount_micros) filter (where l.kind = 'release'), 0)::int8 as released,
      (select amount_micros from charge_slips c where c.session_id = s.id) as slip
    from sessions s left join ledger_entries l on l.session_id = s.id
    where s.state = 'settled' group by s.id`;
  expect(rows.length, 'settled sessions in the ledger').toBe(expected.settled);
  for (const row of rows) {
    expect(row.hold, `holds of ${row.id} balance`).toBe(row.captured + row.released);
    expect(row.captured <= row.authorized, `captured ≤ authorized for ${row.id}`).toBe(true);
    expect(row.captured, `captured = charge for ${row.id}`).toBe(row.charge);
    expect(row.slip ?? 0n, `charge slip of ${row.id}`).toBe(row.captured);
  }
  const accounts = await sql<{ id: string; reserved: bigint; open: bigint }[]>`
    select a.id, a.reserved_micros as reserved,
      coalesce((select sum(reserved_micros) from sessions s
        where s.account_id = a.id and s.state not in ('settled', 'declined')), 0)::int8 as open
    from accounts a`;
  for (const account of accounts) expect(account.reserved, `reservation of ${account.id}`).toBe(account.open);
}

/**
 * The sessions a test saw settled through the API (a logoff answered 200, a session read back
 * settled): what expectLedgerBalanced should find, no more and no fewer.
 */
export function settledSessions() {
  const ids = new Set<string>();
  return {
    /** Notes a session view if it says settled, and hands it back. */
    note<T>(view: T): T {
      const session = view as { id?: unknown; state?: unknown } | null | undefined;
      if (session && session.state === 'settled' && typeof session.id === 'string') ids.add(session.id);
      return view;
    },
    get count(): number {
      return ids.size;
    },
  };
}
