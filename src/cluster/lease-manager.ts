import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';
import type { Logger } from '../logger.js';
import type { NodeAddress, Ownership } from './ownership.js';

export interface LeaseManagerOptions {
  sql: Sql;
  clock: Clock;
  log: Logger;
  nodeId: string;
  /** Where the other nodes forward requests for this node's servers. */
  url: string;
  /** A node whose heartbeat is older than this loses its servers. */
  leaseMs: number;
  /** How often the heartbeat is renewed and the servers rebalanced (a third of the lease). */
  renewMs: number;
  /** This node now holds the server under `epoch`: restore its sessions and seats before answering for it. */
  onAcquired(serverId: string, epoch: bigint): Promise<void>;
  /**
   * This node no longer holds the server (another took it), or is about to give it back
   * (`handingOver`: its pending writes are committed first). Its sessions stop running here.
   */
  onLost(serverId: string, handingOver: boolean): Promise<void>;
}

/** SQLSTATE 55P03: lock_timeout passed. */
const LOCK_NOT_AVAILABLE = '55P03';

interface LeaseRow {
  serverId: string;
  nodeId: string | null;
  epoch: bigint | null;
  url: string | null;
  live: boolean;
}

/**
 * Ownership of servers through PostgreSQL (issue 17), as Temporal's shard ownership and Quartz's
 * clustered scheduler use their database: no consensus of our own.
 *
 * Each round, one heartbeat row renews every lease of this node; then the node compares the
 * leases that name it with those it runs (any it lost, it stops running), and moves towards its
 * fair share, ceil(servers / live nodes): it claims servers that are free or whose owner's
 * heartbeat lapsed (bumping their epoch, the fencing token), or hands one back when it holds more.
 * A claim checks the owner's heartbeat without a lock, so two nodes may briefly both believe they
 * own a server; the epoch makes that harmless, since PostgreSQL refuses every write of the older.
 *
 * Lease times come from the injected clock: nodes' clocks must agree to well within the lease
 * (NTP does). A clock that is off costs only early or late takeovers, never a stale write.
 */
