import type { GateOccupancy, OccupancyStore } from '../admission/occupancy.js';
import type { Sql } from '../db/sql.js';
import type { Logger } from '../logger.js';

/**
 * The seats taken on servers another node runs, read from their rows every `intervalMs`, so this
 * node's catalogue and console show them too. A node's gates count only the seats it gives; an
 * outside probe found the catalogue saying 2 of 2 free on the nodes that did not run a full
 * server, every request to them a different answer behind a round-robin balancer. Seats are the
 * sessions opening (authorizing.requesting) or active, as the session machine's `seat` tag says.
 */
export class RemoteOccupancy {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly deps: {
      sql: Sql;
      occupancy: OccupancyStore;
      /** This node holds the server's lease (running it, or restoring its sessions): its own gates count it. */
      hosts: (serverId: string) => boolean;
      intervalMs: number;
      log: Logger;
    },
  ) {}

  start(): void {
    if (this.deps.intervalMs <= 0) return;
    this.timer = setInterval(() => void this.refresh(), this.deps.intervalMs).unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  refresh(): Promise<void> {
    this.running ??= this.read()
      .catch((error: unknown) => this.deps.log.warn({ err: String(error) }, 'could not read the seats taken on other nodes'))
      .finally(() => (this.running = null));
    return this.running;
  }

  private async read(): Promise<void> {
    const gates = Object.values(this.deps.occupancy.getSnapshot().context.gates);
    const serverOf = (gate: GateOccupancy) => (gate.kind === 'server' ? gate.id : gate.serverId);
    const elsewhere = [...new Set(gates.map(serverOf).filter((id): id is string => id !== null && !this.deps.hosts(id)))];
    if (elsewhere.length === 0) return;
    const rows = await this.deps.sql<{ serverId: string; serviceId: string; seats: number }[]>`
      select server_id as "serverId", service_id as "serviceId", count(*)::int as seats
      from sessions
      where state not in ('settled', 'declined') and server_id = any(${elsewhere}::uuid[])
        and (state = 'active' or path = 'authorizing.requesting')
      group by 1, 2`;
    const taken = new Map<string, number>();
    for (const row of rows) {
      taken.set(`service:${row.serviceId}`, row.seats);
      taken.set(`server:${row.serverId}`, (taken.get(`server:${row.serverId}`) ?? 0) + row.seats);
    }
    // The gates as they are now (a cap or a name may have changed during the query), not as read before it.
    const now = this.deps.occupancy.getSnapshot().context.gates;
    for (const [key, gate] of Object.entries(now)) {
      const serverId = serverOf(gate);
      // Taken over meanwhile: its own gates count it now.
      if (serverId === null || this.deps.hosts(serverId) || !elsewhere.includes(serverId)) continue;
      const activeUsers = taken.get(key) ?? 0;
      if (activeUsers !== gate.activeUsers) this.deps.occupancy.trigger.gateChanged({ occupancy: { ...gate, activeUsers } });
    }
  }
}
