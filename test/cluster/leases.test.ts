import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { LeaseManager } from '../../src/cluster/lease-manager.js';
import { connect } from '../../src/db/sql.js';
import { createLogger } from '../../src/logger.js';
import { migrateTollgate } from '../../src/runtime.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

/**
 * Leases on servers through PostgreSQL (src/cluster/lease-manager.ts), with the clock in the
 * test's hand: a node that stops renewing (paused, dead) is simply one whose rounds the test
 * does not run while time moves on.
 */
const LEASE_MS = 10_000;
const SERVERS = 6;

let db: TestDatabase;
let clock: ManualClock;

interface TestNode {
  leases: LeaseManager;
  /** What the node was told, in order. */
  log: string[];
}

function node(nodeId: string): TestNode {
  const log: string[] = [];
  const leases = new LeaseManager({
    sql: db.sql,
    clock,
    log: createLogger('silent'),
    nodeId,
    url: `http://${nodeId}.invalid`,
    leaseMs: LEASE_MS,
    renewMs: LEASE_MS / 3,
    onAcquired: async (serverId, epoch) => {
      log.push(`acquired ${serverId} ${epoch}`);
    },
    onLost: async (serverId, handingOver) => {
      log.push(`${handingOver ? 'handed over' : 'lost'} ${serverId}`);
    },
  });
  return { leases, log };
}

async function rounds(nodes: TestNode[], count = 3): Promise<void> {
  for (let i = 0; i < count; i++) {
    for (const n of nodes) await n.leases.tick();
    clock.advance(LEASE_MS / 3);
  }
}

async function leaseRows() {
  return db.sql<{ serverId: string; nodeId: string | null; epoch: bigint }[]>`
    select server_id as "serverId", node_id as "nodeId", epoch from server_leases order by server_id`;
}

function owned(n: TestNode): string[] {
  return [...n.leases.leases().keys()].sort();
}

beforeAll(async () => {
  db = await createTestDatabase();
  await migrateTollgate(db.sql);
  for (let i = 0; i < SERVERS; i++) {
    await db.sql`insert into servers (id, name, max_users, created_at) values (${randomUUID()}, ${`server-${i}`}, 10, now())`;
  }
  clock = new ManualClock(Date.UTC(2026, 10, 30, 12));
});

afterAll(async () => {
  await db?.drop();
});

