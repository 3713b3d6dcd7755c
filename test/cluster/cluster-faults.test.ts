import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { formatAmount, parseAmount } from '../../src/billing/money.js';
import { connect, type Sql } from '../../src/db/sql.js';
import { SandboxProcess } from '../crash/sandbox-process.js';
import { type Answer, type ServerProcess, serverProcessIn } from '../crash/server-process.js';
import { sandbox } from '../helpers/card-network.js';
import { signUpBody } from '../helpers/customers.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { expectLedgerBalanced } from '../helpers/ledger.js';
import { random, seedFrom } from '../helpers/seeded-random.js';
import { NetworkNamespaces, relayed } from './network-namespaces.js';

/**
 * A real cluster of three nodes (src/server.ts as child processes, one PostgreSQL, the card
 * network's sandbox as a process of its own) under a load of opens, extends and logoffs sent to
 * any live node, while nodes are SIGKILLed (and started again), SIGSTOPped past their lease (and
 * resumed: a node that wakes with a stale epoch must write nothing) and cut off the network past
 * their lease (and let back). Then, with the load stopped: every session settled or declined,
 * captures at the card network equal to the charges and none twice, no hold left open, no cap
 * exceeded in any sample taken during the run, and no write accepted from a stale epoch, counted
 * by PostgreSQL (migration 0013_cluster.sql).
 *
 * Network cuts use a network namespace per node (./network-namespaces.ts) where the machine
 * allows (root, iproute2); elsewhere, or with CLUSTER_CUTS=sigstop, a cut is a SIGSTOP: a stopped
 * node, like a cut-off one, neither renews nor writes, and comes back believing what it believed
 * before (a cut node, unlike a stopped one, goes on running: its timers fire, its card calls and
 * statements wait on silent connections).
 *
 * CLUSTER_SEED replays the same choices (the timing of the machine is not replayed).
 * CLUSTER_FAULT_COUNT=n draws at least n faults at random (kills, pauses and cuts, alone or two
 * at once) instead of the fixed plan of twelve.
 */
const NODES = 3;
const LEASE_MS = 3000;
const SERVERS = 6;
const SERVER_CAP = 4;
const SERVICE_CAP = 3;
const CUSTOMERS = 12;
const WORKERS = 6;
const ADMIN_TOKEN = 'cluster-test-operator-token-0123456789';
const SEED = seedFrom('CLUSTER_SEED');
const FAULT_COUNT = process.env.CLUSTER_FAULT_COUNT ? Number(process.env.CLUSTER_FAULT_COUNT) : null;
if (FAULT_COUNT !== null && !(Number.isInteger(FAULT_COUNT) && FAULT_COUNT > 0)) throw new Error('CLUSTER_FAULT_COUNT must be a positive integer');
const NAMESPACES = process.env.CLUSTER_CUTS !== 'sigstop' && (await NetworkNamespaces.available());

const micros = (amount: string | null | undefined) => (amount ? parseAmount(amount)! : 0n);

let nodes: ServerProcess[] = [];
let cardNetwork: SandboxProcess | undefined;
let dataDir: string | undefined;
let db: TestDatabase | undefined;
let cardDb: TestDatabase | undefined;
let sql: Sql | undefined;
let namespaces: NetworkNamespaces | undefined;

