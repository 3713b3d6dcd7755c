import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { connect, type Queryable, type Sql } from '../../src/db/sql.js';
import { transaction } from '../../src/db/transaction.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { startPgFaultProxy, type PgFaultProxy } from './pg-fault-proxy.js';

/**
 * The proxy against a real PostgreSQL, driven by the engine's own connect() and transaction():
 * what a fault does is read back over a direct connection that bypasses the proxy.
 */
let db: TestDatabase;
let proxy: PgFaultProxy;
let throughProxy: Sql;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`create table marks (id serial primary key, marker text not null)`;
  proxy = await startPgFaultProxy({ target: db.url });
});
// A fresh pool per test: transaction() releases a connection that died under it back into the
// pool, where postgres.js 3.4.9 keeps it; the next query on it hangs and throws an uncaught
// TypeError, and a graceful end() waits for it forever (porsager/postgres#1199). That is the
// engine's defect to fix, not this helper's. A small pool, so concurrent queries share
// connections and postgres.js pipelines them.
beforeEach(() => {
  throughProxy = connect(proxy.url, { max: 4 });
});
afterEach(async () => {
  proxy.disarm();
  await throughProxy.end({ timeout: 0 });
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

const connectionClosed = { code: 'CONNECTION_CLOSED' };
const newMarker = (label: string) => `${label}-${randomUUID()}`;
const insertMark = (sql: Queryable, marker: string) => sql`insert into marks (marker) values (${marker})`;

/** Rows with this marker, as the server holds them: read directly, never through the proxy. */
async function committedRows(marker: string): Promise<number> {
  const [row] = await db.sql<{ rows: number }[]>`select count(*)::int as rows from marks where marker = ${marker}`;
  return row!.rows;
}

async function warmUp(connection: Queryable) {
  await connection`begin`;
  await insertMark(connection, 'warm-up');
  await connection`commit`;
}

async function sleepsRunning(): Promise<number> {
  const [row] = await db.sql<{ sleeps: number }[]>`
    select count(*)::int as sleeps from pg_stat_activity
    where datname = current_database() and state = 'active' and query like 'select pg_sleep%'`;
  return row!.sleeps;
}

/** Resolves for everyone once `parties` callers are waiting: keeps transactions open together. */
function barrier(parties: number) {
  let arrived = 0;
  let releaseAll = () => {};
  const allArrived = new Promise<void>((resolve) => (releaseAll = resolve));
  return async () => {
    if (++arrived === parties) releaseAll();
    await allArrived;
  };
}

describe('with nothing armed', () => {
  it('passes queries, a large parameter, a large result, simple queries and a transaction unchanged', async () => {
    const large = 'x'.repeat(1_000_000);
    expect(await throughProxy`select 1 as one`).toEqual([{ one: 1 }]);
    expect((await throughProxy`select ${large}::text as echoed`)[0]!.echoed).toBe(large);
    expect(await throughProxy`select generate_series(1, 50000) as n`).toHaveLength(50_000);
    expect(await throughProxy.unsafe('select 2 as two')).toEqual([{ two: 2 }]);

    const marker = newMarker('plain');
    await transaction(throughProxy, (tx) => insertMark(tx, marker));
    expect(await committedRows(marker)).toBe(1);
    expect(proxy.counts()).toMatchObject({ faultsFired: 0 });
  });

  it('answers 200 concurrent queries on a pool of four connections, each with its own answer', async () => {
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => throughProxy`select ${i}::int as i`));
    expect(answers.map(([row]) => row!.i)).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });
});

