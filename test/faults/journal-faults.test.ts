import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { createTestDatabase } from '../helpers/database.js';
import { expectLedgerBalanced } from '../helpers/ledger.js';
import { startPgFaultProxy, type PgFaultProxy } from '../helpers/pg-fault-proxy.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/**
 * PostgreSQL itself refuses or loses a session's writes (DESIGN rule 13): a trigger that raises,
 * a connection killed before its COMMIT, a COMMIT whose answer is lost. A transition that is not
 * committed lets nothing out to the card company, a session whose writes keep failing is stuck
 * (visible to operators, with its reason), and a restart does not silently revive it.
 */
const JOURNAL = {
  JOURNAL_ATTEMPTS_BEFORE_STUCK: '2',
  JOURNAL_RETRY_BASE_MS: '20',
  JOURNAL_RETRY_MAX_MS: '100',
  LOGOFF_WAIT_MS: '1000',
};

let tollgate: TestTollgate | undefined;
let proxy: PgFaultProxy | undefined;
afterEach(async () => {
  await tollgate?.stop();
  await proxy?.close();
  tollgate = undefined;
  proxy = undefined;
});

async function setUp(options: { throughProxy?: boolean; maxUsers?: number } = {}) {
  const clock = new ManualClock(Date.UTC(2026, 10, 30, 9));
  const db = await createTestDatabase();
  if (options.throughProxy) proxy = await startPgFaultProxy({ target: db.url });
  tollgate = await startTestTollgate({ clock, db, env: { ...JOURNAL, ...(proxy ? { DATABASE_URL: proxy.url } : {}) } });
  const customer = await signUp(tollgate.app);
  // 0.60 a minute: 0.01 a second.
  const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60', maxUsers: options.maxUsers ?? 100 });
  const opened = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '5.00' } });
  expect(opened.statusCode).toBe(201);
  return { clock, customer, serviceId, session: opened.json() as { id: string; authorizationNumber: string } };
}

const ops = (t: TestTollgate) => ({ authorization: `Bearer ${t.adminToken}` });

async function failClosingWritesOf(t: TestTollgate, sessionId: string) {
  await t.db.sql.unsafe(`
    create or replace function refuse_write() returns trigger language plpgsql as $$
    begin raise exception 'injected: writes of this session are refused'; end $$;
    create trigger refuse_closing before update on sessions for each row
      when (new.id = '${sessionId}' and new.state = 'closing') execute function refuse_write();`);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const sessionState = async (t: TestTollgate, id: string) =>
  (await t.db.sql<{ state: string; charge: bigint | null }[]>`select state, charge_micros as charge from sessions where id = ${id}`)[0]!;

describe('a transition PostgreSQL refuses to write', () => {
  it('sends nothing to the card company, shows the session stuck with its reason, and carries on once writes go through', async () => {
    const { clock, customer, session } = await setUp();
    const t = tollgate!;
    clock.advance(42_000);
    await failClosingWritesOf(t, session.id);

    const logoff = await t.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth });
    expect(logoff.statusCode).toBe(503);
    expect(logoff.json().code).toBe('NOT_RECORDED');
    const network = sandbox(t.cardNetworkUrl);
    expect((await network.calls()).capture ?? 0).toBe(0);

    const stuck = (await t.app.inject({ url: '/v1/ops/sessions?stuck=true', headers: ops(t) })).json();
    expect(stuck.sessions.map((s: { id: string }) => s.id)).toEqual([session.id]);
    expect(stuck.sessions[0]).toMatchObject({ stuck: true, path: 'closing.capturing.calling' });
    expect(stuck.sessions[0].stuckReason).toMatch(/^could not record .*injected: writes of this session are refused/);
    const [quarantined] = await t.db.sql<{ kind: string; state: string }[]>`
      select kind, pending_snapshot #>> '{value}' as state from session_quarantine where session_id = ${session.id}`;
    expect(quarantined).toMatchObject({ kind: 'write_failed' });
    expect(JSON.parse(quarantined!.state)).toEqual({ closing: { capturing: 'calling' } });

    // Time goes on while the session waits; it is still charged for the 42 s it was used.
    clock.advance(300_000);
    await t.db.sql`drop trigger refuse_closing on sessions`;
    const settled = await waitFor('the session to settle', async () => {
      const row = await sessionState(t, session.id);
      return row.state === 'settled' ? row : undefined;
    });
    expect(settled.charge).toBe(420_000n);
    expect((await network.captures()).map((c) => c.amount)).toEqual(['0.42']);
    expect(await t.db.sql`select 1 from session_quarantine`).toHaveLength(0);
    await expectLedgerBalanced(t.sql, { settled: 1 });
  });

  it('is held after a restart, not revived from its last written state, and resumes from the state it could not write', async () => {
    const { clock, customer, session } = await setUp();
    clock.advance(42_000);
    await failClosingWritesOf(tollgate!, session.id);
    const logoff = await tollgate!.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth });
    expect(logoff.statusCode).toBe(503);

    clock.advance(600_000);
    tollgate = await tollgate!.restart();
    const t = tollgate;
    // Past its cutoff by now, yet nothing moved: a held session is not run.
    const held = (await t.app.inject({ url: `/v1/ops/sessions/${session.id}`, headers: ops(t) })).json().session;
    expect(held).toMatchObject({ held: true, stuck: true, state: 'active' });
    expect(held.stuckReason).toMatch(/^could not record/);
    const network = sandbox(t.cardNetworkUrl);
    expect((await network.calls()).capture ?? 0).toBe(0);

    // Only retry runs it again; first the fault is mended.
    const terminate = await t.app.inject({ method: 'POST', url: `/v1/ops/sessions/${session.id}/terminate`, headers: ops(t) });
    expect(terminate.statusCode).toBe(409);
    await t.db.sql`drop trigger refuse_closing on sessions`;
    const retry = await t.app.inject({ method: 'POST', url: `/v1/ops/sessions/${session.id}/retry`, headers: ops(t) });
    expect(retry.statusCode).toBe(200);
    const settled = await waitFor('the session to settle', async () => {
      const row = await sessionState(t, session.id);
      return row.state === 'settled' ? row : undefined;
    });
    // The logoff the customer made, not the 500 s limit the stored `active` row would reach.
    expect(settled.charge).toBe(420_000n);
    expect((await network.captures()).map((c) => c.amount)).toEqual(['0.42']);
    const history = await t.db.sql<{ event: string }[]>`select event from session_events where session_id = ${session.id} order by seq`;
    expect(history.map((h) => h.event)).toEqual(['OPEN', 'authorize done', 'RESUMED', 'capture done']);
    await expectLedgerBalanced(t.sql, { settled: 1 });
  });
});

