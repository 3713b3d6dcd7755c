import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keepUsagePeaks } from '../../src/reports/usage-peaks.js';
import { usageReport } from '../../src/reports/usage.js';
import { migrateTollgate } from '../../src/runtime.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { runs, SEED } from '../helpers/property-runs.js';

/** The usage report's SQL on session rows written straight into the table (as test/bench/reports.ts does). */
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
// Paris leaves summer time on 25 Oct 2026 at 01:00 UTC: 25 Oct is a 25-hour day there.
const BASE = Date.UTC(2026, 9, 23);

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

describe('usage report SQL', () => {
  it('counts the period that begins in the last quarter of a window not starting on a quarter', async () => {
    await replaceSessions([
      { service: 0, account: 0, startedAt: Date.UTC(2026, 9, 23, 6, 15), endedAt: Date.UTC(2026, 9, 23, 13, 15), settled: true, billableMs: 7 * HOUR, usesUnits: 0, chargeMicros: 1_000_000 },
    ]);
    const from = new Date(Date.UTC(2026, 9, 23, 4, 14, 23));
    const to = new Date(Date.UTC(2026, 9, 23, 13, 0, 1));
    const rows = await usageReport(db.sql, { period: 'hour', by: 'service', from, to, timeZone: 'UTC', asOf: to }, { keptPeaks: false });
    expect(rows.map((row) => [row.period.slice(11, 16), row.peakConcurrent])).toEqual(
      ['06:00', '07:00', '08:00', '09:00', '10:00', '11:00', '12:00', '13:00'].map((hour) => [hour, 1]),
    );
  });

  it('cuts the 25-hour day when Paris leaves summer time, and counts a session running across it in both days', async () => {
    // Compute: 24 Oct 20:00 to 26 Oct 00:30 UTC (runs through the long day); Archive: two at once
    // at 25 Oct 22:30 UTC, 23:30 on 25 Oct in Paris (in summer time it would be 26 Oct), one still running.
    await replaceSessions([
      { service: 0, account: 0, startedAt: Date.UTC(2026, 9, 24, 20), endedAt: Date.UTC(2026, 9, 26, 0, 30), settled: true, billableMs: 28.5 * HOUR, usesUnits: 0, chargeMicros: 1_000_000 },
      { service: 1, account: 1, startedAt: Date.UTC(2026, 9, 25, 22, 30), endedAt: Date.UTC(2026, 9, 25, 22, 45), settled: true, billableMs: 15 * MINUTE, usesUnits: 2, chargeMicros: 9_000_000 },
      { service: 1, account: 2, startedAt: Date.UTC(2026, 9, 25, 22, 30), endedAt: null, settled: false, billableMs: null, usesUnits: 0, chargeMicros: null },
    ]);
    const rows = await usageReport(db.sql, { period: 'day', by: 'service', from: new Date(Date.UTC(2026, 9, 24)), to: new Date(Date.UTC(2026, 9, 26, 23)), timeZone: 'Europe/Paris', asOf: new Date(Date.UTC(2026, 9, 26, 23)) });
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

/**
 * The kept peaks (usage-peaks.ts) answer as counting every session again would: sessions are
 * written as they happen (a running one settles later, new ones start after the clock), reports
 * are asked at two instants (the second adds the quarters settled since the first), over windows
 * that do not begin on a quarter, in zones a quarter or half an hour off UTC.
 */
describe('kept peaks', () => {
  const ZONES = ['UTC', 'Europe/Paris', 'Asia/Kathmandu', 'America/St_Johns'] as const;
  const session = fc.record({
    service: fc.nat(2),
    account: fc.nat(3),
    // Seconds into a day, lasting up to ten hours (0: started and ended at one instant); often on a
    // quarter or five minutes exactly, so sessions start and end together and on the quarters' edges.
    startS: fc.oneof(fc.nat(86_400), fc.nat(95).map((q) => q * 900), fc.nat(287).map((m) => m * 300)),
    lengthS: fc.oneof(fc.constant(0), fc.nat(36_000), fc.nat(40).map((q) => q * 900)),
  });
  const report = fc.record({
    period: fc.constantFrom('hour', 'day', 'week', 'month'),
    by: fc.constantFrom('service', 'customer'),
    zone: fc.constantFrom(...ZONES),
    fromS: fc.oneof(fc.integer({ min: -3_600, max: 86_400 }), fc.integer({ min: -4, max: 96 }).map((q) => q * 900)),
    lengthS: fc.integer({ min: 60, max: 2 * 86_400 }),
    filtered: fc.boolean(),
  });

  it('answer every report as the sessions themselves do', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(session, { minLength: 1, maxLength: 40 }), fc.integer({ min: 3_600, max: 86_400 }), fc.array(report, { minLength: 1, maxLength: 4 }), fc.tuple(fc.boolean(), fc.boolean()), async (sessions, firstNowS, reports, housekeeping) => {
        await db.sql`delete from usage_peaks`;
        await db.sql`delete from usage_peaks_sealed`;
        const second = 1000;
        const at = (s: number) => BASE + s * second;
        const rows = sessions.map((s) => ({ ...s, id: randomUUID(), started: at(s.startS), ended: at(s.startS + s.lengthS) }));
        /** The sessions as the table holds them at `now`: started ones only, running ones unsettled. */
        const write = async (now: number) => {
          await db.sql`delete from sessions`;
          for (const r of rows.filter((r) => r.started <= now)) {
            const settled = r.ended <= now;
            await db.sql`
              insert into sessions (id, account_id, service_id, server_id, state, path, seq, machine_version, snapshot, currency,
                price_per_minute_micros, max_ms, max_charge_micros, reserved_micros, started_at, ended_at, charge_micros,
                end_reason, billable_ms, uses_units, uses_micros, created_at, updated_at)
              values (${r.id}, ${accountIds[r.account]!}, ${serviceIds[r.service]!}, ${serverId},
                ${settled ? 'settled' : 'active'}, ${settled ? 'settled' : 'active.running'}, 3, 4, '{}'::jsonb, 'USD',
                600000, null, 50000000, 0, ${new Date(r.started)}, ${settled ? new Date(r.ended) : null}, ${settled ? 1_000_000 : null},
                ${settled ? 'logoff' : null}, ${settled ? r.ended - r.started : null}, 1, 0, ${new Date(r.started)}, ${new Date(r.started)})`;
          }
        };
        for (const [i, now] of [at(firstNowS), at(86_400 + 36_000)].entries()) {
          await write(now);
          // Housekeeping keeps every settled quarter; a report alone keeps at most a day of them.
          if (housekeeping[i]) await keepUsagePeaks(db.sql, new Date(now));
          for (const r of reports) {
            const filter = r.filtered ? (r.by === 'service' ? { serviceId: serviceIds[0] } : { accountId: accountIds[0] }) : {};
            const query = { period: r.period, by: r.by, timeZone: r.zone, from: new Date(at(r.fromS)), to: new Date(at(r.fromS + r.lengthS)), asOf: new Date(now), ...filter };
            const kept = await usageReport(db.sql, query);
            const counted = await usageReport(db.sql, query, { keptPeaks: false });
            expect(kept, JSON.stringify(query)).toEqual(counted);
          }
        }
        // Quarters were kept (by housekeeping at least), up to a few minutes before the second instant at most.
        const [sealed] = await db.sql<{ upto: Date }[]>`select upto from usage_peaks_sealed`;
        if (housekeeping[1]) expect(sealed!.upto.getTime()).toBeGreaterThan(at(firstNowS) - 5 * MINUTE - 15 * MINUTE);
        if (sealed) expect(sealed.upto.getTime()).toBeLessThanOrEqual(at(86_400 + 36_000) - 5 * MINUTE);
      }),
      { numRuns: runs(40), seed: SEED },
    );
  });
});
