import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TransactionSql } from '../../src/db/sql.js';
import { JournalWriteError } from '../../src/sessions/journal.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { testJournal } from '../helpers/journal.js';

/**
 * The journal's lanes: sessions of different accounts commit in transactions side by side,
 * each session's writes stay in the order they were appended, and a lane held up by a lock
 * does not hold the other lane's sessions.
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`create table writes (session_id text, n int, at timestamptz default clock_timestamp())`;
});
afterAll(async () => {
  await db.drop();
});

const insert = (sessionId: string, n: number) => async (tx: TransactionSql) => {
  await tx`insert into writes (session_id, n) values (${sessionId}, ${n})`;
  return [];
};

describe('journal lanes', () => {
  it('commits every session of many accounts, each session in the order its writes were appended', async () => {
    const j = testJournal(db.sql, { lanes: 3 });
    const appended: Promise<void>[] = [];
    for (let n = 0; n < 5; n++) {
      for (let s = 0; s < 40; s++) appended.push(j.append({ sessionId: `order-${s}`, lockKey: `account-${s % 7}`, retry: true, write: insert(`order-${s}`, n) }));
    }
    await Promise.all(appended);
    const rows = await db.sql<{ session_id: string; ns: number[] }[]>`
      select session_id, array_agg(n order by at, n) as ns from writes where session_id like 'order-%' group by session_id`;
    expect(rows).toHaveLength(40);
    for (const row of rows) expect(row.ns).toEqual([0, 1, 2, 3, 4]);
    j.close();
  });

  it('lets another account commit while one lane waits on a lock', async () => {
    const j = testJournal(db.sql, { lanes: 2 });
    const lock = await db.sql.reserve();
    await lock`begin`;
    await lock`select pg_advisory_xact_lock(42)`;
    const waiting = j.append({
      sessionId: 'held-session',
      lockKey: 'account-0',
      retry: false,
      write: async (tx) => {
        await tx`select pg_advisory_xact_lock(42)`;
        return insert('held-session', 0)(tx);
      },
    });
    const others: { key: string; done: boolean }[] = [];
    for (let i = 1; i <= 8; i++) {
      const entry = { key: `account-${i}`, done: false };
      others.push(entry);
      void j.append({ sessionId: `free-${i}`, lockKey: entry.key, retry: false, write: insert(`free-${i}`, 0) }).then(() => (entry.done = true));
    }
    await expect.poll(() => others.filter((o) => o.done).length, { timeout: 5000 }).toBeGreaterThan(0);
    // The held write has not committed: its lane is still waiting for the lock.
    const [held] = await db.sql`select count(*)::int as n from writes where session_id = 'held-session'`;
    expect(held!.n).toBe(0);
    // Accounts hashed to the held lane wait; none of the others does.
    expect(others.filter((o) => !o.done).length).toBeGreaterThan(0);
    await lock`commit`;
    lock.release();
    await waiting;
    await j.idle();
    expect(others.every((o) => o.done)).toBe(true);
    const [count] = await db.sql`select count(*)::int as n from writes where session_id like 'free-%' or session_id = 'held-session'`;
    expect(count!.n).toBe(9);
    j.close();
  });

  it('with one lane, a write waits behind the batch in flight', async () => {
    const j = testJournal(db.sql, { lanes: 1 });
    const lock = await db.sql.reserve();
    await lock`begin`;
    await lock`select pg_advisory_xact_lock(43)`;
    const waiting = j.append({
      sessionId: 'single-held',
      lockKey: 'account-0',
      retry: false,
      write: async (tx) => {
        await tx`select pg_advisory_xact_lock(43)`;
        return [];
      },
    });
    let done = false;
    // A tick later, so it misses the first batch and waits for the next.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const other = j.append({ sessionId: 'single-other', lockKey: 'account-1', retry: false, write: insert('single-other', 0) }).then(() => (done = true));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(done).toBe(false);
    await lock`commit`;
    lock.release();
    await Promise.all([waiting, other]);
    expect(done).toBe(true);
    j.close();
  });

  it('fails one session alone: the others in its batch commit', async () => {
    const j = testJournal(db.sql, { lanes: 2 });
    const bad = j.append({
      sessionId: 'bad',
      lockKey: 'account-1',
      retry: false,
      write: async (tx) => {
        await tx`select 1/0`;
        return [];
      },
    });
    const good = Array.from({ length: 10 }, (_, i) => j.append({ sessionId: `good-${i}`, lockKey: `account-${i}`, retry: false, write: insert(`good-${i}`, 0) }));
    await expect(bad).rejects.toBeInstanceOf(JournalWriteError);
    await Promise.all(good);
    const [count] = await db.sql`select count(*)::int as n from writes where session_id like 'good-%'`;
    expect(count!.n).toBe(10);
    j.close();
  });
});
