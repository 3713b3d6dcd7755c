import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { AutocannonRequest } from 'autocannon';
import { freePort } from '../../src/db/free-port.js';
import { connect } from '../../src/db/sql.js';
import { migrateTollgate } from '../../src/runtime.js';
import { GENEROUS_LIMITS } from '../helpers/operators.js';
import { type BenchChild, spawnChild } from './child.js';
import { summarizeProfile, type ProfileSummary } from './cpu-profile.js';
import { load, type LoadResult } from './load.js';
import { BENCH_ADMIN_TOKEN } from './pair.js';
import { type BenchCluster, withSql } from './pg.js';
import { cpuWindow, postgresPids, type CpuShares } from './procstat.js';
import { describeCpu } from './opens.js';
import { signUpBenchCustomers } from './seed.js';
import { round, say, sleep } from './util.js';

/**
 * Phase 9 (issue 17): opens on one node against opens on three nodes sharing its database, to
 * show what coordination costs. Both run in cluster mode (CLUSTER_NODE_ID), on one catalogue of
 * three servers with one service each, with the same customers and the same card-network sandbox
 * process. One node runs first and holds the three leases; two more nodes then join, the leases
 * spread one server to a node, and the three are measured twice: with each request sent to the
 * node that owns its service's server (as haproxy routing by service would), then with requests
 * spread over the nodes regardless (round robin: two in three are forwarded to the owner by
 * src/cluster/forwarding.ts).
 */
export interface NodesRun extends LoadResult {
  nodes: number;
  routing: 'one node' | 'by owner' | 'round robin';
  cpu: CpuShares;
  /** Answers that carried x-tollgate-answered-by: forwarded by the node that took the request. */
  forwarded: number;
  locks: LockWaits;
  /**
   * Transactions committed in the phase database (pg_stat_database.xact_commit: a lone read is one
   * too) per open completed, every node's, the sandbox's and the samplers' together.
   */
  commitsPerOpen: number;
}

/** The phase database's backends, sampled every 250 ms over a run: how many waited on a lock, and on which statement most. */
export interface LockWaits {
  samples: number;
  meanWaiting: number;
  meanIdleInTransaction: number;
  /** The statement most often seen waiting on a lock, whitespace folded, cut at 100 characters. */
  mostWaited: { statement: string; share: number } | null;
}

export interface NodesPhase {
  servers: number;
  accounts: number;
  signUpSeconds: number;
  leaseMs: number;
  /** From the second node's start until every server had its own node and every node knew the owners. */
  spreadSeconds: number;
  /** Sessions the first run left open, which the joining nodes restored with their servers. */
  sessionsCarried: number;
  owners: { serverId: string; nodeId: string; epoch: string }[];
  runs: NodesRun[];
  /** Lease epochs granted beyond the first claim of each server (changes of owner) during the measured runs. */
  ownerChangesDuringRuns: number;
  /** Writes PostgreSQL refused for a stale epoch over the phase (fencing_refusals). */
  fencingRefusals: number;
  /**
   * Each node's CPU profile over a run of its own (apart from the measured ones): one node, then
   * the three routed by owner, with the opens completed in it, so each area reads as CPU per open.
   */
  profiles: NodeProfile[];
}

export interface NodeProfile {
  nodes: number;
  nodeId: string;
  seconds: number;
  /** Opens completed by the whole cluster during the profiled run. */
  opens: number;
  summary: ProfileSummary;
}