describe('server leases', () => {
  const a = () => nodes.a!;
  const nodes: Record<string, TestNode> = {};

  it('gives every server to a node alone, at epoch 1', async () => {
    nodes.a = node('node-a');
    await rounds([a()], 1);
    const rows = await leaseRows();
    expect(rows).toHaveLength(SERVERS);
    expect(rows.every((r) => r.nodeId === 'node-a' && r.epoch === 1n)).toBe(true);
    expect(owned(a())).toHaveLength(SERVERS);
    expect(rows.every((r) => a().leases.serves(r.serverId) && a().leases.epochOf(r.serverId) === 1n)).toBe(true);
  });

  it('balances the servers when more nodes join, handing servers over with their epoch bumped', async () => {
    nodes.b = node('node-b');
    nodes.c = node('node-c');
    await rounds([a(), nodes.b, nodes.c], 6);
    for (const n of [a(), nodes.b, nodes.c]) expect(owned(n)).toHaveLength(SERVERS / 3);
    const rows = await leaseRows();
    // Each server is held by the node that believes it holds it, under the epoch it writes with.
    for (const row of rows) {
      const holder = Object.values(nodes).find((n) => n.leases.hosts(row.serverId))!;
      expect(holder.leases.epochOf(row.serverId)).toBe(row.epoch);
      expect(Object.values(nodes).filter((n) => n.leases.hosts(row.serverId))).toHaveLength(1);
    }
    // What moved was handed over by node-a before another node took it under a newer epoch.
    const moved = rows.filter((r) => r.nodeId !== 'node-a');
    expect(moved).toHaveLength(4);
    for (const row of moved) {
      expect(a().log).toContain(`handed over ${row.serverId}`);
      expect(row.epoch).toBe(2n);
    }
    expect(a().log.some((line) => line.startsWith('lost'))).toBe(false);
  });

  it('takes the servers of a node whose heartbeat lapsed, and the paused node lets them go when it wakes', async () => {
    const paused = nodes.c!;
    const before = owned(paused);
    const epochs = new Map(before.map((id) => [id, paused.leases.epochOf(id)]));
    // node-c runs no round for longer than the lease; the others go on.
    await rounds([a(), nodes.b!], 5);
    const rows = await leaseRows();
    for (const serverId of before) {
      const row = rows.find((r) => r.serverId === serverId)!;
      expect(['node-a', 'node-b']).toContain(row.nodeId);
      expect(row.epoch).toBeGreaterThan(epochs.get(serverId)!);
    }
    expect(owned(a()).length + owned(nodes.b!).length).toBe(SERVERS);
    // Until its next round it still thinks it holds them; its epoch is the stale one.
    expect(paused.leases.epochOf(before[0]!)).toBe(epochs.get(before[0]!));
    await paused.leases.tick();
    for (const serverId of before) expect(paused.log).toContain(`lost ${serverId}`);
    // Back among the living, it gets its share again, under new epochs.
    await rounds([a(), nodes.b!, paused], 6);
    for (const n of [a(), nodes.b!, paused]) expect(owned(n)).toHaveLength(SERVERS / 3);
  });

  it('hands every server back when a node leaves, for the others to take at once', async () => {
    const leaving = nodes.b!;
    const had = owned(leaving);
    await leaving.leases.stop();
    for (const serverId of had) expect(leaving.log).toContain(`handed over ${serverId}`);
    const [row] = await db.sql`select 1 from nodes where node_id = 'node-b'`;
    expect(row).toBeUndefined();
    await rounds([a(), nodes.c!], 3);
    expect(owned(a()).length + owned(nodes.c!).length).toBe(SERVERS);
    expect(owned(a())).toHaveLength(SERVERS / 2);
  });

  it('records every grant with its epoch, in order, and never two owners of one epoch', async () => {
    const grants = await db.sql<{ serverId: string; epochs: bigint[] }[]>`
      select server_id as "serverId", array_agg(epoch order by granted_order) as epochs from lease_grants group by server_id`;
    expect(grants).toHaveLength(SERVERS);
    for (const grant of grants) {
      const sorted = [...grant.epochs].sort((x, y) => (x < y ? -1 : 1));
      expect(grant.epochs).toEqual(sorted);
      expect(new Set(grant.epochs).size).toBe(grant.epochs.length);
    }
  });

  it('takes a server whose lapsed owner was cut off inside a transaction, ending that transaction, in the same round', async () => {
    // A journal batch cut off between two statements keeps the share lock its fencing check took
    // on the server's lease row (migration 0013) until PostgreSQL's idle timeout (60 s): the
    // takeover would wait that long. The claiming node ends the lapsed node's open transactions.
    const cutOff = nodes.c!;
    const serverId = owned(cutOff)[0]!;
    // One of node-c's connections (they carry its name), as a node cut off mid-transaction leaves it.
    const pool = connect(db.url, { max: 1, nodeId: 'node-c' });
    const bystander = connect(db.url, { max: 1, nodeId: 'node-b' });
    try {
      const connection = await pool.reserve();
      await connection`begin`;
      await connection`select epoch from server_leases where server_id = ${serverId} for share`;
      // Another node's open transaction, which must be left alone.
      const other = await bystander.reserve();
      await other`begin`;
      await other`select 1`;
      const inTransaction = async (name: string) => {
        const [row] = await db.sql<{ count: number }[]>`
          select count(*)::int as count from pg_stat_activity where application_name = ${name} and xact_start is not null`;
        return row!.count;
      };
      expect(await inTransaction('tollgate@node-c')).toBe(1);

      // Nothing more comes from node-c; node-a goes on past node-c's lease.
      await rounds([a()], 4);
      const [taken] = await db.sql<{ nodeId: string }[]>`select node_id as "nodeId" from server_leases where server_id = ${serverId}`;
      expect(taken!.nodeId).toBe('node-a');
      expect(owned(a())).toContain(serverId);
      expect(await inTransaction('tollgate@node-c')).toBe(0);
      expect(await inTransaction('tollgate@node-b')).toBe(1);
      await other`rollback`;
      other.release();
    } finally {
      await pool.end({ timeout: 1 });
      await bystander.end({ timeout: 1 });
    }
  });
});
