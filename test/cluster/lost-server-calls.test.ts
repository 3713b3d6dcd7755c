import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TransactionSql } from '../../src/db/sql.js';
import { JournalWriteError } from '../../src/sessions/journal.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { testJournal } from '../helpers/journal.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/**
 * A node that lets a server go (its lease lost) calls nothing out for what it had not written:
 * an earlier write of the session may still be in flight and commit (it passed the fence before
 * the lease moved), and the next owner restores the session from that row. A capture or a void
 * whose own intent was dropped must not go out on that commit (issue 17: a hold voided under a
 * session still running on its new owner, seed 746176773 of the fault suite).
 */
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql`create table forget_writes (session_id text, n int)`;
});
afterAll(async () => {
  await db?.drop();
});

/** A write that starts, then waits for the test to let it commit. */
function heldWrite() {
  let started!: () => void;
  let release!: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
  const gate = new Promise<void>((resolve) => (release = resolve));
  return {
    running,
    release,
    write: async () => {
      started();
      await gate;
      return [];
    },
  };
}

const insert = (sessionId: string, n: number) => async (tx: TransactionSql) => {
  await tx`insert into forget_writes (session_id, n) values (${sessionId}, ${n})`;
  return [];
};

describe('a session let go of while a write of its is in flight', () => {
  it('lets no one waiting for its later writes through when the write in flight commits', async () => {
    const j = testJournal(db.sql);
    const first = heldWrite();
    const committedFirst = j.append({ sessionId: 's1', retry: true, write: first.write });
    await first.running;
    const second = j.append({ sessionId: 's1', retry: true, write: insert('s1', 2) });
    let durable = false;
    void j.durable('s1').then(() => (durable = true));
    const committed = j.committed('s1');
    const told = expect(committed).rejects.toBeInstanceOf(JournalWriteError);

    j.forget('s1');
    await expect(second).rejects.toBeInstanceOf(JournalWriteError);
    await told;
    first.release();
    await committedFirst;
    await j.idle();
    // Asked again after it was let go: still not through.
    let askedLater = false;
    void j.durable('s1').then(() => (askedLater = true));
    await sleep(50);
    expect(durable).toBe(false);
    expect(askedLater).toBe(false);
    expect(await db.sql`select n from forget_writes where session_id = 's1'`).toEqual([]);

    // Hosted here again (restored from its row): what it appends now is waited for as usual.
    j.remember('s1');
    await j.append({ sessionId: 's1', retry: true, write: insert('s1', 3) });
    await expect(j.durable('s1')).resolves.toBeUndefined();
    j.close();
  });
});

describe('a session hosted here again while a write of its earlier run is in flight', () => {
  it('drops that write when PostgreSQL refuses its stale epoch, and leaves the session as it runs now alone', async () => {
    const fenced: string[] = [];
    const j = testJournal(db.sql, { onFenced: (sessionId) => fenced.push(sessionId) });
    // The earlier run's write, refused by PostgreSQL as the fencing trigger refuses a stale epoch.
    const earlier = heldWrite();
    const refused = j.append({
      sessionId: 's2',
      retry: true,
      write: async (tx) => {
        await earlier.write();
        await tx`do $$ begin raise exception 'stale epoch' using errcode = 'TG409'; end $$`;
        return [];
      },
    });
    await earlier.running;
    // The node lost the server (the lease lapsed), took it again under a new epoch and restored
    // the session from its row: its new run appends while the old write is still in flight.
    j.forget('s2');
    j.remember('s2');
    const now = j.append({ sessionId: 's2', retry: true, write: insert('s2', 5) });
    earlier.release();
    await expect(refused).rejects.toBeInstanceOf(JournalWriteError);
    await now;
    await j.idle();
    expect(fenced).toEqual([]);
    expect(await db.sql`select n from forget_writes where session_id = 's2'`).toEqual([{ n: 5 }]);
    j.close();
  });
});

