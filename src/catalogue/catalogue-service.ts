import { randomUUID } from 'node:crypto';
import type { Admission } from '../admission/admission.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import { errors } from '../errors.js';
import { FLAT_PRICING, findService, insertServer, insertService, listServers, listServices, type Pricing, type ServiceRecord } from './catalogue.js';

const uniqueName = (what: string) => (error: unknown) => {
  if ((error as { code?: string }).code === '23505') throw errors.nameTaken(what);
  throw error;
};

/**
 * Servers and services: rows in Postgres, a gate per row in the admission coordinator, and a
 * copy in memory so opening a session reads no catalogue row. Every change goes through here,
 * in the process that owns the servers (DESIGN rule 8), so the copy cannot go stale.
 */
export class Catalogue {
  private readonly servicesById = new Map<string, ServiceRecord>();
  private readonly serverNames = new Map<string, string>();

  constructor(private readonly deps: { sql: Sql; clock: Clock; admission: Admission; currency: string }) {}

  /** On start-up: one gate per server and per service. */
  async load(): Promise<void> {
    for (const server of await listServers(this.deps.sql)) {
      this.serverNames.set(server.id, server.name);
      this.deps.admission.register('server', server.id, server.name, server.maxUsers);
    }
    for (const service of await listServices(this.deps.sql)) {
      this.servicesById.set(service.id, service);
      this.deps.admission.register('service', service.id, service.name, service.maxUsers, service.serverId);
    }
  }

  service(id: string): ServiceRecord | undefined {
    return this.servicesById.get(id);
  }

  /** The catalogue as customers see it: by server name, then service name. */
  services(): ServiceRecord[] {
    return [...this.servicesById.values()].sort(
      (a, b) => a.serverName.localeCompare(b.serverName) || a.name.localeCompare(b.name),
    );
  }

  async createServer(request: { name: string; maxUsers: number }) {
    const server = { id: randomUUID(), ...request };
    await insertServer(this.deps.sql, server, this.deps.clock.now()).catch(uniqueName('server'));
    this.serverNames.set(server.id, server.name);
    this.deps.admission.register('server', server.id, server.name, server.maxUsers);
    return server;
  }

  async createService(request: { name: string; serverId: string; pricePerMinuteMicros: bigint; maxUsers: number; pricing?: Pricing | undefined }) {
    const serverName = this.serverNames.get(request.serverId);
    if (serverName === undefined) throw errors.serverNotFound();
    const { pricing = FLAT_PRICING, ...rest } = request;
    const service = { id: randomUUID(), currency: this.deps.currency, ...rest, pricing };
    await insertService(this.deps.sql, service, this.deps.clock.now()).catch(uniqueName('service'));
    const record: ServiceRecord = {
      ...rest,
      id: service.id,
      currency: service.currency,
      serverName,
      tariff: { ...pricing, pricePerMinuteMicros: rest.pricePerMinuteMicros.toString() },
    };
    this.servicesById.set(service.id, record);
    this.deps.admission.register('service', service.id, service.name, service.maxUsers, service.serverId);
    return record;
  }

  /** A lower cap stops new admissions and ends no running session. */
  async updateServer(id: string, change: { name?: string | undefined; maxUsers?: number | undefined }) {
    const [row] = await this.deps.sql<{ id: string; name: string; maxUsers: number }[]>`
      update servers set name = coalesce(${change.name ?? null}, name), max_users = coalesce(${change.maxUsers ?? null}, max_users)
      where id = ${id} returning id, name, max_users as "maxUsers"`.catch(uniqueName('server'));
    if (!row) throw errors.serverNotFound();
    this.serverNames.set(id, row.name);
    for (const service of this.servicesById.values()) if (service.serverId === id) service.serverName = row.name;
    this.deps.admission.rename('server', id, row.name);
    if (change.maxUsers !== undefined) this.deps.admission.setCapacity('server', id, row.maxUsers);
    return row;
  }

  /** A new price applies to sessions opened from now on; a session keeps the tariff it opened at. */
  async updateService(
    id: string,
    change: { name?: string | undefined; maxUsers?: number | undefined; pricePerMinuteMicros?: bigint | undefined; pricing?: Pricing | undefined },
  ): Promise<ServiceRecord> {
    const pricing = change.pricing === undefined ? null : this.deps.sql.json(change.pricing as never);
    const [row] = await this.deps.sql<{ id: string }[]>`
      update services set name = coalesce(${change.name ?? null}, name),
        max_users = coalesce(${change.maxUsers ?? null}, max_users),
        price_per_minute_micros = coalesce(${change.pricePerMinuteMicros ?? null}::int8, price_per_minute_micros),
        pricing = coalesce(${pricing}::jsonb, pricing)
      where id = ${id} returning id`.catch(uniqueName('service'));
    if (!row) throw errors.serviceNotFound();
    const service = (await findService(this.deps.sql, id))!;
    this.servicesById.set(id, service);
    this.deps.admission.rename('service', id, service.name);
    if (change.maxUsers !== undefined) this.deps.admission.setCapacity('service', id, service.maxUsers);
    return service;
  }
}