describe('a session held in active after a restart', () => {
  it("keeps its seat, since its customer may still use the service, until it resumes and ends", async () => {
    // The service has one seat, and its one session's row is quarantined while it runs (as a
    // write that kept failing leaves it), with nothing newer to resume from.
    const { clock, customer, serviceId, session } = await setUp({ maxUsers: 1 });
    await tollgate!.db.sql`
      insert into session_quarantine (session_id, kind, reason, pending_snapshot, pending_version, since)
      values (${session.id}, 'write_failed', 'injected', null, null, now())`;
    clock.advance(30_000);
    tollgate = await tollgate!.restart();
    const t = tollgate;
    expect((await t.app.inject({ url: `/v1/ops/sessions/${session.id}`, headers: ops(t) })).json().session).toMatchObject({ held: true, state: 'active' });

    const other = await signUp(t.app);
    const refused = await t.app.inject({ method: 'POST', url: '/v1/sessions', headers: other.auth, payload: { serviceId, maxCharge: '1.00' } });
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({ code: 'SERVICE_AT_CAPACITY' });

    expect((await t.app.inject({ method: 'POST', url: `/v1/ops/sessions/${session.id}/retry`, headers: ops(t) })).statusCode).toBe(200);
    // Running again, it still holds the one seat (and only one).
    const stillRefused = await t.app.inject({ method: 'POST', url: '/v1/sessions', headers: other.auth, payload: { serviceId, maxCharge: '1.00' } });
    expect(stillRefused.json()).toMatchObject({ code: 'SERVICE_AT_CAPACITY' });
    const logoff = await t.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth });
    expect(logoff.json()).toMatchObject({ state: 'settled', charge: '0.30' });
    const opened = await t.app.inject({ method: 'POST', url: '/v1/sessions', headers: other.auth, payload: { serviceId, maxCharge: '1.00' } });
    expect(opened.statusCode).toBe(201);
  });
});

