import { createStore } from '@xstate/store';

export interface GateOccupancy {
  kind: 'server' | 'service';
  id: string;
  name: string;
  /** For a service, the server it runs on. */
  serverId: string | null;
  maxUsers: number;
  activeUsers: number;
  queued: number;
  /** When the longest-waiting request joined the queue, or null. */
  oldestQueuedAt: number | null;
}

/** The estimated needs of the customers connected to a server now (each customer once). */
export interface ServerLoad {
  customers: number;
  estimatedStorageGb: number;
  estimatedProcessingHours: number;
}

/**
 * The live occupancy read model: fed by the gates (and by the coordinator for customer
 * load), read by the HTTP routes without asking any actor.
 */
export function createOccupancyStore() {
  return createStore({
    context: {
      gates: {} as Record<string, GateOccupancy>,
      loads: {} as Record<string, ServerLoad>,
    },
    on: {
      gateChanged: (context, event: { occupancy: GateOccupancy }) => ({
        ...context,
        gates: { ...context.gates, [`${event.occupancy.kind}:${event.occupancy.id}`]: event.occupancy },
      }),
      loadChanged: (context, event: { serverId: string; load: ServerLoad }) => ({
        ...context,
        loads: { ...context.loads, [event.serverId]: event.load },
      }),
    },
  });
}

export type OccupancyStore = ReturnType<typeof createOccupancyStore>;

export function serviceOccupancy(store: OccupancyStore, serviceId: string): GateOccupancy | undefined {
  return store.getSnapshot().context.gates[`service:${serviceId}`];
}

/**
 * Seats an open of the service could take now: the service's own, within what its server has left
 * (a server's cap binds all its services at once). Null while the service has no gate.
 */
export function seatsFreeOf(store: OccupancyStore, serviceId: string): number | null {
  const { gates } = store.getSnapshot().context;
  const service = gates[`service:${serviceId}`];
  if (!service) return null;
  const free = (g: GateOccupancy) => Math.max(0, g.maxUsers - g.activeUsers);
  const server = service.serverId === null ? undefined : gates[`server:${service.serverId}`];
  return server ? Math.min(free(service), free(server)) : free(service);
}

/** The operators' view: every server with its services, counts, queues and customer load. */
export function serversView(store: OccupancyStore, now: number) {
  const { gates, loads } = store.getSnapshot().context;
  const all = Object.values(gates);
  const waitSeconds = (g: GateOccupancy) => (g.oldestQueuedAt === null ? null : Math.max(0, now - g.oldestQueuedAt) / 1000);
  const round = (n: number) => Math.round(n * 1000) / 1000;
  return all
    .filter((g) => g.kind === 'server')
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((server) => {
      const load = loads[server.id] ?? { customers: 0, estimatedStorageGb: 0, estimatedProcessingHours: 0 };
      return {
        id: server.id,
        name: server.name,
        maxUsers: server.maxUsers,
        activeUsers: server.activeUsers,
        queued: server.queued,
        oldestWaitSeconds: waitSeconds(server),
        services: all
          .filter((g) => g.kind === 'service' && g.serverId === server.id)
          .sort((a, b) => a.name.localeCompare(b.name))
          .map((s) => ({
            id: s.id,
            name: s.name,
            maxUsers: s.maxUsers,
            activeUsers: s.activeUsers,
            queued: s.queued,
            oldestWaitSeconds: waitSeconds(s),
          })),
        connectedCustomers: load.customers,
        estimatedStorageGb: round(load.estimatedStorageGb),
        estimatedProcessingHours: round(load.estimatedProcessingHours),
      };
    });
}
