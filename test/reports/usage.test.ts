import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PERIODS, usageReport, type UsageQuery } from '../../src/reports/usage.js';
import { migrateTollgate } from '../../src/runtime.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { runs, SEED } from '../helpers/property-runs.js';
import { referenceUsageReport } from './usage-reference.js';

/**
 * The usage report's SQL against the plain query it replaced (test/reports/usage-reference.ts),
 * on session rows written straight into the table: random starts, ends, ties, sessions still
 * running, windows across Paris's autumn change of clocks and zones a quarter or half hour off UTC.
 */
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
// Paris leaves summer time on 25 Oct 2026 at 01:00 UTC: 25 Oct is a 25-hour day there.
const BASE = Date.UTC(2026, 9, 23);
const ZONES = ['UTC', 'Europe/Paris', 'Asia/Kolkata', 'Asia/Kathmandu', 'America/St_Johns'];

let db: TestDatabase;
let serverId: string;
const serviceIds: string[] = [];
const accountIds: string[] = [];

interface SessionRow {
  service: number;
  account: number;
  startedAt: number | null;
  endedAt: number | null;
  settled: boolean;
  billableMs: number | null;
  usesUnits: number;
  chargeMicros: number | null;
}

async function replaceSessions(sessions: readonly SessionRow[]) {
  await db.sql`delete from sessions`;
  for (const row of sessions) {
    const at = (ms: number | null) => (ms === null ? null : new Date(ms));
    await db.sql`
      insert into sessions (id, account_id, service_id, server_id, state, path, seq, machine_version, snapshot, currency,
        price_per_minute_micros, max_ms, max_charge_micros, reserved_micros, started_at, ended_at, charge_micros,
        end_reason, billable_ms, uses_units, uses_micros, created_at, updated_at)
      values (${randomUUID()}, ${accountIds[row.account]!}, ${serviceIds[row.service]!}, ${serverId},
        ${row.settled ? 'settled' : 'active'}, ${row.settled ? 'settled' : 'active.running'}, 3, 4, '{}'::jsonb, 'USD',
        600000, null, 50000000, 0, ${at(row.startedAt)}, ${at(row.endedAt)}, ${row.chargeMicros}, ${row.settled ? 'logoff' : null},
        ${row.billableMs}, ${row.usesUnits}, 0, ${new Date(BASE)}, ${new Date(BASE)})`;
  }
}

beforeAll(async () => {
  db = await createTestDatabase();
  await migrateTollgate(db.sql);
  serverId = randomUUID();
  const now = new Date(BASE);
  await db.sql`insert into servers (id, name, max_users, created_at) values (${serverId}, 'reports', 1000, ${now})`;
  for (const name of ['Compute', 'Archive', 'Render']) {
    const id = randomUUID();
    serviceIds.push(id);
    await db.sql`
      insert into services (id, name, server_id, price_per_minute_micros, currency, max_users, created_at)
      values (${id}, ${name}, ${serverId}, 600000, 'USD', 1000, ${now})`;
  }
  for (const name of ['Ada', 'Bo', 'Cy', 'Di']) {
    const id = randomUUID();
    accountIds.push(id);
    await db.sql`
      insert into accounts (id, name, email, email_normalized, password_hash, estimated_storage_gb, estimated_processing_hours,
        card_token, card_brand, card_last4, card_exp_month, card_exp_year, currency, outstanding_limit_micros, created_at,
        statement_from, statement_due_at)
      values (${id}, ${name}, ${`${name}@example.com`}, ${`${name}@example.com`}, 'not-a-hash', 1, 1, 'tok', 'visa', '4242',
        12, 2031, 'USD', 1000000000, ${now}, ${now}, ${now})`;
  }
});
afterAll(async () => {
  await db?.drop();
});

// Instants on a 7.5-minute grid (so starts, ends and period starts often coincide), sometimes off it by a few ms.
const instant = fc
  .tuple(fc.integer({ min: 0, max: 4 * 24 * 8 }), fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 7 * MINUTE })))
  .map(([step, jitter]) => BASE + step * 7.5 * MINUTE + jitter);

