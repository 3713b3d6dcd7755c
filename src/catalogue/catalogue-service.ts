import { randomBytes, randomUUID } from 'node:crypto';
import type { Admission } from '../admission/admission.js';
import { recordAudit } from '../audit/audit-log.js';
import { formatAmount } from '../billing/money.js';
import type { Clock } from '../clock.js';
import type { Sql, TransactionSql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';
import { errors } from '../errors.js';
import type { Actor } from '../operators/roles.js';
import { FLAT_PRICING, findServer, findService, insertServer, insertService, listServers, listServices, listUpstreams, type Pricing, type ServiceRecord } from './catalogue.js';

const uniqueName = (what: string) => (error: unknown) => {
  if ((error as { code?: string }).code === '23505') throw errors.nameTaken(what);
  throw error;
};

/** Who asks for a change, for the audit log. */
export interface ChangedBy {
  actor: Actor;
  requestId?: string | undefined;
}

/** A service as the audit log keeps it (JSON: no bigint). */
const audited = (s: ServiceRecord) => ({
  name: s.name,
  serverId: s.serverId,
  pricePerMinute: formatAmount(s.pricePerMinuteMicros),
  currency: s.currency,
  maxUsers: s.maxUsers,
  tariff: s.tariff,
  upstreamUrl: s.upstreamUrl,
});

/** Where the edge sends a service's traffic, and the secret it signs its headers with. */
export interface Upstream {
  url: URL;
  /** The URL's origin and its path without a trailing slash, read once (a URL's getters build a new string each time). */
  origin: string;
  basePath: string;
  signingSecret: string;
}

export function upstreamOf(url: string, signingSecret: string): Upstream {
  const parsed = new URL(url);
  const path = parsed.pathname;
  return { url: parsed, origin: parsed.origin, basePath: path.endsWith('/') ? path.slice(0, -1) : path, signingSecret };
}

/** The channel other nodes hear catalogue changes on (issue 17): they read the catalogue again. */
export const CATALOGUE_CHANNEL = 'tollgate_catalogue';

/** Sent at the commit of the change's transaction (and not at all if it rolls back). */
const announce = (tx: TransactionSql) => tx`select pg_notify(${CATALOGUE_CHANNEL}, '')`;

/** A new signing secret: 256 random bits, shown to the operator once. */
const newSigningSecret = () => `tgs_${randomBytes(32).toString('base64url')}`;

/** Audited states as JSON (bigints as text); two are the same when their JSON is (one code makes both, so key order agrees). */
const auditJson = (state: unknown) => JSON.stringify(state, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
const sameJson = (a: unknown, b: unknown) => auditJson(a) === auditJson(b);

/**
 * Servers and services: rows in Postgres, a gate per row in the admission coordinator, and a
 * copy in memory so opening a session reads no catalogue row. Every change goes through here,
 * written to the audit log in the transaction that makes it, which also notifies
 * `tollgate_catalogue`: with several nodes, each reads the catalogue again when it hears it
 * (`followChanges`), so a cap or a price changed on one node holds on the node that owns the
 * server.
 */
export class Catalogue {
  private readonly servicesById = new Map<string, ServiceRecord>();
  private readonly serverNames = new Map<string, string>();
  private readonly upstreams = new Map<string, Upstream>();

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
    for (const row of await listUpstreams(this.deps.sql)) {
      this.upstreams.set(row.serviceId, upstreamOf(row.upstreamUrl, row.signingSecret));
    }
  }

  /**
   * Several nodes: reads the catalogue again whenever any node commits a change to it (and when
   * the listening connection comes back, in case one was missed meanwhile). Returns the stop.
   */
  async followChanges(onError: (error: unknown) => void): Promise<() => Promise<void>> {
    let reading: Promise<void> = Promise.resolve();
    const reload = () => {
      reading = reading.then(() => this.load()).catch(onError);
    };
    const listening = await this.deps.sql.listen(CATALOGUE_CHANNEL, reload, reload);
    return async () => {
      await listening.unlisten();
      await reading;
    };
  }

  /** Every service that has an upstream, with it. */
  upstreamsByService(): IterableIterator<[string, Upstream]> {
    return this.upstreams.entries();
  }

  /** Where the edge sends this service's traffic; undefined while it has no upstream. */
  upstream(serviceId: string): Upstream | undefined {
    return this.upstreams.get(serviceId);
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

  async createServer(request: { name: string; maxUsers: number }, by: ChangedBy) {
    const server = { id: randomUUID(), ...request };
    const at = this.deps.clock.now();
    await transaction(this.deps.sql, async (tx) => {
      await insertServer(tx, server, at);
      await recordAudit(tx, { ...by, action: 'server.create', targetType: 'server', targetId: server.id, before: null, after: request, at });
      await announce(tx);
    }).catch(uniqueName('server'));
    this.serverNames.set(server.id, server.name);
    this.deps.admission.register('server', server.id, server.name, server.maxUsers);
    return server;
  }

  async createService(
    request: { name: string; serverId: string; pricePerMinuteMicros: bigint; maxUsers: number; pricing?: Pricing | undefined; upstreamUrl?: string | undefined },
    by: ChangedBy,
  ): Promise<{ service: ServiceRecord; signingSecret: string | null }> {
    const serverName = this.serverNames.get(request.serverId);
    if (serverName === undefined) throw errors.serverNotFound();
    const { pricing = FLAT_PRICING, upstreamUrl = null, ...rest } = request;
    const signingSecret = upstreamUrl === null ? null : newSigningSecret();
    const service = { id: randomUUID(), currency: this.deps.currency, ...rest, upstreamUrl, pricing, signingSecret };
    const record: ServiceRecord = {
      ...rest,
      id: service.id,
      currency: service.currency,
      serverName,
      upstreamUrl,
      tariff: { ...pricing, pricePerMinuteMicros: rest.pricePerMinuteMicros.toString() },
    };
    const at = this.deps.clock.now();
    await transaction(this.deps.sql, async (tx) => {
      await insertService(tx, service, at);
      await recordAudit(tx, { ...by, action: 'service.create', targetType: 'service', targetId: service.id, before: null, after: audited(record), at });
      await announce(tx);
    }).catch(uniqueName('service'));
    this.servicesById.set(service.id, record);
    if (upstreamUrl !== null && signingSecret !== null) this.upstreams.set(service.id, upstreamOf(upstreamUrl, signingSecret));
    this.deps.admission.register('service', service.id, service.name, service.maxUsers, service.serverId);
    return { service: record, signingSecret };
  }

  /** A lower cap stops new admissions and ends no running session. */
  async updateServer(id: string, change: { name?: string | undefined; maxUsers?: number | undefined }, by: ChangedBy) {
    const at = this.deps.clock.now();
    const row = await transaction(this.deps.sql, async (tx) => {
      const before = await findServer(tx, id, true);
      if (!before) throw errors.serverNotFound();
      const [after] = await tx<{ id: string; name: string; maxUsers: number }[]>`
        update servers set name = coalesce(${change.name ?? null}, name), max_users = coalesce(${change.maxUsers ?? null}, max_users)
        where id = ${id} returning id, name, max_users as "maxUsers"`;
      const { id: _, ...was } = before;
      const { id: __, ...is } = after!;
      // A change that changes nothing is answered, not recorded.
      if (!sameJson(was, is)) {
        await recordAudit(tx, { ...by, action: 'server.update', targetType: 'server', targetId: id, before: was, after: is, at });
        await announce(tx);
      }
      return after!;
    }).catch(uniqueName('server'));
    this.serverNames.set(id, row.name);
    for (const service of this.servicesById.values()) if (service.serverId === id) service.serverName = row.name;
    this.deps.admission.rename('server', id, row.name);
    if (change.maxUsers !== undefined) this.deps.admission.setCapacity('server', id, row.maxUsers);
    return row;
  }

  /** A new price applies to sessions opened from now on; a session keeps the tariff it opened at. */
  async updateService(
    id: string,
    change: {
      name?: string | undefined;
      maxUsers?: number | undefined;
      pricePerMinuteMicros?: bigint | undefined;
      pricing?: Pricing | undefined;
      upstreamUrl?: string | undefined;
    },
    by: ChangedBy,
  ): Promise<{ service: ServiceRecord; signingSecret: string | null }> {
    const at = this.deps.clock.now();
    const pricing = change.pricing === undefined ? null : this.deps.sql.json(change.pricing as never);
    let fresh: string | null = null;
    const service = await transaction(this.deps.sql, async (tx) => {
      const before = await findService(tx, id, true);
      if (!before) throw errors.serviceNotFound();
      // A service given its first upstream gets its signing secret now; a moved upstream keeps its
      // secret. Read under the row's lock: two first upstreams sent at once each answered a secret
      // "shown once", and only the first one stored was the one signing (an outside probe).
      if (change.upstreamUrl !== undefined) {
        const [stored] = await tx<{ unsigned: boolean }[]>`select signing_secret is null as unsigned from services where id = ${id}`;
        fresh = stored?.unsigned ? newSigningSecret() : null;
      }
      await tx`
        update services set name = coalesce(${change.name ?? null}, name),
          max_users = coalesce(${change.maxUsers ?? null}, max_users),
          price_per_minute_micros = coalesce(${change.pricePerMinuteMicros ?? null}::int8, price_per_minute_micros),
          pricing = coalesce(${pricing}::jsonb, pricing),
          upstream_url = coalesce(${change.upstreamUrl ?? null}, upstream_url),
          signing_secret = coalesce(signing_secret, ${fresh})
        where id = ${id}`;
      const after = (await findService(tx, id))!;
      // A change that changes nothing is answered, not recorded (a first upstream's secret is a change).
      if (fresh !== null || !sameJson(audited(before), audited(after))) {
        await recordAudit(tx, { ...by, action: 'service.update', targetType: 'service', targetId: id, before: audited(before), after: audited(after), at });
        await announce(tx);
      }
      return after;
    }).catch(uniqueName('service'));
    this.servicesById.set(id, service);
    if (change.upstreamUrl !== undefined) await this.reloadUpstream(id);
    this.deps.admission.rename('service', id, service.name);
    if (change.maxUsers !== undefined) this.deps.admission.setCapacity('service', id, service.maxUsers);
    return { service, signingSecret: fresh };
  }

  /** A new signing secret for the service's upstream, shown once; the old one stops at once. */
  async rotateSigningSecret(id: string, by: ChangedBy): Promise<string> {
    const secret = newSigningSecret();
    const at = this.deps.clock.now();
    await transaction(this.deps.sql, async (tx) => {
      const [row] = await tx<{ upstream: boolean }[]>`
        update services set signing_secret = case when upstream_url is null then signing_secret else ${secret} end where id = ${id}
        returning upstream_url is not null as upstream`;
      if (!row) throw errors.serviceNotFound();
      if (!row.upstream) throw errors.noUpstreamToSign();
      await recordAudit(tx, { ...by, action: 'service.rotate_signing_secret', targetType: 'service', targetId: id, before: null, after: null, at });
      await announce(tx);
    });
    await this.reloadUpstream(id);
    return secret;
  }

  private async reloadUpstream(id: string): Promise<void> {
    const [row] = await this.deps.sql<{ upstreamUrl: string | null; signingSecret: string | null }[]>`
      select upstream_url as "upstreamUrl", signing_secret as "signingSecret" from services where id = ${id}`;
    if (row?.upstreamUrl && row.signingSecret) this.upstreams.set(id, upstreamOf(row.upstreamUrl, row.signingSecret));
    else this.upstreams.delete(id);
  }
}
