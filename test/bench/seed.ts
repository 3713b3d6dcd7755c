import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cutoffOf } from '../../src/billing/charge.js';
import { flatTariff } from '../../src/billing/tariff.js';
import type { Sql } from '../../src/db/sql.js';
import { SESSION_MACHINE_VERSION } from '../../machines/session/index.js';
import { pool, say } from './util.js';

/**
 * Writes unsettled sessions straight into the database, as a tollgate process that crashed
 * while holding them would have left them: `active.running` rows whose snapshots are valid
 * version-2 snapshots (the shape of test/machines/fixtures/session-v2-active-running.json with
 * fresh ids, this run's instants and cutoffs hours away), each with the account reservation
 * and the hold ledger row an authorization would have written. Generated inside PostgreSQL
 * (generate_series), in batches, so 100k rows take seconds.
 */
// A resting session of the machine version this build writes: what a restart finds.
const FIXTURE = new URL(`../machines/fixtures/session-v${SESSION_MACHINE_VERSION}-active.running.json`, import.meta.url);
const DAY_MS = 86_400_000;

export interface SeedOptions {
  count: number;
  accountIds: string[];
  serviceId: string;
  serverId: string;
  pricePerMinuteMicros: bigint;
  maxChargeMicros: bigint;
  /** Retry policy and lead times as the running config gives them to new sessions. */
  retry: { baseMs: number; maxMs: number };
  renewBeforeMs: number;
  batch?: number;
}

/** The terms of every seeded session: a 0.01 a minute service, 5.00 limits, the default policies. */
export const BULK_TERMS = {
  pricePerMinuteMicros: 10_000n,
  maxChargeMicros: 5_000_000n,
  retry: { baseMs: 1000, maxMs: 60_000 },
  renewBeforeMs: 86_400_000,
} as const satisfies Partial<SeedOptions>;

/** A bench customer's sign-up body (POST /v1/accounts): an approving test card, a high limit. */
export function benchCustomer(i: number, unique: string) {
  return {
    name: `Bench Customer ${i}`,
    email: `bench-${i}-${unique}@example.com`,
    password: 'analytical engine',
    card: { number: '4242424242424242', expMonth: 12, expYear: 2031, cvc: '123' },
    estimatedStorageGb: 20,
    estimatedProcessingHours: 3.5,
    outstandingLimit: '100000.00',
  };
}