const session: fc.Arbitrary<SessionRow> = fc
  .record({
    service: fc.integer({ min: 0, max: 2 }),
    account: fc.integer({ min: 0, max: 3 }),
    startedAt: fc.option(instant, { freq: 8 }),
    lastsMs: fc.option(fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 30 * HOUR })), { freq: 5 }),
    settled: fc.boolean(),
    billableMs: fc.option(fc.integer({ min: 0, max: 30 * HOUR }), { freq: 5 }),
    usesUnits: fc.integer({ min: 0, max: 5 }),
    chargeMicros: fc.option(fc.integer({ min: 0, max: 90_000_000 }), { freq: 5 }),
  })
  .map(({ lastsMs, ...row }) => ({
    ...row,
    endedAt: row.startedAt === null || lastsMs === null ? null : row.startedAt + lastsMs,
  }));

const query: fc.Arbitrary<UsageQuery> = fc
  .record({
    period: fc.constantFrom(...PERIODS),
    by: fc.constantFrom('service' as const, 'customer' as const),
    from: instant,
    lastsMs: fc.integer({ min: 1, max: 4 * 24 * HOUR }),
    timeZone: fc.constantFrom(...ZONES),
    service: fc.option(fc.integer({ min: 0, max: 2 }), { freq: 3 }),
    account: fc.option(fc.integer({ min: 0, max: 3 }), { freq: 3 }),
  })
  .map(({ from, lastsMs, service, account, ...rest }) => ({
    ...rest,
    from: new Date(from),
    to: new Date(from + lastsMs),
    serviceId: service === null ? undefined : serviceIds[service],
    accountId: account === null ? undefined : accountIds[account],
  }));

describe('usage report SQL', () => {
  it('answers exactly what the reference query answers, on random sessions and windows', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(session, { maxLength: 30 }), fc.array(query, { minLength: 1, maxLength: 3 }), async (sessions, queries) => {
        await replaceSessions(sessions);
        for (const q of queries) {
          const expected = await referenceUsageReport(db.sql, q);
          expect(await usageReport(db.sql, q)).toEqual(expected);
          // Lanes that would not fit: the sort by key, then instant, gives the same rows.
          expect(await usageReport(db.sql, q, { endEpochSeconds: q.to.getTime() / 1000 })).toEqual(expected);
        }
      }),
      { numRuns: runs(60), seed: SEED },
    );
  }, 120_000);

  it('cuts the 25-hour day when Paris leaves summer time, and counts a session running across it in both days', async () => {
    // Compute: 24 Oct 20:00 to 26 Oct 00:30 UTC (runs through the long day); Archive: two at once
    // at 25 Oct 22:30 UTC, 23:30 on 25 Oct in Paris (in summer time it would be 26 Oct), one still running.
    await replaceSessions([
      { service: 0, account: 0, startedAt: Date.UTC(2026, 9, 24, 20), endedAt: Date.UTC(2026, 9, 26, 0, 30), settled: true, billableMs: 28.5 * HOUR, usesUnits: 0, chargeMicros: 1_000_000 },
      { service: 1, account: 1, startedAt: Date.UTC(2026, 9, 25, 22, 30), endedAt: Date.UTC(2026, 9, 25, 22, 45), settled: true, billableMs: 15 * MINUTE, usesUnits: 2, chargeMicros: 9_000_000 },
      { service: 1, account: 2, startedAt: Date.UTC(2026, 9, 25, 22, 30), endedAt: null, settled: false, billableMs: null, usesUnits: 0, chargeMicros: null },
    ]);
    const rows = await usageReport(db.sql, { period: 'day', by: 'service', from: new Date(Date.UTC(2026, 9, 24)), to: new Date(Date.UTC(2026, 9, 26, 23)), timeZone: 'Europe/Paris' });
    expect(rows.map((row) => [row.period, row.name, row.sessions, row.revenue, row.customers, row.peakConcurrent])).toEqual([
      // Paris days start at 22:00 UTC in summer time, 23:00 UTC after the change.
      ['2026-10-23T22:00:00.000Z', 'Compute', 1, '1.00', 1, 1],
      ['2026-10-24T22:00:00.000Z', 'Archive', 2, '9.00', 2, 2],
      ['2026-10-24T22:00:00.000Z', 'Compute', 0, '0.00', 0, 1],
      ['2026-10-25T23:00:00.000Z', 'Archive', 0, '0.00', 0, 1],
      ['2026-10-25T23:00:00.000Z', 'Compute', 0, '0.00', 0, 1],
    ]);
  });
});
