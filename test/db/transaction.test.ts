import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/db/sql.js';
import { transaction } from '../../src/db/transaction.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { startPgFaultProxy, type PgFaultProxy } from '../helpers/pg-fault-proxy.js';

let db: TestDatabase;
let proxy: PgFaultProxy;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`create table marks (id serial primary key, marker text not null)`;
  proxy = await startPgFaultProxy({ target: db.url });
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

const count = async (marker: string) => (await db.sql<{ n: number }[]>`select count(*)::int as n from marks where marker = ${marker}`)[0]!.n;

describe('a transaction whose connection dies', () => {
  it.each(['lose_commit_answer', 'kill_before_commit'] as const)(
    'rejects on %s, and the pool (of one connection) carries on with the next transaction and query',
    async (fault) => {
      const sql = connect(proxy.url, { max: 1 });
      try {
        const doomed = `doomed-${randomUUID()}`;
        const fired = proxy.arm({ fault, match: doomed }).fired;
        await expect(transaction(sql, (tx) => tx`insert into marks (marker) values (${doomed})`)).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
        await fired;
        expect(await count(doomed)).toBe(fault === 'lose_commit_answer' ? 1 : 0);

        const next = `next-${randomUUID()}`;
        await transaction(sql, (tx) => tx`insert into marks (marker) values (${next})`);
        expect(await count(next)).toBe(1);
        expect(await sql<{ one: number }[]>`select 1 as one`).toEqual([{ one: 1 }]);
      } finally {
        await sql.end({ timeout: 1 });
      }
    },
  );

  it('releases a connection after an ordinary SQL error, so a pool of one is not used up', async () => {
    const sql = connect(proxy.url, { max: 1 });
    try {
      for (let i = 0; i < 3; i++) {
        await expect(transaction(sql, (tx) => tx`insert into no_such_table values (1)`)).rejects.toMatchObject({ code: '42P01' });
      }
      const marker = `after-errors-${randomUUID()}`;
      await transaction(sql, (tx) => tx`insert into marks (marker) values (${marker})`);
      expect(await count(marker)).toBe(1);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});