/** Signs up `count` bench customers over HTTP at `url`, eight at a time; answers their Authorization headers. */
export async function signUpBenchCustomers(url: string, count: number): Promise<string[]> {
  return pool(count, 8, async (i) => {
    const response = await fetch(`${url}/v1/accounts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(benchCustomer(i, randomUUID())),
    });
    if (response.status !== 201) throw new Error(`sign-up: ${response.status} ${await response.text()}`);
    return `Bearer ${((await response.json()) as { token: string }).token}`;
  });
}

/** Customers for seeded sessions: rows only (they never reach the card network during the run). */
export async function seedAccounts(sql: Sql, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, () => randomUUID());
  const now = new Date();
  await sql`
    insert into accounts (id, name, email, email_normalized, password_hash, estimated_storage_gb,
      estimated_processing_hours, card_token, card_brand, card_last4, card_exp_month, card_exp_year, currency,
      outstanding_limit_micros, created_at, statement_from, statement_due_at)
    select id, 'Seeded Customer', 'seeded-' || id || '@example.com', 'seeded-' || id || '@example.com', 'not-a-hash',
      20, 3.5, 'tok_seeded', 'visa', '4242', 12, 2031, 'USD', 1000000000000000, ${now},
      date_trunc('month', ${now}::timestamptz, 'UTC'), date_trunc('month', ${now}::timestamptz, 'UTC') + interval '1 month'
    from unnest(${ids}::uuid[]) as id`;
  return ids;
}

export async function seedUnsettled(sql: Sql, options: SeedOptions): Promise<{ seconds: number; cutoffAfterMs: number }> {
  const started = performance.now();
  const template = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { context: Record<string, unknown> };
  const { afterMs } = cutoffOf({
    tariff: flatTariff(options.pricePerMinuteMicros),
    maxChargeMicros: options.maxChargeMicros,
    maxMs: null,
    startedAt: 0,
    resumes: [],
    usesMicros: 0n,
  });
  const holdLifetime = 7 * DAY_MS;
  const renewLead = Math.min(options.renewBeforeMs, Math.floor(holdLifetime / 2));
  const base = Date.now();
  const batch = options.batch ?? 25_000;
  const k = options.accountIds.length;
  for (let from = 0; from < options.count; from += batch) {
    const to = Math.min(options.count, from + batch) - 1;
    await sql.begin(async (tx) => {
      await tx`
        with g as (
          select i, gen_random_uuid() as id, (${options.accountIds}::uuid[])[1 + (i % ${k})] as account_id,
            (${base}::int8 - (i % 60000)) as started,
            upper(substr(md5(i::text || ${String(base)}), 1, 6)) as authorization_number
          from generate_series(${from}::int, ${to}::int) as i
        ), s as (
          insert into sessions (id, account_id, service_id, server_id, state, machine_version, snapshot, currency,
            price_per_minute_micros, max_ms, max_charge_micros, reserved_micros, authorized_micros, authorization_number,
            started_at, cutoff_at, created_at, updated_at)
          select g.id, g.account_id, ${options.serviceId}, ${options.serverId}, 'active', ${SESSION_MACHINE_VERSION},
            jsonb_set(${tx.json(template as never)}::jsonb, '{context}',
              (${tx.json(template as never)}::jsonb -> 'context') || jsonb_build_object(
                'sessionId', g.id, 'accountId', g.account_id, 'serviceId', ${options.serviceId}::text,
                'serverId', ${options.serverId}::text, 'currency', 'USD',
                'tariff', jsonb_set(${tx.json(template as never)}::jsonb #> '{context,tariff}', '{pricePerMinuteMicros}',
                  to_jsonb(${options.pricePerMinuteMicros.toString()}::text)),
                'maxChargeMicros', ${options.maxChargeMicros.toString()}::text, 'maxMs', null,
                'createdAt', g.started, 'startedAt', g.started,
                'cutoffAt', g.started + ${afterMs}, 'cutoffReason', 'charge_limit',
                'retry', jsonb_build_object('baseMs', ${options.retry.baseMs}::int, 'maxMs', ${options.retry.maxMs}::int),
                'graceMs', 0, 'renewBeforeMs', ${options.renewBeforeMs}::int8,
                'renewAt', g.started + ${holdLifetime - renewLead}::int8,
                'hold', jsonb_build_object('holdId', 'hold_seeded_' || g.id, 'authorizationNumber', g.authorization_number,
                  'amountMicros', ${options.maxChargeMicros.toString()}::text, 'authorizedAt', g.started,
                  'expiresAt', g.started + ${holdLifetime}::int8))),
            'USD', ${options.pricePerMinuteMicros}, null, ${options.maxChargeMicros}, ${options.maxChargeMicros},
            ${options.maxChargeMicros}, g.authorization_number, to_timestamp(g.started / 1000.0),
            to_timestamp((g.started + ${afterMs}) / 1000.0), to_timestamp(g.started / 1000.0), now()
          from g
          returning id, account_id, authorization_number, started_at
        ), l as (
          insert into ledger_entries (entry_key, session_id, kind, debit, credit, amount_micros, authorization_number, at)
          select s.id || ':hold:hold_seeded_' || s.id || ':' || ${options.maxChargeMicros.toString()}, s.id, 'hold',
            'card_hold', 'card_available', ${options.maxChargeMicros}, s.authorization_number, s.started_at
          from s
          returning 1
        )
        update accounts a set reserved_micros = a.reserved_micros + r.amount
        from (select account_id, count(*) * ${options.maxChargeMicros}::int8 as amount from s group by account_id) r
        where a.id = r.account_id`;
    });
    say(`  seeded ${to + 1} / ${options.count} unsettled sessions`);
  }
  await sql`analyze sessions`;
  return { seconds: (performance.now() - started) / 1000, cutoffAfterMs: afterMs };
}
