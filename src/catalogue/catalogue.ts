import type { Queryable } from '../db/sql.js';

export interface ServiceRecord {
  id: string;
  name: string;
  serverId: string;
  serverName: string;
  pricePerMinuteMicros: bigint;
  currency: string;
  maxUsers: number;
}

export interface ServerRecord {
  id: string;
  name: string;
  maxUsers: number;
}

/** `lock`: the service's row is locked for the rest of the transaction (a change and its audit entry). */
export async function findService(db: Queryable, id: string, lock = false): Promise<ServiceRecord | null> {
  const [row] = await db<ServiceRecord[]>`
    select s.id, s.name, s.server_id as "serverId", v.name as "serverName",
      s.price_per_minute_micros as "pricePerMinuteMicros", s.currency, s.max_users as "maxUsers"
    from services s join servers v on v.id = s.server_id where s.id = ${id} ${lock ? db`for update of s` : db``}`;
  return row ?? null;
}

export async function listServices(db: Queryable): Promise<ServiceRecord[]> {
  return db<ServiceRecord[]>`
    select s.id, s.name, s.server_id as "serverId", v.name as "serverName",
      s.price_per_minute_micros as "pricePerMinuteMicros", s.currency, s.max_users as "maxUsers"
    from services s join servers v on v.id = s.server_id order by v.name, s.name`;
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
  service: Omit<ServiceRecord, 'serverName'>,
  at: number,
): Promise<void> {
  await db`
    insert into services (id, name, server_id, price_per_minute_micros, currency, max_users, created_at)
    values (${service.id}, ${service.name}, ${service.serverId}, ${service.pricePerMinuteMicros}, ${service.currency},
      ${service.maxUsers}, ${new Date(at)})`;
}