describe('a connection that dies at the commit of a transition', () => {
  it.each(['kill_before_commit', 'lose_commit_answer'] as const)(
    '%s: the write is retried, the capture goes out once after it, and nothing is booked twice',
    async (fault) => {
      const { clock, customer, session } = await setUp({ throughProxy: true });
      const t = tollgate!;
      clock.advance(42_000);
      const fired = proxy!.arm({ fault, match: session.id }).fired;
      const logoff = await t.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth });
      await fired;
      expect(logoff.statusCode).toBe(200);
      expect(logoff.json()).toMatchObject({ state: 'settled', charge: '0.42' });
      expect((await sandbox(t.cardNetworkUrl).captures()).map((c) => c.amount)).toEqual(['0.42']);
      const lines = await t.db.sql<{ seq: number; to: string }[]>`
        select seq, to_state as to from session_events where session_id = ${session.id} order by seq`;
      expect(lines.map((l) => l.to)).toEqual(['authorizing.requesting', 'active.running', 'closing.capturing.calling', 'settled']);
      const [account] = await t.db.sql<{ reserved: bigint }[]>`select reserved_micros as reserved from accounts where id = ${customer.account.id}`;
      expect(account!.reserved).toBe(0n);
      await expectLedgerBalanced(t.sql, { settled: 1 });
    },
  );
});

describe('a charge slip written after the statement of its period was made', () => {
  it('goes on the next statement, where the postpaid account is charged for it, and on no other', async () => {
    // Two minutes before November's statements are due.
    const clock = new ManualClock(Date.UTC(2026, 10, 30, 23, 58));
    const db = await createTestDatabase();
    tollgate = await startTestTollgate({ clock, db, env: JOURNAL });
    const t = tollgate;
    const customer = await signUp(t.app);
    const trusted = await t.app.inject({ method: 'POST', url: `/v1/ops/accounts/${customer.account.id}/payment-mode`, headers: ops(t), payload: { paymentMode: 'postpaid', reason: 'billed monthly' } });
    expect(trusted.statusCode, trusted.body).toBe(200);
    const { serviceId } = await createService(t.app, t.adminToken, { pricePerMinute: '0.60' });
    const opened = await t.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '5.00' } });
    expect(opened.statusCode, opened.body).toBe(201);
    const sessionId = opened.json().id as string;
    clock.advance(30_000);
    // PostgreSQL refuses the settled transition (and its charge slip, dated 23:58:30) for a while.
    await t.db.sql.unsafe(`
      create or replace function refuse_write() returns trigger language plpgsql as $$
      begin raise exception 'injected: writes of this session are refused'; end $$;
      create trigger refuse_settled before update on sessions for each row
        when (new.id = '${sessionId}' and new.state = 'settled') execute function refuse_write();`);
    await t.app.inject({ method: 'POST', url: `/v1/sessions/${sessionId}/logoff`, headers: customer.auth });
    // Read as operators do: a month on, the customer's token has long expired.
    const statements = async () => (await t.app.inject({ url: `/v1/ops/accounts/${customer.account.id}/statements`, headers: ops(t) })).json().statements as any[];
    clock.set(Date.UTC(2026, 11, 1));
    const [november] = await waitFor('November’s statement', async () => ((await statements()).length === 1 ? statements() : undefined));
    expect(november).toMatchObject({ periodStart: '2026-11-01T00:00:00.000Z', sessions: [], totals: expect.objectContaining({ due: '0.00' }) });

    await t.db.sql`drop trigger refuse_settled on sessions`;
    await waitFor('the session to settle', async () => ((await sessionState(t, sessionId)).state === 'settled' ? true : undefined));
    clock.set(Date.UTC(2027, 0, 1));
    const all = await waitFor('December’s statement', async () => ((await statements()).length === 2 ? statements() : undefined));
    const december = all.find((s) => s.periodStart === '2026-12-01T00:00:00.000Z');
    expect(december.sessions.map((l: { sessionId: string; charge: string }) => [l.sessionId, l.charge])).toEqual([[sessionId, '0.30']]);
    expect(december.totals.due).toBe('0.30');
    expect(all.flatMap((s) => s.sessions).filter((l: { sessionId: string }) => l.sessionId === sessionId)).toHaveLength(1);

    // Migration 0016 attaches the lines of statements made before it from what they listed, not by
    // date: run on these rows with their links undone, it finds the late slip where it was listed.
    const attached = async () => t.db.sql<{ id: string; statementId: string | null }[]>`select id, statement_id as "statementId" from charge_slips order by id`;
    const before = await attached();
    expect(before.find((slip) => slip.statementId === december.id)).toBeDefined();
    const migration = readFileSync(new URL('../../src/db/migrations/0016_statement_lines_attached.sql', import.meta.url), 'utf8');
    await t.db.sql`update charge_slips set statement_id = null`;
    await t.db.sql.unsafe(migration.slice(migration.indexOf('update charge_slips')));
    expect(await attached()).toEqual(before);
  });
});