describe('a node whose lease on a server moves while a session of it is closing', () => {
  let node: TestTollgate;

  beforeAll(async () => {
    node = await startTestTollgate({
      env: { TOLLGATE_SEED_DEMO: 'false', HOST: '127.0.0.1', PORT: '9', CLUSTER_NODE_ID: 'node-a', CLUSTER_LEASE_MS: '600000' },
    });
  });
  afterAll(async () => {
    await node?.stop();
  });

  /** A session opened on a server made now, which the node claims at its next round. */
  async function sessionOnNewServer(): Promise<{ serverId: string; id: string }> {
    const { serviceId, serverId } = await createService(node.app, node.adminToken, { pricePerMinute: '60.00' });
    await node.leases!.tick();
    expect(node.leases!.serves(serverId)).toBe(true);
    const customer = await signUp(node.app, { outstandingLimit: '100.00' });
    const opened = await node.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '5.00' } });
    expect(opened.statusCode).toBe(201);
    return { serverId, id: opened.json().id as string };
  }

  it('captures nothing for a logoff it had not written, though a write before it committed', async () => {
    const { serverId, id } = await sessionOnNewServer();
    await sleep(20);

    // A write of the session in flight (past the fence), then the logoff's transition queued behind it.
    const inFlight = heldWrite();
    const committedBefore = node.journal.append({ sessionId: id, retry: true, write: inFlight.write });
    await inFlight.running;
    expect(node.supervisor.send(id, { type: 'LOGOFF', at: Date.now() })).toBe(true);
    // Another node takes the server (this one paused past its lease), and this node's round notices.
    await node.db.sql`insert into nodes (node_id, url, started_at, heartbeat_at, expires_at) values ('node-x', 'http://127.0.0.1:9', now(), now(), now() + interval '1 hour')`;
    await node.db.sql`update server_leases set node_id = 'node-x', epoch = epoch + 1 where server_id = ${serverId}`;
    await node.leases!.tick();
    expect(node.supervisor.has(id)).toBe(false);

    inFlight.release();
    await committedBefore;
    await node.journal.idle();
    await sleep(300);
    // The new owner restores the session as its row says (active) and charges it when it ends:
    // this node captured and voided nothing.
    const [row] = await node.db.sql<{ state: string }[]>`select state from sessions where id = ${id}`;
    expect(row!.state).toBe('active');
    const network = sandbox(node.cardNetworkUrl);
    const hold = (await network.holds()).find((h) => h.reference === id);
    expect(hold?.state).toBe('open');
    expect((await network.captures()).filter((c) => c.holdId === hold?.id)).toEqual([]);
  });

  it('has PostgreSQL refuse a transition whose number the new owner took already, and calls nothing out for it', async () => {
    const { serverId, id } = await sessionOnNewServer();
    await node.journal.durable(id);
    const [before] = await node.db.sql<{ refused: bigint }[]>`select case when is_called then last_value else 0 end as refused from fencing_refusals`;

    // Another node takes the server and writes the session on (its transitions take the next
    // numbers) while this node, paused, still believes it owns it.
    await node.db.sql`insert into nodes (node_id, url, started_at, heartbeat_at, expires_at) values ('node-y', 'http://127.0.0.1:9', now(), now(), now() + interval '1 hour') on conflict do nothing`;
    const [lease] = await node.db.sql<{ epoch: bigint }[]>`update server_leases set node_id = 'node-y', epoch = epoch + 1 where server_id = ${serverId} returning epoch`;
    await node.db.sql`update sessions set seq = seq + 3, owner_epoch = ${lease!.epoch} where id = ${id}`;
    expect(node.supervisor.send(id, { type: 'LOGOFF', at: Date.now() })).toBe(true);
    await node.journal.idle();
    await sleep(300);

    const [after] = await node.db.sql<{ refused: bigint }[]>`select last_value as refused from fencing_refusals`;
    expect(after!.refused).toBeGreaterThan(before!.refused);
    expect(node.supervisor.has(id)).toBe(false);
    const network = sandbox(node.cardNetworkUrl);
    const hold = (await network.holds()).find((h) => h.reference === id);
    expect(hold?.state).toBe('open');
    expect((await network.captures()).filter((c) => c.holdId === hold?.id)).toEqual([]);
  });
});
