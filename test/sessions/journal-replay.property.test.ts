import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveSnapshot, SESSION_MACHINE_VERSION, statePathOf, type SessionSnapshot } from '../../machines/session/index.js';
import { ManualClock } from '../../src/clock.js';
import type { TransactionSql } from '../../src/db/sql.js';
import { transaction } from '../../src/db/transaction.js';
import { insertOpening } from '../../src/sessions/opening-sql.js';
import { reserveShare } from '../../src/sessions/reservations-sql.js';
import { factsOf, transitionRecordOf } from '../../src/sessions/transition-record.js';
import { writeTransition } from '../../src/sessions/transition-sql.js';
import { createService, signUp } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { ScriptedCardCompany, hold, input, START, startSession } from '../machines/session-harness.js';

/**
 * Every ledger and reservation effect of a transition is idempotent: a batch of transitions
 * written again (its commit's answer lost, then retried), or an older batch replayed after newer
 * ones, leaves the books exactly as writing each transition once does.
 */
let tollgate: TestTollgate;
let ids: { serviceId: string; serverId: string };

beforeAll(async () => {
  tollgate = await startTestTollgate();
  ids = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' });
});
afterAll(async () => {
  await tollgate.stop();
});

type Step = 'extend' | 'extendDeclined' | 'extendBeyondLimit' | 'renew' | 'wait';
type Write = { kind: 'transition'; write: (tx: TransactionSql) => Promise<unknown> } | { kind: 'reserve'; write: (tx: TransactionSql) => Promise<unknown> };

/** A session's life, as the writes a journal and its effects would make, in order. */
async function lifeOf(accountId: string, steps: Step[], end: 'logoff' | 'cutoff', captureFailures: number) {
  const clock = new ManualClock(START);
  const card = new ScriptedCardCompany(clock);
  card.authorize = { kind: 'held', hold: { ...hold(), amountMicros: '2000000' }, at: START };
  card.captures = Array.from({ length: captureFailures }, () => ({ kind: 'unanswered' as const, detail: 'timeout', at: 0 }));
  const sessionId = randomUUID();
  const sessionInput = input({ sessionId, accountId, serviceId: ids.serviceId, serverId: ids.serverId, maxChargeMicros: '2000000', renewBeforeMs: 86_400_000 });
  const writes: Write[] = [];
  const session = startSession({ clock, card, input: sessionInput });
  // The first snapshot is the opening's row; every later one a journalled transition.
  const initial = session.persisted();
  let previous = factsOf(resolveSnapshot(initial));
  let from = statePathOf(initial.value);
  let seq = 0;
  let limit = 2_000_000n;
  session.actor.subscribe((snapshot: SessionSnapshot) => {
    const path = statePathOf(snapshot.value);
    if (path === from && snapshot.context === previous.context) return;
    if (path === 'active.extending.incrementing' && from === 'active.extending.reserving') {
      // The reservation the machine's effect makes between the two transitions.
      const toMicros = snapshot.context.extension!.toMicros;
      writes.push({ kind: 'reserve', write: (tx) => reserveShare(tx, { sessionId, accountId, toMicros, attempt: 0 }) });
    }
    const record = transitionRecordOf({ snapshot, persisted: session.actor.getPersistedSnapshot(), previous, from, seq: ++seq, event: 'E', at: clock.now() });
    writes.push({ kind: 'transition', write: (tx) => writeTransition(tx, record) });
    previous = factsOf(snapshot);
    from = path;
  });
  await session.settle();
  for (const step of steps) {
    if (step === 'wait') await session.advance(30_000);
    if (step === 'renew') card.renewals.push({ kind: 'held', hold: { ...hold(), holdId: `hold_${randomUUID()}`, amountMicros: limit.toString() }, staleHoldId: null, at: 0 });
    if (step === 'renew') session.actor.send({ type: 'RENEW_HOLD', at: clock.now() });
    if (step.startsWith('extend')) {
      if (step === 'extendDeclined') card.increments.push({ kind: 'declined', reason: 'insufficient_funds', at: 0 });
      if (step === 'extendBeyondLimit') card.reservations.push({ kind: 'declined', reason: 'outstanding_limit_reached', at: 0 });
      else card.reservations.push({ kind: 'reserved', at: 0 });
      const to = limit + 1_000_000n;
      session.actor.send({ type: 'EXTEND', at: clock.now(), maxChargeMicros: to.toString() });
      if (step === 'extend') limit = to;
    }
    await session.settle();
  }
  if (end === 'logoff') session.actor.send({ type: 'LOGOFF', at: clock.now() });
  else await session.advance(3_600_000);
  for (let i = 0; i <= captureFailures; i++) await session.advance(10_000);
  return { sessionId, initial, writes, final: session.actor.getSnapshot() };
}