afterAll(async () => {
  for (const node of nodes) {
    await node.resume().catch(() => undefined);
    await node.destroy();
  }
  await namespaces?.destroy();
  await cardNetwork?.stop();
  await sql?.end({ timeout: 5 });
  await db?.drop();
  await cardDb?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

type FaultKind = 'kill' | 'pause' | 'cut';
type Fault = { kind: FaultKind; node: number; at: number; lastedMs: number };

describe(`three nodes on one PostgreSQL, nodes killed, paused and cut off (${NAMESPACES ? 'network namespaces' : 'SIGSTOP'}) under load`, () => {
  it(
    `settles or declines every session, captures equal charges, nothing held or over a cap, no stale write accepted (CLUSTER_SEED=${SEED})`,
    async () => {
      const diagnostics: string[] = [];
      try {
        await run(diagnostics);
      } catch (error) {
        if (error instanceof Error) error.message = `CLUSTER_SEED=${SEED} makes this run's choices again.\n${error.message}\n\n${diagnostics.join('\n\n')}`;
        throw error;
      }
    },
    240_000 + (FAULT_COUNT ?? 0) * 10_000,
  );
});

async function run(diagnostics: string[]): Promise<void> {
  const rng = random(SEED);
  const began = Date.now();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'tollgate-cluster-'));
  db = await createTestDatabase();
  cardDb = await createTestDatabase();
  cardNetwork = await SandboxProcess.start({ databaseUrl: cardDb.url, logFile: path.join(dataDir, 'card-network.log') });
  // In namespaces, each node reaches PostgreSQL and the card network through relays on its pair.
  let reach = (_: number) => ({ databaseUrl: db!.url, cardNetworkUrl: cardNetwork!.url });
  if (NAMESPACES) {
    namespaces = await NetworkNamespaces.create(NODES);
    const database = new URL(db.url);
    const toDatabase = await namespaces.relay(database.hostname, Number(database.port || 5432));
    const card = new URL(cardNetwork.url);
    const toCardNetwork = await namespaces.relay(card.hostname, Number(card.port));
    reach = (i) => ({ databaseUrl: relayed(db!.url, toDatabase, i), cardNetworkUrl: relayed(cardNetwork!.url, toCardNetwork, i) });
  }
  for (let i = 0; i < NODES; i++) {
    const nodeDir = path.join(dataDir, `node-${i}`);
    await mkdir(nodeDir);
    nodes.push(
      await serverProcessIn(nodeDir, {
        bootstrapToken: ADMIN_TOKEN,
        databaseUrl: reach(i).databaseUrl,
        bootstrap: i === 0,
        netns: namespaces && { name: namespaces.name(i), address: namespaces.address(i) },
        env: {
          LOG_LEVEL: 'warn',
          TOLLGATE_SEED_DEMO: 'false',
          CARD_NETWORK_URL: reach(i).cardNetworkUrl,
          CLUSTER_NODE_ID: `node-${i}`,
          CLUSTER_LEASE_MS: String(LEASE_MS),
          CAPTURE_RETRY_BASE_MS: '100',
          CAPTURE_RETRY_MAX_MS: '500',
          CARD_NETWORK_TIMEOUT_MS: '1000',
          CARD_NETWORK_MAX_ATTEMPTS: '3',
          RECONCILE_INTERVAL_MS: '0',
          LOGOFF_WAIT_MS: '1000',
          OPEN_WAIT_MS: '4000',
          ORPHAN_AFTER_MS: '3000',
          ORPHAN_SWEEP_INTERVAL_MS: '1000',
          DATABASE_POOL_SIZE: '6',
          SHUTDOWN_TIMEOUT_MS: '5000',
        },
      }),
    );
  }
  // The first node creates the catalogue; the others read it as they start (the catalogue is
  // loaded at start-up: servers created later are not known to nodes already running).
  await nodes[0]!.start();
  const admin = nodes[0]!.operatorKey;
  const services: { id: string; serverId: string; price: string }[] = [];
  for (let s = 0; s < SERVERS; s++) {
    const server = await must(nodes[0]!, 'POST', '/v1/servers', { token: admin, body: { name: `cluster-${s}`, maxUsers: SERVER_CAP } }, 201);
    for (const [i, price] of ['60.00', '120.00'].entries()) {
      const service = await must(
        nodes[0]!,
        'POST',
        '/v1/services',
        { token: admin, body: { name: `cluster-${s}-${i}`, serverId: server.id, pricePerMinute: price, maxUsers: SERVICE_CAP } },
        201,
      );
      services.push({ id: service.id, serverId: server.id, price });
    }
  }
  await Promise.all(nodes.slice(1).map((node) => node.start()));
  sql = connect(db.url, { max: 3 });
  const customers = await Promise.all(
    Array.from({ length: CUSTOMERS }, async () => {
      const body = await must(nodes[0]!, 'POST', '/v1/accounts', { body: signUpBody({ outstandingLimit: '100000.00' }) }, 201);
      return { token: body.token as string };
    }),
  );
  await waitUntil('every server has an owner', async () => {
    const [row] = await sql!<{ owned: number }[]>`select count(*)::int as owned from server_leases where node_id is not null`;
    return row!.owned === SERVERS;
  });

  // ---- which nodes a client may reach (a stopped one would hold its requests)
  const reachable = new Set(nodes.map((_, i) => i));
  const anyNode = () => nodes[rng.pick([...reachable])]!;
  /** Asks live nodes until one answers other than "moving" (503 SERVER_MOVING) or unreachable. */
  const ask = async (method: string, url: string, options: { token: string; body?: unknown }, retryLost: boolean): Promise<Answer> => {
    let answer: Answer = { kind: 'refused' };
    for (let attempt = 0; attempt < 12; attempt++) {
      answer = await anyNode().api(method, url, { ...options, timeoutMs: 5000 });
      const moving = answer.kind === 'answer' && answer.status === 503 && answer.body?.code === 'SERVER_MOVING';
      const unreachable = answer.kind === 'refused' || (answer.kind === 'lost' && retryLost);
      if (!moving && !unreachable) return answer;
      await sleep(300);
    }
    return answer;
  };

  // ---- caps, sampled from PostgreSQL while the run goes. A seat is what the session machine tags
  // `seat` (docs/architecture.md): asking for its authorization, or active. A session declined
  // while its authorization is being released (authorizing.releasing: the client went away, or
  // the card network did not answer) gave its seat back as it was declined: it never runs.
  const capSamples = { taken: 0, overServer: [] as string[], overService: [] as string[] };
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const rows = await sql!<{ serverId: string; serviceId: string; seated: number }[]>`
        select server_id as "serverId", service_id as "serviceId", count(*)::int as seated
        from sessions where state = 'active' or path = 'authorizing.requesting' group by server_id, service_id`;
      capSamples.taken++;
      const perServer = new Map<string, number>();
      for (const row of rows) {
        perServer.set(row.serverId, (perServer.get(row.serverId) ?? 0) + row.seated);
        if (row.seated > SERVICE_CAP) capSamples.overService.push(`${row.serviceId}: ${row.seated}`);
      }
      for (const [serverId, seated] of perServer) {
        if (seated <= SERVER_CAP) continue;
        capSamples.overServer.push(`${serverId}: ${seated}`);
        const over = await sql!`
          select s.id, s.path, s.seq, s.owner_epoch, s.updated_at, l.node_id, l.epoch,
            (select string_agg(e.event || '>' || e.to_state || '@' || coalesce(e.owner_epoch::text, '-'), ' ' order by e.id) from session_events e where e.session_id = s.id) as history
          from sessions s left join server_leases l on l.server_id = s.server_id
          where s.server_id = ${serverId} and (s.state = 'active' or s.path = 'authorizing.requesting')`;
        diagnostics.push(`over the cap of ${serverId} at ${new Date().toISOString()}: ${JSON.stringify(over, (_, v) => (typeof v === 'bigint' ? String(v) : v), 2)}`);
      }
      await sleep(150);
    }
  })();

  // ---- load
  /** Every session whose open a client was answered, with the answer (201 running, 202 authorizing). */
  const seen = new Map<string, number>();
  const answers = { open: new Map<string, number>(), extend: new Map<string, number>(), logoff: new Map<string, number>() };
  const count = (map: Map<string, number>, answer: Answer) => {
    const key = answer.kind === 'answer' ? `${answer.status}${answer.status >= 400 ? ` ${answer.body?.code}` : ''}` : answer.kind;
    map.set(key, (map.get(key) ?? 0) + 1);
  };
  const inFlight = new Set<Promise<unknown>>();
  const track = (promise: Promise<unknown>) => {
    inFlight.add(promise);
    void promise.finally(() => inFlight.delete(promise));
  };
  let loading = true;
  const session = async () => {
    const customer = rng.pick(customers);
    const service = rng.pick(services);
    // 0.50 to 3.00 at 1.00 or 2.00 a second: limits reached after 0.25 to 3 s.
    const maxCharge = BigInt(Math.round(rng.between(50, 300))) * 10_000n;
    const plan = rng.next();
    // An open lost on its way is not sent again: it may have been written (the orphan sweep or
    // its owner ends it), and a second open would be another session.
    const opened = await ask('POST', '/v1/sessions', { token: customer.token, body: { serviceId: service.id, maxCharge: formatAmount(maxCharge) } }, false);
    count(answers.open, opened);
    if (opened.kind !== 'answer' || (opened.status !== 201 && opened.status !== 202)) return;
    const id = opened.body.id as string;
    seen.set(id, opened.status);
    if (plan < 0.35) {
      await sleep(rng.between(100, 700));
      const extended = await ask('POST', `/v1/sessions/${id}/extend`, { token: customer.token, body: { maxCharge: formatAmount(maxCharge * 2n) } }, true);
      count(answers.extend, extended);
    }
    if (plan < 0.2 || plan > 0.6) {
      await sleep(rng.between(100, 1500));
      const loggedOff = await ask('POST', `/v1/sessions/${id}/logoff`, { token: customer.token }, true);
      count(answers.logoff, loggedOff);
    }
  };
  const workers = Array.from({ length: WORKERS }, async () => {
    while (loading) {
      await sleep(rng.between(50, 250));
      if (loading) track(session());
      await sleep(rng.between(100, 300));
    }
  });

  // ---- faults: kills, pauses and cuts past the lease, one node at a time or two at once. A
  // killed node starts again in the background once its lease has lapsed (its servers have passed
  // to the others), and takes part in the faults again once it answers.
  const faults: Fault[] = [];
  const up = new Set(nodes.map((_, i) => i));
  const restarts: Promise<void>[] = [];
  const kill = async (i: number) => {
    up.delete(i);
    reachable.delete(i);
    const at = Date.now();
    await nodes[i]!.kill('server');
    restarts.push(
      (async () => {
        await sleep(LEASE_MS + rng.between(500, 2000));
        await nodes[i]!.start();
        reachable.add(i);
        up.add(i);
        faults.push({ kind: 'kill', node: i, at, lastedMs: Date.now() - at });
      })(),
    );
  };
  /** Paused (SIGSTOP) or cut off the network past its lease, then resumed or let back. */
  const isolate = async (i: number, kind: 'pause' | 'cut') => {
    up.delete(i);
    reachable.delete(i);
    const at = Date.now();
    const cut = kind === 'cut' && namespaces !== undefined;
    await (cut ? namespaces!.cut(i) : nodes[i]!.pause());
    await sleep(LEASE_MS * 1.5 + rng.between(0, 1500));
    await (cut ? namespaces!.heal(i) : nodes[i]!.resume());
    reachable.add(i);
    up.add(i);
    faults.push({ kind, node: i, at, lastedMs: Date.now() - at });
  };
  /** `wanted` nodes that are up, leaving at least one other up (waiting for restarts if need be). */
  const victims = async (wanted: number) => {
    while (up.size < wanted + 1) await sleep(200);
    return [...up].sort(() => rng.next() - 0.5).slice(0, wanted);
  };
  // Each kind alone, then two at once (either order), or CLUSTER_FAULT_COUNT faults drawn at random.
  const steps = ['kill', 'pause', 'cut', 'kill+pause', 'cut+kill', 'pause+cut', 'cut', 'pause+kill'];
  const plan: string[] = [];
  if (FAULT_COUNT === null) plan.push(...steps);
  else for (let drawn = 0; drawn < FAULT_COUNT; drawn += plan.at(-1)!.split('+').length) plan.push(rng.pick(steps));
  // Every plan cuts a node at least once: the run shows that a cut isolates (below).
  if (!plan.some((step) => step.includes('cut'))) plan.push('cut');
  await sleep(2000);
  for (const step of plan) {
    const [first, second] = step.split('+') as FaultKind[];
    const [a, b] = await victims(second ? 2 : 1);
    const act = (i: number, kind: FaultKind) => (kind === 'kill' ? kill(i) : isolate(i, kind));
    await Promise.all([act(a!, first!), second ? sleep(rng.between(200, 800)).then(() => act(b!, second)) : null]);
    await sleep(rng.between(1500, 3000));
  }
  await Promise.all(restarts);

  // ---- let everything finish
  loading = false;
  await Promise.all(workers);
  while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
  const loadEnded = Date.now();
  try {
    await waitUntil(
      'every session settled or declined',
      async () => {
        const [row] = await sql!<{ open: number }[]>`select count(*)::int as open from sessions where state not in ('settled', 'declined')`;
        return row!.open === 0;
      },
      60_000,
    );
  } finally {
    const unsettled = await sql`
      select s.id, s.path, s.seq, s.owner_epoch, s.stuck_reason, s.updated_at, l.node_id, l.epoch, n.expires_at, q.kind as quarantined,
        (select string_agg(e.event || '>' || e.to_state || '@' || coalesce(e.owner_epoch::text, '-'), ' ' order by e.id) from session_events e where e.session_id = s.id) as history
      from sessions s left join server_leases l on l.server_id = s.server_id left join nodes n on n.node_id = l.node_id
      left join session_quarantine q on q.session_id = s.id
      where s.state not in ('settled', 'declined') limit 10`;
    if (unsettled.length > 0) diagnostics.push(`unsettled: ${JSON.stringify(unsettled, (_, v) => (typeof v === 'bigint' ? String(v) : v), 2)}`);
    const leases = await sql`select l.server_id, l.node_id, l.epoch, n.expires_at from server_leases l left join nodes n using (node_id)`;
    diagnostics.push(`leases at the end: ${JSON.stringify(leases, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`);
    for (const node of nodes) diagnostics.push(`node log tail (${node.url}):\n${await node.logTail(25)}`);
  }
  const drainMs = Date.now() - loadEnded;
  sampling = false;
  await sampler;

  // ---- what PostgreSQL and the card network hold
  const sessions = await sql<{ id: string; state: string; charge: bigint | null; serverId: string }[]>`
    select id, state, charge_micros as charge, server_id as "serverId" from sessions`;
  const byId = new Map(sessions.map((s) => [s.id, s]));
  const network = sandbox(cardNetwork.url);
  const holds = await network.holds();
  const captures = await network.captures();
  const holdById = new Map(holds.map((h) => [h.id, h]));
  const captured = new Map<string, { amount: bigint; count: number }>();
  for (const capture of captures) {
    const reference = holdById.get(capture.holdId)?.reference ?? `(hold ${capture.holdId})`;
    const entry = captured.get(reference) ?? { amount: 0n, count: 0 };
    captured.set(reference, { amount: entry.amount + micros(capture.amount), count: entry.count + 1 });
  }
  const [stale] = await sql<{ accepted: number; fenced: number; unfenced: number }[]>`
    select
      (select count(*)::int from session_events e join sessions s on s.id = e.session_id
        join lease_grants g on g.server_id = s.server_id and g.epoch > e.owner_epoch and g.granted_order < e.write_order) as accepted,
      (select count(*)::int from session_events where owner_epoch is not null) as fenced,
      (select count(*)::int from session_events where owner_epoch is null) as unfenced`;
  const [refusals] = await sql<{ refused: bigint }[]>`select case when is_called then last_value else 0 end as refused from fencing_refusals`;
  const grants = await sql<{ serverId: string; epochs: number }[]>`
    select server_id as "serverId", count(*)::int as epochs from lease_grants group by server_id`;
  const settled = sessions.filter((s) => s.state === 'settled');
  // How long each killed node's servers waited for a new owner (reported, not asserted: issue 17's
  // target is the lease + 5 s, and timing is the benchmarks' business).
  const history = await sql<{ serverId: string; nodeId: string; at: Date }[]>`
    select server_id as "serverId", node_id as "nodeId", granted_at as at from lease_grants order by granted_order`;
  /** The servers node `f.node` owned when the fault began, and for each, when another node was granted it (null: never). */
  const orphanedBy = (f: Fault) => {
    const held = new Map<string, string>();
    for (const grant of history) if (grant.at.getTime() <= f.at) held.set(grant.serverId, grant.nodeId);
    return [...held]
      .filter(([, nodeId]) => nodeId === `node-${f.node}`)
      .map(([serverId]) => history.find((g) => g.serverId === serverId && g.at.getTime() > f.at)?.at.getTime() ?? null);
  };
  const adoptionMs = faults
    .filter((f) => f.kind === 'kill')
    .map((f) => {
      const adopted = orphanedBy(f);
      return adopted.length === 0 ? null : adopted.some((at) => at === null) ? 'never' : Math.max(...(adopted as number[])) - f.at;
    });
  // Servers that changed hands while their owner was cut off: proof that a cut isolates (an owner
  // that could still reach PostgreSQL would have renewed its leases).
  const adoptedDuringCuts = faults
    .filter((f) => f.kind === 'cut')
    .reduce((sum, f) => sum + orphanedBy(f).filter((at) => at !== null && at < f.at + f.lastedMs).length, 0);
  const summary = {
    seed: SEED,
    cuts: NAMESPACES ? 'network namespaces' : 'SIGSTOP',
    seconds: Math.round((Date.now() - began) / 1000),
    faults: faults.map((f) => `${f.kind} node-${f.node} for ${f.lastedMs} ms`),
    opens: Object.fromEntries(answers.open),
    extends: Object.fromEntries(answers.extend),
    logoffs: Object.fromEntries(answers.logoff),
    sessions: sessions.length,
    seenByClients: seen.size,
    states: Object.fromEntries([...new Set(sessions.map((s) => s.state))].map((state) => [state, sessions.filter((s) => s.state === state).length])),
    drainMs,
    adoptionMs,
    adoptedDuringCuts,
    capSamples: capSamples.taken,
    epochsGranted: grants.reduce((sum, g) => sum + g.epochs, 0),
    fencedWrites: stale!.fenced,
    staleWritesAccepted: stale!.accepted,
    staleWritesRefused: Number(refusals!.refused),
  };
  diagnostics.push(`summary: ${JSON.stringify(summary, null, 2)}`);

  // Every session a client was told runs settled (charged through whichever node ran it at the
  // end); every session, including those still authorizing when answered, ended.
  const running = [...seen].filter(([, status]) => status === 201).map(([id]) => id);
  expect(running.length).toBeGreaterThan(20);
  for (const id of running) expect(byId.get(id)?.state, `session ${id}`).toBe('settled');
  for (const id of seen.keys()) expect(byId.has(id), `session ${id} has a row`).toBe(true);
  expect(sessions.filter((s) => s.state !== 'settled' && s.state !== 'declined')).toEqual([]);
  expect(settled.length).toBeGreaterThan(20);
  // The card network captured each settled session's charge once, and nothing else.
  for (const s of settled) {
    const entry = captured.get(s.id);
    if ((s.charge ?? 0n) === 0n) continue;
    expect(entry, `capture of ${s.id}`).toEqual({ amount: s.charge, count: 1 });
  }
  for (const reference of captured.keys()) expect(byId.get(reference)?.state, `captured ${reference}`).toBe('settled');
  expect(holds.filter((h) => h.state === 'open').map((h) => `${h.id} (${h.reference})`)).toEqual([]);
  await expectLedgerBalanced(sql, { settled: settled.length });
  // Caps held in every sample taken while nodes died, paused and took each other's servers.
  expect(capSamples.taken).toBeGreaterThan(50);
  expect(capSamples.overServer).toEqual([]);
  expect(capSamples.overService).toEqual([]);
  // Servers changed hands (kills and pauses cost leases), every write carried an epoch, and none
  // was accepted under an epoch older than a grant made before it.
  expect(summary.epochsGranted).toBeGreaterThan(SERVERS);
  expect(adoptedDuringCuts).toBeGreaterThan(0);
  expect(stale!.unfenced).toBe(0);
  expect(stale!.accepted).toBe(0);
  console.info(`cluster fault suite: ${JSON.stringify(summary)}`);
}

async function must(node: ServerProcess, method: string, url: string, options: { token?: string; body?: unknown } = {}, status = 200) {
  const answer = await node.api(method, url, options);
  if (answer.kind !== 'answer' || answer.status !== status) throw new Error(`${method} ${url}: ${JSON.stringify(answer)}`);
  return answer.body;
}

async function waitUntil(what: string, done: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const began = Date.now();
  while (!(await done())) {
    if (Date.now() - began > timeoutMs) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(200);
  }
}
