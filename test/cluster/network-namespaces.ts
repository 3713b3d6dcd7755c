import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { promisify } from 'node:util';

/**
 * Network cuts between one node and everything else, made with Linux network namespaces (issue
 * 17). Each node runs in a namespace of its own, joined to the test's namespace by a veth pair
 * (10.X.i.1 on the test's side, 10.X.i.2 on the node's). PostgreSQL and the card network listen on
 * the loopback of the test's side, which a namespace cannot reach: each is offered to the nodes by
 * a TCP relay listening on every pair's near end. Nodes reach each other (forwarding to an owner)
 * through the test's namespace, which forwards between the pairs.
 *
 * A cut downs the pair's near end. The node keeps running and its connections stay open, but its
 * packets go nowhere and nothing reaches it: to the rest it is silent, as behind a failed switch,
 * and it sees PostgreSQL, the card network and the other nodes fall silent. TCP retransmits, so
 * when the cut heals the connections carry on where they were, with whatever the node believed.
 *
 * It needs root (CAP_NET_ADMIN) and `ip` (iproute2): `available()` says whether this machine
 * grants them; the suite falls back to SIGSTOP where it does not.
 */
const run = promisify(execFile);
const ip = (...args: string[]) => run('ip', args);
const FORWARDING = '/proc/sys/net/ipv4/ip_forward';

export interface Relay {
  /** The relayed address as a node in namespace `i` reaches it. */
  host(i: number): string;
  port: number;
}

export class NetworkNamespaces {
  private readonly relays: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    readonly count: number,
    private readonly prefix: string,
    private readonly tag: string,
    private readonly forwardingBefore: string,
  ) {}

  /** Whether this process may make namespaces and veth pairs (tried, then undone). */
  static async available(): Promise<boolean> {
    if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
    const probe = `tgprobe${process.pid}`;
    try {
      await ip('netns', 'add', probe);
      await ip('link', 'add', `${probe}a`, 'type', 'veth', 'peer', 'name', `${probe}b`);
      await ip('link', 'set', `${probe}b`, 'netns', probe);
      // Nodes reach each other through this namespace: it must be allowed to forward (a
      // read-only /proc/sys refuses the write).
      await writeFile(FORWARDING, (await readFile(FORWARDING, 'utf8')).trim());
      return true;
    } catch {
      return false;
    } finally {
      await ip('link', 'del', `${probe}a`).catch(() => undefined);
      await ip('netns', 'del', probe).catch(() => undefined);
    }
  }

  /** `count` namespaces, each with its pair up, routed through this namespace. */
  static async create(count: number): Promise<NetworkNamespaces> {
    // Second octet from the pid (two runs on one machine do not share addresses), moved on past
    // any the machine already routes or holds.
    const { stdout: taken } = await run('sh', ['-c', 'ip -4 route show table all; ip -4 addr show']);
    let octet = 200 + (process.pid % 50);
    const used = (n: number) => new RegExp(`(^|[^0-9.])10\\.${n}\\.`, 'm').test(taken);
    for (let tries = 0; tries < 50 && used(octet); tries++) octet = 200 + ((octet - 199) % 50);
    const prefix = `10.${octet}`;
    const tag = `tg${process.pid % 100_000}`;
    const forwardingBefore = (await readFile(FORWARDING, 'utf8')).trim();
    const namespaces = new NetworkNamespaces(count, prefix, tag, forwardingBefore);
    try {
      await writeFile(FORWARDING, '1');
      // A cut node's addresses lose their route here: they must not fall through to the default
      // route (out of the machine), but go nowhere, silently.
      await ip('route', 'add', 'blackhole', `${prefix}.0.0/16`);
      for (let i = 0; i < count; i++) await namespaces.join(i);
    } catch (error) {
      await namespaces.destroy();
      throw error;
    }
    return namespaces;
  }

  private near(i: number): string {
    return `${this.tag}h${i}`;
  }

  /** The name of node `i`'s namespace (for `ip netns exec`). */
  name(i: number): string {
    return `${this.tag}n${i}`;
  }

  /** Node `i`'s address, in its namespace. */
  address(i: number): string {
    return `${this.prefix}.${i}.2`;
  }

  /** The test's side of node `i`'s pair: where node `i` finds the relays. */
  gateway(i: number): string {
    return `${this.prefix}.${i}.1`;
  }

  private async join(i: number): Promise<void> {
    const ns = this.name(i);
    const far = `${this.tag}f${i}`;
    await ip('netns', 'add', ns);
    await ip('link', 'add', this.near(i), 'type', 'veth', 'peer', 'name', far);
    await ip('link', 'set', far, 'netns', ns);
    await ip('addr', 'add', `${this.gateway(i)}/24`, 'dev', this.near(i));
    await ip('link', 'set', this.near(i), 'up');
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    await ip('-n', ns, 'addr', 'add', `${this.address(i)}/24`, 'dev', far);
    await ip('-n', ns, 'link', 'set', far, 'up');
    await ip('-n', ns, 'route', 'add', 'default', 'via', this.gateway(i));
  }

  /**
   * Relays `host:port` (on this side's loopback) to every namespace: node `i` connects to
   * `gateway(i)` at the returned port. The relay listens only on the pairs' near ends.
   */
  async relay(host: string, port: number): Promise<Relay> {
    let relayPort = 0;
    for (let i = 0; i < this.count; i++) {
      const server = net.createServer((client) => {
        const upstream = net.connect(port, host);
        this.sockets.add(client).add(upstream);
        const close = () => {
          client.destroy();
          upstream.destroy();
          this.sockets.delete(client);
          this.sockets.delete(upstream);
        };
        client.on('error', close).on('close', close);
        upstream.on('error', close).on('close', close);
        client.pipe(upstream).pipe(client);
      });
      this.relays.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(relayPort, this.gateway(i), () => resolve());
      });
      relayPort = (server.address() as net.AddressInfo).port;
    }
    return { host: (i) => this.gateway(i), port: relayPort };
  }

  /** Node `i` can reach nothing and nothing can reach it (connections stay open, silent). */
  async cut(i: number): Promise<void> {
    await ip('link', 'set', this.near(i), 'down');
  }

  /** The cut ends: the pair is up again and its route back. */
  async heal(i: number): Promise<void> {
    await ip('link', 'set', this.near(i), 'up');
  }

  /** Relays closed, pairs and namespaces deleted, forwarding as it was. */
  async destroy(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await Promise.all(this.relays.map((server) => new Promise((resolve) => server.close(resolve))));
    for (let i = 0; i < this.count; i++) {
      await ip('link', 'del', this.near(i)).catch(() => undefined);
      await ip('netns', 'del', this.name(i)).catch(() => undefined);
    }
    await ip('route', 'del', 'blackhole', `${this.prefix}.0.0/16`).catch(() => undefined);
    await writeFile(FORWARDING, this.forwardingBefore).catch(() => undefined);
  }
}

/** `url` with its host and port replaced: where node `i` reaches it through `relay`. */
export function relayed(url: string, relay: Relay, i: number): string {
  const moved = new URL(url);
  moved.hostname = relay.host(i);
  moved.port = String(relay.port);
  return moved.toString().replace(/\/$/, '');
}