/** The books of one session and its account, as a customer or an auditor reads them. */
async function booksOf(sessionId: string, accountId: string) {
  const sql = tollgate.db.sql;
  const [row] = await sql`select state, path, seq, charge_micros, reserved_micros, end_reason from sessions where id = ${sessionId}`;
  const [account] = await sql`select reserved_micros from accounts where id = ${accountId}`;
  const ledger = await sql`
    select kind, debit, credit, amount_micros from ledger_entries where session_id = ${sessionId} order by kind, amount_micros, debit`;
  const history = await sql`select seq, to_state from session_events where session_id = ${sessionId} order by seq`;
  const events = await sql`select type from domain_events where stream = ${`session:${sessionId}`} order by position`;
  const slips = await sql`select amount_micros from charge_slips where session_id = ${sessionId}`;
  return { row, account, ledger, history, events, slips };
}

async function openRow(accountId: string, initial: SessionSnapshot) {
  await insertOpening(tollgate.db.sql, {
    context: initial.context,
    path: statePathOf(initial.value),
    snapshot: initial,
    machineVersion: SESSION_MACHINE_VERSION,
    service: { name: 'replayed' },
    server: { name: 'replayed' },
    maxOpenSessions: 1000,
  });
}

const steps = fc.array(fc.constantFrom<Step>('extend', 'extendDeclined', 'extendBeyondLimit', 'renew', 'wait'), { maxLength: 6 });

describe('the journal written twice', () => {
  it('books the same whichever batches are written again, and in whatever order the replays come', async () => {
    await fc.assert(
      fc.asyncProperty(
        steps,
        fc.constantFrom<'logoff' | 'cutoff'>('logoff', 'cutoff'),
        fc.nat({ max: 2 }),
        fc.array(fc.nat({ max: 7 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.tuple(fc.nat(), fc.boolean()), { maxLength: 6 }),
        async (lifeSteps, end, captureFailures, cuts, replays) => {
          const once = await signUp(tollgate.app, { outstandingLimit: '50.00' });
          const twice = await signUp(tollgate.app, { outstandingLimit: '50.00' });
          const reference = await lifeOf(once.account.id, lifeSteps, end, captureFailures);
          const replayed = await lifeOf(twice.account.id, lifeSteps, end, captureFailures);
          expect(replayed.writes.map((w) => w.kind)).toEqual(reference.writes.map((w) => w.kind));

          await openRow(once.account.id, reference.initial);
          for (const w of reference.writes) await transaction(tollgate.db.sql, (tx) => w.write(tx));

          // The same writes cut into batches; after each, some batch already written goes again.
          await openRow(twice.account.id, replayed.initial);
          const batches: Write[][] = [];
          let at = 0;
          for (const cut of cuts) {
            if (at >= replayed.writes.length) break;
            batches.push(replayed.writes.slice(at, at + cut + 1));
            at += cut + 1;
          }
          if (at < replayed.writes.length) batches.push(replayed.writes.slice(at));
          // A replayed batch is the journal's transaction again; a reservation is its effect's own
          // transaction, made once between two transitions, and never replayed with them.
          const apply = (batch: Write[]) =>
            transaction(tollgate.db.sql, async (tx) => {
              for (const w of batch) if (w.kind === 'transition') await w.write(tx);
            });
          for (let i = 0; i < batches.length; i++) {
            for (const w of batches[i]!) await transaction(tollgate.db.sql, (tx) => w.write(tx));
            for (const [pick, same] of replays) {
              const again = same ? i : pick % (i + 1);
              await apply(batches[again]!);
            }
          }

          const a = await booksOf(reference.sessionId, once.account.id);
          const b = await booksOf(replayed.sessionId, twice.account.id);
          expect(b).toEqual(a);
          expect(replayed.final.value).toBe('settled');
          expect(a.row!.state).toBe('settled');
          expect(a.account!.reserved_micros).toBe(0n);
        },
      ),
      { numRuns: 25 },
    );
  });
});
