import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { signUpBody } from '../helpers/customers.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { type ServerProcess, serverProcessIn } from './server-process.js';

/**
 * The statement job in the real server, SIGKILLed while it produces a few hundred statements,
 * then restarted: every account gets its period's statement once, announced once, and each adds
 * up to the captures and top-ups of its period.
 */
const ADMIN = 'statements-crash-operator-token-0123456789';
const ACCOUNTS = 300;

let server: ServerProcess | undefined;
let db: TestDatabase | undefined;
let dataDir: string | undefined;
afterAll(async () => {
  await server?.destroy();
  await db?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('statements across a SIGKILL', () => {
  it('are produced once each, and add up to the period’s captures and top-ups', async () => {
    db = await createTestDatabase();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'tollgate-statements-'));
    server = await serverProcessIn(dataDir, {
      bootstrapToken: ADMIN,
      databaseUrl: db.url,
      env: { LOG_LEVEL: 'warn', TOLLGATE_SEED_DEMO: 'false', STATEMENT_SWEEP_MS: '50', LOGOFF_WAIT_MS: '5000' },
    });
    await server.start();
    const must = async (method: string, url: string, options: { token?: string; body?: unknown } = {}) => {
      const answer = await server!.api(method, url, options);
      if (answer.kind !== 'answer' || answer.status >= 300) throw new Error(`${method} ${url}: ${JSON.stringify(answer)}`);
      return answer.body;
    };
    const created = await must('POST', '/v1/servers', { token: server.operatorKey, body: { name: 'statements', maxUsers: 100 } });
    // 60.00 a minute: 1.00 a second.
    const service = await must('POST', '/v1/services', { token: server.operatorKey, body: { name: 'statements', serverId: created.id, pricePerMinute: '60.00', maxUsers: 100 } });
    const customers = await Promise.all(Array.from({ length: 3 }, () => must('POST', '/v1/accounts', { body: signUpBody({ outstandingLimit: '100.00' }) })));
    await must('PATCH', '/v1/account', { token: customers[2].token, body: { paymentMode: 'prepaid' } });
    await must('POST', '/v1/account/top-ups', { token: customers[2].token, body: { amount: '25.00' } });
    await must('POST', '/v1/account/top-ups', { token: customers[2].token, body: { amount: '5.00' } });
    await Promise.all(
      customers.map(async (customer) => {
        for (let i = 0; i < 2; i++) {
          const opened = await must('POST', '/v1/sessions', { token: customer.token, body: { serviceId: service.id, maxCharge: '10.00' } });
          await sleep(1100 + i * 1000);
          await must('POST', `/v1/sessions/${opened.id}/logoff`, { token: customer.token });
        }
      }),
    );
    // Many more accounts, made as sign-up makes them (their rows copied), so the job has work to be cut in the middle of.
    await db.sql`
      insert into accounts (id, name, email, email_normalized, password_hash, estimated_storage_gb, estimated_processing_hours,
        card_token, card_brand, card_last4, card_exp_month, card_exp_year, currency, outstanding_limit_micros, created_at,
        state, may_open, machine_version, snapshot, seq, statement_from, statement_due_at)
      select gen_random_uuid(), name, 'copy-' || n || '-' || email, 'copy-' || n || '-' || email_normalized, password_hash,
        estimated_storage_gb, estimated_processing_hours, card_token, card_brand, card_last4, card_exp_month, card_exp_year,
        currency, outstanding_limit_micros, created_at, state, may_open, machine_version, snapshot, seq, statement_from, statement_due_at
      from accounts, generate_series(1, ${ACCOUNTS - customers.length}) as n
      where id = ${customers[0].account.id}`;
    // Every account's period ends in a moment: from a day ago until then, so it holds everything above.
    await db.sql`update accounts set statement_from = now() - interval '1 day', statement_due_at = now() + interval '1 second'`;
    const produced = async () => (await db!.sql<{ n: number }[]>`select count(*)::int as n from statements`)[0]!.n;
    await expect.poll(produced, { timeout: 20_000, interval: 5 }).toBeGreaterThan(0);
    await server.kill('server');
    const atKill = await produced();
    await server.start();
    await expect.poll(produced, { timeout: 60_000, interval: 100 }).toBe(ACCOUNTS);
    // Cut in the middle, not before or after (if the machine was too fast, the rest still holds).
    if (atKill === ACCOUNTS) console.warn('the job had finished before the kill');

    const twice = await db.sql`select account_id from statements group by account_id, period_start having count(*) > 1`;
    expect(twice).toEqual([]);
    const announced = await db.sql<{ n: number }[]>`
      select count(*)::int as n from statements s
      where (select count(*) from domain_events e where e.type = 'statement.ready' and e.payload ->> 'statementId' = s.id::text) = 1`;
    expect(announced[0]!.n).toBe(ACCOUNTS);
    const [moved] = await db.sql<{ n: number }[]>`select count(*)::int as n from accounts where statement_due_at > now()`;
    expect(moved!.n).toBe(ACCOUNTS);

    for (const customer of customers) {
      const [statement] = await db.sql<{ charges: bigint; topUps: bigint; start: Date; end: Date; lines: unknown[] }[]>`
        select charges_micros as charges, top_ups_micros as "topUps", period_start as start, period_end as end, lines
        from statements where account_id = ${customer.account.id}`;
      const [captured] = await db.sql<{ total: bigint; n: number }[]>`
        select coalesce(sum(c.amount_micros), 0)::int8 as total, count(*)::int as n from charge_slips c join sessions s on s.id = c.session_id
        where s.account_id = ${customer.account.id} and c.created_at >= ${statement!.start} and c.created_at < ${statement!.end}`;
      const [toppedUp] = await db.sql<{ total: bigint }[]>`
        select coalesce(sum(amount_micros), 0)::int8 as total from top_ups
        where account_id = ${customer.account.id} and state = 'charged' and settled_at >= ${statement!.start} and settled_at < ${statement!.end}`;
      expect(captured!.n).toBe(2);
      expect(statement!.charges).toBe(captured!.total);
      expect(statement!.charges).toBeGreaterThanOrEqual(3_000_000n);
      expect(statement!.topUps).toBe(toppedUp!.total);
    }
    expect((await db.sql`select top_ups_micros from statements where account_id = ${customers[2].account.id}`)[0]!.top_ups_micros).toBe(30_000_000n);
  }, 180_000);
});
