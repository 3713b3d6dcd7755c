import { PER_SECOND, type TariffSpec } from '../billing/tariff.js';
import type { Queryable } from '../db/sql.js';

/** What a service's price is besides its default price per minute (the `pricing` column). */
export type Pricing = Omit<TariffSpec, 'pricePerMinuteMicros'>;

export const FLAT_PRICING: Pricing = { timeZone: 'UTC', rules: [], billing: PER_SECOND, perUse: null };

export interface ServiceRecord {
  id: string;
  name: string;
  serverId: string;
  serverName: string;
  pricePerMinuteMicros: bigint;
  currency: string;
  maxUsers: number;
  /** Where the edge sends the service's traffic (http or https; WebSocket over the same), or null. */
  upstreamUrl: string | null;
  /** The whole tariff: the default price per minute with the rules, billing and per-use price. */
  tariff: TariffSpec;
}

type ServiceRow = Omit<ServiceRecord, 'tariff'> & { pricing: Pricing | null };

const withTariff = ({ pricing, ...row }: ServiceRow): ServiceRecord => ({
  ...row,
  tariff: { ...(pricing ?? FLAT_PRICING), pricePerMinuteMicros: row.pricePerMinuteMicros.toString() },
});

export interface ServerRecord {
  id: string;
  name: string;
  maxUsers: number;
}

/** `lock`: the service's row is locked for the rest of the transaction (a change and its audit entry). */
export async function findService(db: Queryable, id: string, lock = false): Promise<ServiceRecord | null> {
  const [row] = await db<ServiceRow[]>`
    select s.id, s.name, s.server_id as "serverId", v.name as "serverName",
      s.price_per_minute_micros as "pricePerMinuteMicros", s.currency, s.max_users as "maxUsers", s.pricing,
      s.upstream_url as "upstreamUrl"
    from services s join servers v on v.id = s.server_id where s.id = ${id} ${lock ? db`for update of s` : db``}`;
  return row ? withTariff(row) : null;
}

export async function listServices(db: Queryable): Promise<ServiceRecord[]> {
  const rows = await db<ServiceRow[]>`
    select s.id, s.name, s.server_id as "serverId", v.name as "serverName",
      s.price_per_minute_micros as "pricePerMinuteMicros", s.currency, s.max_users as "maxUsers", s.pricing,
      s.upstream_url as "upstreamUrl"
    from services s join servers v on v.id = s.server_id order by v.name, s.name`;
  return rows.map(withTariff);
}

export async function insertServer(db: Queryable, server: ServerRecord, at: number): Promise<void> {
  await db`insert into servers (id, name, max_users, created_at) values (${server.id}, ${server.name}, ${server.maxUsers}, ${new Date(at)})`;
}

export async function listServers(db: Queryable): Promise<ServerRecord[]> {
  return db<ServerRecord[]>`select id, name, max_users as "maxUsers" from servers order by name`;
}

export async function findServer(db: Queryable, id: string, lock = false): Promise<ServerRecord | null> {
  const [row] = await db<ServerRecord[]>`
    select id, name, max_users as "maxUsers" from servers where id = ${id} ${lock ? db`for update` : db``}`;
  return row ?? null;
}

export async function insertService(
  db: Queryable,
  service: Omit<ServiceRecord, 'serverName' | 'tariff'> & { pricing: Pricing; signingSecret: string | null },
  at: number,
): Promise<void> {
  await db`
    insert into services (id, name, server_id, price_per_minute_micros, currency, max_users, pricing, upstream_url, signing_secret, created_at)
    values (${service.id}, ${service.name}, ${service.serverId}, ${service.pricePerMinuteMicros}, ${service.currency},
      ${service.maxUsers}, ${db.json(service.pricing as never)}, ${service.upstreamUrl}, ${service.signingSecret}, ${new Date(at)})`;
}

/** Where each service's traffic goes and the secret its headers are signed with (the edge's table). */
export async function listUpstreams(db: Queryable): Promise<{ serviceId: string; upstreamUrl: string; signingSecret: string }[]> {
  return db<{ serviceId: string; upstreamUrl: string; signingSecret: string }[]>`
    select id as "serviceId", upstream_url as "upstreamUrl", signing_secret as "signingSecret" from services
    where upstream_url is not null and signing_secret is not null`;
}