export class LeaseManager implements Ownership {
  readonly clustered = true;
  /** The leases this node holds: server → epoch. */
  private readonly held = new Map<string, bigint>();
  /** Servers held and restored: requests for them are answered here. */
  private readonly ready = new Set<string>();
  private owners = new Map<string, NodeAddress>();
  /** When the heartbeat last committed (clock ms); its lease runs from then. */
  private renewedAt: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private round: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly options: LeaseManagerOptions) {}

  hosts(serverId: string): boolean {
    return this.held.has(serverId);
  }

  serves(serverId: string): boolean {
    return this.ready.has(serverId);
  }

  epochOf(serverId: string): bigint {
    return this.held.get(serverId) ?? 0n;
  }

  ownerOf(serverId: string): NodeAddress | null {
    return this.owners.get(serverId) ?? null;
  }

  /** The servers this node holds, with their epochs. */
  leases(): ReadonlyMap<string, bigint> {
    return this.held;
  }

  /**
   * Joins the cluster: the first round adopts the leases still naming this node from an earlier
   * run (under new epochs, so a process of that run that is only paused can write nothing) and
   * claims this node's share. Rounds then run every `renewMs`.
   */
  async start(): Promise<void> {
    await this.tick();
    this.schedule();
  }

  /** Leaves: every server is handed back (its writes committed first) and the heartbeat row removed. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.round;
    for (const serverId of [...this.held.keys()]) await this.release(serverId);
    await this.options.sql`delete from nodes where node_id = ${this.options.nodeId}`.catch((error: unknown) =>
      this.options.log.warn({ err: String(error) }, 'could not remove this node from the cluster'),
    );
  }

  /** One round: heartbeat, losses, then claims or a hand-back. Rounds never overlap. */
  async tick(): Promise<void> {
    while (this.round) await this.round;
    this.round = this.runRound().finally(() => {
      this.round = null;
    });
    return this.round;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.tick().finally(() => this.schedule());
    }, this.options.renewMs);
    this.timer.unref();
  }

  private async runRound(): Promise<void> {
    const { log } = this.options;
    const now = this.options.clock.now();
    // A heartbeat that lapsed (the process was paused, or PostgreSQL out of reach) may have cost
    // every lease: stop running them before anything else, and claim afresh.
    if (this.renewedAt !== null && now - this.renewedAt >= this.options.leaseMs && this.held.size > 0) {
      log.warn({ servers: this.held.size, silentMs: now - this.renewedAt }, 'heartbeat lapsed: letting go of every server');
      for (const serverId of [...this.held.keys()]) await this.lose(serverId);
    }
    try {
      await this.heartbeat(now);
      this.renewedAt = now;
      const leases = await this.readLeases(now);
      for (const [serverId, epoch] of [...this.held]) {
        const row = leases.find((l) => l.serverId === serverId);
        if (row?.nodeId !== this.options.nodeId || row.epoch !== epoch) await this.lose(serverId);
      }
      // Leases naming this node that it does not run (a claim whose answer was lost, or let go of
      // when the heartbeat lapsed): taken again under a new epoch, which waits for any write of the
      // old one still in flight, so the restore reads every row it left.
      for (const row of leases) {
        if (row.nodeId !== this.options.nodeId || row.epoch === null || this.held.has(row.serverId)) continue;
        const [bumped] = await this.options.sql<{ epoch: bigint }[]>`
          update server_leases set epoch = epoch + 1, acquired_at = ${new Date(now)}
          where server_id = ${row.serverId} and node_id = ${this.options.nodeId} and epoch = ${row.epoch}
          returning epoch`;
        if (bumped) await this.adopt(row.serverId, bumped.epoch);
      }
      const target = await this.fairShare(now, leases.length);
      if (this.held.size < target) await this.claim(leases, target - this.held.size, now);
      else if (this.held.size > target && !this.stopped) await this.release([...this.held.keys()].sort().at(-1)!);
      this.owners = new Map(
        (await this.readLeases(now)).flatMap((l) =>
          l.nodeId && l.url && l.live && (l.nodeId !== this.options.nodeId || this.ready.has(l.serverId)) ? [[l.serverId, { nodeId: l.nodeId, url: l.url }]] : [],
        ),
      );
    } catch (error) {
      log.warn({ err: String(error) }, 'lease round failed; trying again next round');
    }
  }

  private async heartbeat(now: number): Promise<void> {
    const { sql, nodeId, url, leaseMs } = this.options;
    await sql`
      insert into nodes (node_id, url, started_at, heartbeat_at, expires_at)
      values (${nodeId}, ${url}, ${new Date(now)}, ${new Date(now)}, ${new Date(now + leaseMs)})
      on conflict (node_id) do update set url = excluded.url, heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at`;
  }

  /** Every server, with its lease (if any) and whether its owner's heartbeat is current. */
  private async readLeases(now: number): Promise<LeaseRow[]> {
    return this.options.sql<LeaseRow[]>`
      select s.id as "serverId", l.node_id as "nodeId", l.epoch, n.url, coalesce(n.expires_at > ${new Date(now)}, false) as live
      from servers s left join server_leases l on l.server_id = s.id left join nodes n on n.node_id = l.node_id
      order by s.id`;
  }

  private async fairShare(now: number, servers: number): Promise<number> {
    const [row] = await this.options.sql<{ live: number }[]>`
      select count(*)::int as live from nodes where expires_at > ${new Date(now)}`;
    return Math.ceil(servers / Math.max(1, row?.live ?? 1));
  }

  /** Claims up to `wanted` servers that are free or whose owner lapsed, one transaction each. */
  private async claim(leases: LeaseRow[], wanted: number, now: number): Promise<void> {
    const at = new Date(now);
    // Servers of lapsed nodes in a random order, so that nodes claiming at once mostly differ.
    const free = leases.filter((l) => l.nodeId === null || !l.live).sort(() => Math.random() - 0.5);
    for (const lease of free) {
      if (wanted === 0 || this.stopped) return;
      // A lapsed node may only be paused (or cut off) with a transaction open, holding the share
      // lock its fencing check took on the lease: the claim does not wait for it (a round must
      // finish well within the lease); it ends that node's open transactions and tries once more.
      let won: { epoch: bigint } | undefined;
      try {
        [won] = await this.take(lease, at);
      } catch (error) {
        if ((error as { code?: unknown }).code !== LOCK_NOT_AVAILABLE || lease.nodeId === null) throw error;
        const ended = await this.endTransactionsOf(lease.nodeId, at);
        this.options.log.warn({ serverId: lease.serverId, from: lease.nodeId, ended }, 'a lapsed node held a transaction on a server; its open transactions were ended');
        try {
          [won] = await this.take(lease, at);
        } catch (again) {
          if ((again as { code?: unknown }).code !== LOCK_NOT_AVAILABLE) throw again;
          continue;
        }
      }
      if (!won) continue;
      wanted--;
      this.options.log.info({ serverId: lease.serverId, epoch: String(won.epoch), from: lease.nodeId }, 'server lease acquired');
      await this.adopt(lease.serverId, won.epoch);
    }
  }

  /** The lease of a free server, or of one whose owner lapsed, under a new epoch; nothing if another node was first. */
  private take(lease: LeaseRow, at: Date): Promise<{ epoch: bigint }[]> {
    const { sql, nodeId } = this.options;
    return transaction(sql, async (tx) => {
      await tx`set local lock_timeout = '200ms'`;
      return lease.epoch === null
        ? tx<{ epoch: bigint }[]>`
            insert into server_leases (server_id, node_id, epoch, acquired_at)
            values (${lease.serverId}, ${nodeId}, coalesce((select max(epoch) from lease_grants where server_id = ${lease.serverId}), 0) + 1, ${at})
            on conflict (server_id) do nothing
            returning epoch`
        : tx<{ epoch: bigint }[]>`
            update server_leases l set node_id = ${nodeId}, epoch = l.epoch + 1, acquired_at = ${at}
            where l.server_id = ${lease.serverId}
              and (l.node_id is null or not exists (select 1 from nodes n where n.node_id = l.node_id and n.expires_at > ${at}))
            returning l.epoch`;
    });
  }

  /**
   * Ends the open transactions of a node whose heartbeat lapsed (its connections carry its name,
   * src/db/sql.ts), so the locks they hold go now rather than when it wakes or PostgreSQL's idle
   * timeout ends them. Only while it is still lapsed; its writes would be refused anyway (fencing).
   */
  private async endTransactionsOf(lapsed: string, at: Date): Promise<number> {
    const [row] = await this.options.sql<{ ended: number }[]>`
      select count(*) filter (where pg_terminate_backend(a.pid))::int as ended
      from pg_stat_activity a
      where a.datname = current_database() and a.pid <> pg_backend_pid() and a.xact_start is not null
        and a.application_name in (${`tollgate@${lapsed}`}, ${`tollgate-auth@${lapsed}`})
        and not exists (select 1 from nodes n where n.node_id = ${lapsed} and n.expires_at > ${at})`;
    return row?.ended ?? 0;
  }

  private async adopt(serverId: string, epoch: bigint): Promise<void> {
    this.held.set(serverId, epoch);
    try {
      await this.options.onAcquired(serverId, epoch);
      if (this.held.get(serverId) === epoch) this.ready.add(serverId);
    } catch (error) {
      // Not restored: handed back, for this node or another to try again.
      this.options.log.error({ serverId, err: String(error) }, 'could not restore the sessions of an acquired server');
      await this.release(serverId);
    }
  }

  /** Another node holds the server now: its sessions stop here at once, writing nothing. */
  private async lose(serverId: string): Promise<void> {
    this.ready.delete(serverId);
    this.held.delete(serverId);
    this.options.log.warn({ serverId }, 'server lease lost');
    await this.options.onLost(serverId, false);
  }

  /** Hands a server back: no new requests, its writes committed, its sessions stopped, then the lease freed. */
  private async release(serverId: string): Promise<void> {
    const epoch = this.held.get(serverId);
    if (epoch === undefined) return;
    this.ready.delete(serverId);
    this.owners.delete(serverId);
    await this.options.onLost(serverId, true);
    this.held.delete(serverId);
    await this.options.sql`
      update server_leases set node_id = null where server_id = ${serverId} and node_id = ${this.options.nodeId} and epoch = ${epoch}`.catch(
      (error: unknown) => this.options.log.warn({ serverId, err: String(error) }, 'could not hand a server back; it lapses with the heartbeat'),
    );
    this.options.log.info({ serverId, epoch: String(epoch) }, 'server lease handed back');
  }
}