describe('lose_commit_answer', () => {
  it('commits the marked transaction without telling the client, while a concurrent one gets its answer', async () => {
    const lost = newMarker('lost');
    const kept = newMarker('kept');
    const armed = proxy.arm({ fault: 'lose_commit_answer', match: lost });
    const bothInserted = barrier(2);

    const [lostOutcome, keptOutcome] = await Promise.allSettled([
      transaction(throughProxy, async (tx) => {
        await insertMark(tx, lost);
        await bothInserted();
      }),
      transaction(throughProxy, async (tx) => {
        await insertMark(tx, kept);
        await bothInserted();
        return 'kept';
      }),
    ]);

    expect(lostOutcome).toMatchObject({ status: 'rejected', reason: connectionClosed });
    expect(keptOutcome).toEqual({ status: 'fulfilled', value: 'kept' });
    await armed.fired;
    expect(await committedRows(lost)).toBe(1);
    expect(await committedRows(kept)).toBe(1);
  });

  it('matches statement text too, and a COMMIT sent as a simple query', async () => {
    const lost = newMarker('simple');
    const armed = proxy.arm({ fault: 'lose_commit_answer', match: lost });
    const connection = await throughProxy.reserve();
    try {
      await connection.unsafe('begin');
      await connection.unsafe(`insert into marks (marker) values ('${lost}')`);
      await expect(connection.unsafe('commit')).rejects.toMatchObject(connectionClosed);
    } finally {
      connection.release();
    }
    await armed.fired;
    expect(await committedRows(lost)).toBe(1);
  });

  it('loses only the marked answer when two transactions are pipelined on one connection', async () => {
    const answered = newMarker('answered');
    const lost = newMarker('pipelined');
    const connection = await throughProxy.reserve();
    try {
      // Prepares the statements. An unprepared one with parameters stops postgres.js's pipeline
      // until its Describe is answered; prepared ones are pipelined, and their COMMIT is a Bind
      // of a named statement with no Parse, which the proxy must still recognise.
      await warmUp(connection);

      const armed = proxy.arm({ fault: 'lose_commit_answer', match: lost });
      const outcomes = await Promise.allSettled([
        connection`begin`,
        insertMark(connection, answered),
        connection`commit`,
        connection`begin`,
        insertMark(connection, lost),
        connection`commit`,
      ]);

      expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
      await armed.fired;
    } finally {
      connection.release();
    }
    expect(await committedRows(answered)).toBe(1);
    expect(await committedRows(lost)).toBe(1);
  });
});

describe('kill_before_commit', () => {
  it('commits nothing of the marked transaction, while a concurrent one commits', async () => {
    const killed = newMarker('killed');
    const kept = newMarker('kept');
    const armed = proxy.arm({ fault: 'kill_before_commit', match: killed });
    const bothInserted = barrier(2);

    const [killedOutcome, keptOutcome] = await Promise.allSettled([
      transaction(throughProxy, async (tx) => {
        await insertMark(tx, killed);
        await bothInserted();
      }),
      transaction(throughProxy, async (tx) => {
        await insertMark(tx, kept);
        await bothInserted();
      }),
    ]);

    expect(killedOutcome).toMatchObject({ status: 'rejected', reason: connectionClosed });
    expect(keptOutcome.status).toBe('fulfilled');
    await armed.fired;
    expect(await committedRows(killed)).toBe(0);
    expect(await committedRows(kept)).toBe(1);
  });

  it('cuts the first of two pipelined transactions before its COMMIT, so neither commits', async () => {
    const killed = newMarker('killed-first');
    const queued = newMarker('queued');
    const connection = await throughProxy.reserve();
    try {
      await warmUp(connection);

      proxy.arm({ fault: 'kill_before_commit', match: killed });
      const outcomes = await Promise.allSettled([
        connection`begin`,
        insertMark(connection, killed),
        connection`commit`,
        connection`begin`,
        insertMark(connection, queued),
        connection`commit`,
      ]);
      expect(outcomes.slice(2).map((outcome) => outcome.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
    } finally {
      connection.release();
    }
    expect(await committedRows(killed)).toBe(0);
    expect(await committedRows(queued)).toBe(0);
  });

  it('fires `times` times, then lets the next matching transaction commit', async () => {
    const marker = newMarker('twice');
    const firedBefore = proxy.counts().faultsFired;
    const armed = proxy.arm({ fault: 'kill_before_commit', match: marker, times: 2 });

    // All three hold a connection of their own before any commits: release() would hand a dead
    // one to a transaction still waiting for a connection (see the note on the pool above).
    const allInserted = barrier(3);
    const outcomes = await Promise.allSettled(
      Array.from({ length: 3 }, () =>
        transaction(throughProxy, async (tx) => {
          await insertMark(tx, marker);
          await allInserted();
        }),
      ),
    );
    await armed.fired;

    expect(outcomes.filter((outcome) => outcome.status === 'rejected')).toHaveLength(2);
    expect(proxy.counts().faultsFired - firedBefore).toBe(2);
    expect(await committedRows(marker)).toBe(1);
  });
});

describe('after a fault', () => {
  it('fails every query in flight when all connections are killed, then the pool reconnects and works', async () => {
    const sleeping = Promise.allSettled(Array.from({ length: 4 }, () => throughProxy`select pg_sleep(5)`));
    // Cuts only once all four run on the server: a connection cut while still starting up is
    // retried by postgres.js and its query would then succeed.
    await expect.poll(sleepsRunning).toBe(4);
    proxy.killAllConnections();
    for (const outcome of await sleeping) expect(outcome).toMatchObject({ status: 'rejected', reason: connectionClosed });

    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => throughProxy`select ${i}::int as i`));
    expect(answers.map(([row]) => row!.i)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    const marker = newMarker('after');
    await transaction(throughProxy, (tx) => insertMark(tx, marker));
    expect(await committedRows(marker)).toBe(1);
  });
});
