import { randomUUID } from 'node:crypto';
import { parseAmount } from '../billing/money.js';
import type { Sql } from './sql.js';
import { transaction } from './transaction.js';

const DEMO = [
  { server: 'atlas', maxUsers: 60, services: [['cad-studio', '0.50', 40], ['genome-aligner', '1.20', 20]] },
  { server: 'borealis', maxUsers: 30, services: [['tax-suite', '0.25', 25], ['render-farm', '2.00', 10]] },
] as const;

/** Seeds the demo catalogue (2 servers, 4 services) into an empty catalogue, once. */
export async function seedDemoCatalogue(sql: Sql, currency: string, at: number): Promise<boolean> {
  return transaction(sql, async (tx) => {
    await tx`lock table servers in exclusive mode`;
    const [existing] = await tx`select 1 from servers limit 1`;
    if (existing) return false;
    const createdAt = new Date(at);
    for (const entry of DEMO) {
      const serverId = randomUUID();
      await tx`insert into servers (id, name, max_users, created_at) values (${serverId}, ${entry.server}, ${entry.maxUsers}, ${createdAt})`;
      for (const [name, price, maxUsers] of entry.services) {
        await tx`
          insert into services (id, name, server_id, price_per_minute_micros, currency, max_users, created_at)
          values (${randomUUID()}, ${name}, ${serverId}, ${parseAmount(price)!}, ${currency}, ${maxUsers}, ${createdAt})`;
      }
    }
    return true;
  });
}