/** Samples pg_stat_activity on a connection of its own until `stop()`. */
function sampleLockWaits(url: string): { stop(): Promise<LockWaits> } {
  const sql = connect(url, { max: 1 });
  let samples = 0;
  let waiting = 0;
  let idleInTransaction = 0;
  const statements = new Map<string, number>();
  let running = true;
  const loop = (async () => {
    while (running) {
      const rows = await sql<{ state: string | null; waitType: string | null; query: string }[]>`
        select state, wait_event_type as "waitType", left(regexp_replace(query, '[[:space:]]+', ' ', 'g'), 100) as query
        from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and state is distinct from 'idle'`;
      samples++;
      for (const row of rows) {
        if (row.state === 'idle in transaction') idleInTransaction++;
        if (row.waitType !== 'Lock') continue;
        waiting++;
        const statement = row.query.trim();
        statements.set(statement, (statements.get(statement) ?? 0) + 1);
      }
      await sleep(250);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop.catch(() => {});
      await sql.end({ timeout: 5 });
      const [statement, count] = [...statements].sort((a, b) => b[1] - a[1])[0] ?? [];
      return {
        samples,
        meanWaiting: round(waiting / Math.max(1, samples), 2),
        meanIdleInTransaction: round(idleInTransaction / Math.max(1, samples), 2),
        mostWaited: statement === undefined ? null : { statement, share: round(count! / Math.max(1, waiting), 2) },
      };
    },
  };
}

interface ClusterView {
  serving: string[];
  owners: Record<string, string | null>;
}

const SERVERS = 3;

export async function measureNodes(
  cluster: BenchCluster,
  options: { seconds: number; maxRequests: number; accounts: number; leaseMs: number; workDir: string; children: BenchChild[]; profileSeconds: number },
): Promise<NodesPhase> {
  const url = await cluster.createDatabase('bench_nodes');
  const catalogue = await withSql(url, async (sql) => {
    await migrateTollgate(sql);
    const now = new Date();
    const rows: { serverId: string; serviceId: string }[] = [];
    for (let i = 1; i <= SERVERS; i++) {
      const serverId = randomUUID();
      const serviceId = randomUUID();
      // Caps high enough never to bind: the phase measures coordination, not admission.
      await sql`insert into servers (id, name, max_users, created_at) values (${serverId}, ${`bench-nodes-server-${i}`}, 10000000, ${now})`;
      await sql`
        insert into services (id, name, server_id, price_per_minute_micros, currency, max_users, created_at)
        values (${serviceId}, ${`bench-nodes-service-${i}`}, ${serverId}, 100000, 'USD', 10000000, ${now})`;
      rows.push({ serverId, serviceId });
    }
    return rows;
  });
  const serverIds = catalogue.map((c) => c.serverId);
  const started: BenchChild[] = [];
  const spawn = async <T>(entry: string, label: string, env: Record<string, string>) => {
    const child = await spawnChild<T>(entry, { label, env });
    started.push(child as BenchChild);
    options.children.push(child as BenchChild);
    return child;
  };
  try {
    const sandbox = await spawn<{ url: string }>('sandbox-child.ts', 'sandbox', { DATABASE_URL: url });
    const nodes: { nodeId: string; url: string; child: BenchChild<{ url: string }> }[] = [];
    const startNode = async (nodeId: string) => {
      const port = await freePort();
      const nodeUrl = `http://127.0.0.1:${port}`;
      const child = await spawn<{ url: string }>('server-child.ts', nodeId, {
        DATABASE_URL: url,
        CARD_NETWORK_URL: sandbox.ready.url,
        TOLLGATE_DATA_DIR: path.join(options.workDir, `data-${nodeId}`),
        TOLLGATE_ADMIN_TOKEN: BENCH_ADMIN_TOKEN,
        PORT: String(port),
        CLUSTER_NODE_ID: nodeId,
        CLUSTER_NODE_URL: nodeUrl,
        CLUSTER_LEASE_MS: String(options.leaseMs),
        ...GENEROUS_LIMITS,
      });
      nodes.push({ nodeId, url: nodeUrl, child });
    };
    const pgDataDir = path.join(cluster.root, 'pgdata');
    const cpuGroups = () => [
      ...nodes.map((n) => ({ name: `tollgate ${n.nodeId}`, pids: () => [n.child.pid] })),
      { name: 'sandbox', pids: () => [sandbox.pid] },
      { name: 'postgres', pids: () => postgresPids(pgDataDir) },
    ];

    // Every server owned by the node PostgreSQL names, spread one to a node when there are as
    // many nodes as servers, and every node agreeing on who owns what (else a round-robin request
    // would meet a 503 SERVER_MOVING while a node's view is a round behind).
    const settled = async (): Promise<{ serverId: string; nodeId: string; epoch: string; url: string }[] | null> => {
      const leases = await withSql(url, (sql) =>
        sql<{ serverId: string; nodeId: string | null; epoch: string; url: string | null; live: boolean }[]>`
          select s.id as "serverId", l.node_id as "nodeId", l.epoch::text as epoch, n.url, coalesce(n.expires_at > now(), false) as live
          from servers s left join server_leases l on l.server_id = s.id left join nodes n on n.node_id = l.node_id`,
      );
      if (leases.length !== SERVERS || leases.some((l) => !l.nodeId || !l.url || !l.live)) return null;
      const owners = leases.map((l) => ({ serverId: l.serverId, nodeId: l.nodeId!, epoch: l.epoch, url: l.url! }));
      if (new Set(owners.map((o) => o.nodeId)).size !== Math.min(nodes.length, SERVERS)) return null;
      const views = await Promise.all(nodes.map((n) => n.child.request<ClusterView | null>('cluster', { serverIds })));
      for (const [i, node] of nodes.entries()) {
        const view = views[i];
        if (!view) throw new Error(`${node.nodeId} is not in cluster mode`);
        for (const owner of owners) {
          if (view.owners[owner.serverId] !== owner.nodeId) return null;
          if (owner.nodeId === node.nodeId && !view.serving.includes(owner.serverId)) return null;
        }
      }
      return owners;
    };
    const untilSettled = async (what: string) => {
      const began = performance.now();
      // Three lease rounds of each node, and then some: a busy machine delays rounds.
      const limitMs = Math.max(30_000, options.leaseMs * 6);
      for (;;) {
        const owners = await settled();
        if (owners) return { owners, seconds: (performance.now() - began) / 1000 };
        if (performance.now() - began > limitMs) throw new Error(`${what}: the leases did not settle within ${limitMs} ms`);
        await sleep(250);
      }
    };

    await startNode('node-1');
    await untilSettled('one node');
    say(`node-1 at ${nodes[0]!.url} holds the ${SERVERS} servers; sandbox at ${sandbox.ready.url}`);

    say(`signing up ${options.accounts} customers over HTTP at node-1`);
    const signUpStarted = performance.now();
    const tokens = await signUpBenchCustomers(nodes[0]!.url, options.accounts);
    const signUpSeconds = (performance.now() - signUpStarted) / 1000;

    const counters = () =>
      withSql(url, async (sql) => {
        const [row] = await sql<{ grants: number; refusals: number; commits: number }[]>`
          select (select count(*)::int from lease_grants) as grants,
            (select xact_commit::int from pg_stat_database where datname = current_database()) as commits,
            (select case when is_called then last_value else 0 end::int from fencing_refusals) as refusals`;
        return row!;
      });

    /**
     * Closed-loop opens over the nodes' connections: each connection is tied to one node, and
     * `serviceFor` picks the service of each request from the node it goes to.
     */
    let nextAccount = 0;
    const opensOver = (serviceFor: (port: number) => string, counted: { forwarded: number }): AutocannonRequest => ({
      method: 'POST',
      path: '/v1/sessions',
      headers: { 'content-type': 'application/json' },
      setupRequest: (request) => ({
        ...request,
        body: JSON.stringify({ serviceId: serviceFor(Number(request.port)), maxCharge: '5.00' }),
        headers: { ...request.headers, authorization: tokens[nextAccount++ % tokens.length]! },
      }),
      onResponse: (_status, _body, _context, headers) => {
        if (headers['x-tollgate-answered-by'] !== undefined) counted.forwarded++;
      },
    });
    const portOf = (nodeUrl: string) => Number(new URL(nodeUrl).port);
    let nextService = 0;
    // Drawn at random: connection i goes to node i mod 3, and a counter would pick service i mod 3
    // for the connections' first requests, all of them on their own node.
    const anyService = () => catalogue[Math.floor(Math.random() * catalogue.length)]!.serviceId;
    const ownService = (owners: { serverId: string; nodeId: string }[]) => {
      const byPort = new Map(nodes.map((n) => [portOf(n.url), catalogue.filter((c) => owners.find((o) => o.serverId === c.serverId)?.nodeId === n.nodeId)]));
      return (port: number) => {
        const mine = byPort.get(port);
        if (!mine?.length) throw new Error(`no service is owned by the node on port ${port}`);
        return mine[nextService++ % mine.length]!.serviceId;
      };
    };

    const runs: NodesRun[] = [];
    let ownerChangesDuringRuns = 0;
    const measure = async (routing: NodesRun['routing'], serviceFor: (port: number) => string) => {
      const counted = { forwarded: 0 };
      const before = await counters();
      const window = cpuWindow(cpuGroups());
      const sampler = sampleLockWaits(url);
      const result = await load({
        label: `${nodes.length} node${nodes.length > 1 ? 's' : ''}, ${routing}, c=64`,
        url: nodes.map((n) => n.url),
        concurrency: 64,
        seconds: options.seconds,
        maxRequests: options.maxRequests,
        requests: [opensOver(serviceFor, counted)],
      });
      const cpu = window.stop();
      const locks = await sampler.stop();
      const after = await counters();
      ownerChangesDuringRuns += after.grants - before.grants;
      const commitsPerOpen = round((after.commits - before.commits) / Math.max(1, result.ok), 2);
      runs.push({ ...result, nodes: nodes.length, routing, cpu, forwarded: counted.forwarded, locks, commitsPerOpen });
      say(
        `${nodes.length} node(s), ${routing}: ${result.perSecond} opens/s, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms` +
          ` (${result.non2xx} non-2xx ${JSON.stringify(result.statusCodes)}, ${result.errors} errors, ${counted.forwarded} forwarded); ${commitsPerOpen} transactions/open; cores: ${describeCpu(cpu)}; ` +
          `backends waiting on a lock ${locks.meanWaiting} on average${locks.mostWaited ? ` (most: ${locks.mostWaited.statement})` : ''}`,
      );
    };
    const profiles: NodeProfile[] = [];
    // Every node profiled over the same run, apart from the measured ones (the profiler costs CPU).
    const profile = async (serviceFor: (port: number) => string) => {
      if (options.profileSeconds <= 0) return;
      const file = (nodeId: string) => path.join(options.workDir, `nodes-${nodes.length}-${nodeId}.cpuprofile`);
      await Promise.all(nodes.map((n) => n.child.request('profile-start', { intervalUs: 1000 })));
      const result = await load({
        label: `profiled ${nodes.length} node(s)`,
        url: nodes.map((n) => n.url),
        concurrency: 64,
        seconds: options.profileSeconds,
        maxRequests: options.maxRequests,
        requests: [opensOver(serviceFor, { forwarded: 0 })],
        quiet: true,
      });
      await Promise.all(nodes.map((n) => n.child.request('profile-stop', { file: file(n.nodeId) })));
      for (const n of nodes) {
        const summary = await summarizeProfile(file(n.nodeId));
        profiles.push({ nodes: nodes.length, nodeId: n.nodeId, seconds: result.seconds, opens: result.ok, summary });
        say(`  ${n.nodeId} of ${nodes.length}: busy ${summary.busyShare} %; ${summary.areas.slice(0, 8).map((a) => `${a.area} ${a.ms} ms`).join(', ')}`);
      }
    };
    const warmUp = (serviceFor: (port: number) => string) =>
      load({ label: 'warm-up', url: nodes.map((n) => n.url), concurrency: 16, seconds: 3, maxRequests: 20_000, requests: [opensOver(serviceFor, { forwarded: 0 })], quiet: true });

    say('one node: 3 s of warm-up at concurrency 16, then the measured run');
    await warmUp(anyService);
    await measure('one node', anyService);
    await profile(anyService);
    const [unsettled] = await withSql(url, (sql) => sql<{ count: number }[]>`select count(*)::int as count from sessions where state not in ('settled', 'declined')`);

    say(`starting node-2 and node-3 on the same database (lease ${options.leaseMs} ms)`);
    const spreadStarted = performance.now();
    await startNode('node-2');
    await startNode('node-3');
    const { owners } = await untilSettled('three nodes');
    const spreadSeconds = (performance.now() - spreadStarted) / 1000;
    say(`leases spread in ${spreadSeconds.toFixed(1)} s: ${owners.map((o) => `${o.nodeId} epoch ${o.epoch}`).join(', ')}`);

    const byOwner = ownService(owners);
    await warmUp(byOwner);
    await measure('by owner', byOwner);
    await measure('round robin', anyService);
    await profile(byOwner);

    const { refusals } = await counters();
    for (const node of [...nodes].reverse()) await node.child.request('close', undefined, 60_000).catch(() => node.child.kill());
    await sandbox.request('close', undefined, 60_000).catch(() => sandbox.kill());
    await Promise.all(started.map((c) => c.exited));
    return {
      servers: SERVERS,
      accounts: tokens.length,
      signUpSeconds: round(signUpSeconds, 2),
      leaseMs: options.leaseMs,
      spreadSeconds: round(spreadSeconds, 1),
      sessionsCarried: unsettled?.count ?? 0,
      owners: owners.map(({ serverId, nodeId, epoch }) => ({ serverId, nodeId, epoch })),
      runs,
      ownerChangesDuringRuns,
      fencingRefusals: refusals,
      profiles,
    };
  } finally {
    for (const child of started) child.kill();
  }
}
