import { accountDeadlineOf, accountStateOf, type AccountEvent, type AccountSnapshot, type AccountTag } from '../../machines/account/index.js';
import type { Clock } from '../clock.js';
import type { Sql, TransactionSql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';
import { errors } from '../errors.js';
import type { StoredEvent } from '../events/event-store.js';
import type { Logger } from '../logger.js';
import { DeadlineScheduler } from '../time/deadline-scheduler.js';
import { unpaidStatements } from '../statements/statement-sql.js';
import { accountActorOf, lockAccountState, readAccountState, writeAccountChange, type AccountStateRow } from './account-rows.js';
import { planRefunds } from './refunds.js';

export interface AccountStatesDeps {
  sql: Sql;
  clock: Clock;
  log: Logger;
  /** Told of each change's domain events once committed (the event bus). */
  published: (events: readonly StoredEvent[]) => void;
  /** Told of the tokens a closed account lost, so caches forget them at once. */
  tokensRevoked: (hashes: Buffer[]) => void;
  /** Ends (and so settles) every unsettled session of the account; the sessions' own machines decide how. */
  endSessions: (accountId: string) => Promise<void>;
  /** Told of an account closed with refunds of its balance planned, to send them to the card company now. */
  refundsPlanned?: (accountId: string) => Promise<unknown>;
}

/** A change the account's machine did not take, and what it said instead. */
export type Refusal = { taken: false; snapshot: AccountSnapshot; row: AccountStateRow };
export type Taken = { taken: true; snapshot: AccountSnapshot };

/**
 * Hosts the account machine. An account has no calls in flight and waits on nothing but its
 * suspension's end, so its actor lives for one change: restored from its row under the row's
 * lock, sent the event, and written back (row, history, domain event) in that transaction. Two
 * changes of one account, in this process or another, take turns at the lock (DESIGN rule 8).
 * After the commit, an account whose state ends sessions has them ended, and a suspension's end
 * is scheduled, as a session's deadline is.
 */
export class AccountStates {
  private readonly deadlines: DeadlineScheduler;

  constructor(private readonly deps: AccountStatesDeps) {
    this.deadlines = new DeadlineScheduler(deps.clock, (accountId, at) => void this.resumeAtEnd(accountId, at));
  }

  /**
   * Sends one event, built from the row as it is under the lock (CLOSE counts the unsettled
   * sessions there). Answers whether the machine took it. `build` has the account's row and state
   * under the lock, and may read more in the same transaction (`tx`), refuse by throwing, or ask
   * for no change (null). `taken`, if given, writes more of a change taken in its transaction (an
   * operator's audit line, with the state it found under the lock).
   */
  async change(
    accountId: string,
    build: (row: AccountStateRow, tx: TransactionSql, state: AccountSnapshot) => AccountEvent | null | Promise<AccountEvent | null>,
    taken?: (tx: TransactionSql, before: AccountSnapshot, after: AccountSnapshot) => Promise<void>,
  ): Promise<Taken | Refusal> {
    let revoked: Buffer[] = [];
    let published: StoredEvent[] = [];
    let refunding = false;
    const outcome = await transaction(this.deps.sql, async (tx): Promise<Taken | Refusal> => {
      const row = await lockAccountState(tx, accountId);
      if (!row) throw errors.accountNotFound();
      const actor = accountActorOf(row);
      const before = actor.getSnapshot();
      const event = await build(row, tx, before);
      if (event === null || !before.can(event)) {
        actor.stop();
        return { taken: false, snapshot: before, row };
      }
      actor.send(event);
      const after = actor.getSnapshot();
      const persisted = actor.getPersistedSnapshot();
      actor.stop();
      ({ events: published, revokedTokenHashes: revoked } = await writeAccountChange(tx, { row, before, after, persisted, event }));
      // A closed account keeps no balance: it leaves as refunds to the card in the close's own
      // commit, so no close can be had without them (the card calls follow, and are re-driven).
      if (after.status === 'done') refunding = (await planRefunds(tx, { accountId, at: event.at, by: event.by, log: this.deps.log })).length > 0;
      await taken?.(tx, before, after);
      return { taken: true, snapshot: after };
    });
    if (!outcome.taken) return outcome;
    if (revoked.length > 0) this.deps.tokensRevoked(revoked);
    this.deps.published(published);
    this.arm(accountId, outcome.snapshot);
    if (outcome.snapshot.hasTag('ends_sessions')) await this.endSessions(accountId);
    if (refunding) await this.refund(accountId);
    return outcome;
  }

  /** The account's state as its row holds it. */
  async snapshotOf(accountId: string): Promise<AccountSnapshot | null> {
    const row = await readAccountState(this.deps.sql, accountId);
    if (!row) return null;
    const actor = accountActorOf(row);
    const snapshot = actor.getSnapshot();
    actor.stop();
    return snapshot;
  }

  /** Refuses unless the account's state has the tag (a closed account changes nothing). */
  async require(accountId: string, tag: AccountTag): Promise<void> {
    const snapshot = await this.snapshotOf(accountId);
    if (!snapshot) throw errors.accountNotFound();
    if (!snapshot.hasTag(tag)) throw errors.accountNotActive(accountStateOf(snapshot));
  }

  /**
   * At start-up: suspensions' ends are scheduled again (those past fire at once), and sessions
   * that outlived their account's suspension or closing (a crash between the change and their
   * end) are ended now.
   */
  async start(): Promise<void> {
    const { sql } = this.deps;
    const resuming = await sql<{ id: string; resumesAt: Date }[]>`
      select id, resumes_at as "resumesAt" from accounts where resumes_at is not null`;
    for (const row of resuming) this.deadlines.schedule(row.id, row.resumesAt.getTime());
    const ending = await sql<{ id: string }[]>`
      select id from accounts where not may_open and open_sessions > 0`;
    for (const row of ending) await this.endSessions(row.id);
  }

  stop(): void {
    this.deadlines.close();
  }

  private arm(accountId: string, snapshot: AccountSnapshot): void {
    const deadline = accountDeadlineOf(snapshot);
    if (deadline) this.deadlines.schedule(accountId, deadline.at);
    else this.deadlines.cancel(accountId);
  }

  private async endSessions(accountId: string): Promise<void> {
    await this.deps.endSessions(accountId).catch((error: unknown) =>
      this.deps.log.warn({ accountId, err: String(error) }, 'could not end the sessions of a suspended or closed account'),
    );
  }

  /** Best effort: a refund not answered now stays pending and is driven again by the housekeeping. */
  private async refund(accountId: string): Promise<void> {
    await this.deps.refundsPlanned?.(accountId).catch((error: unknown) =>
      this.deps.log.warn({ accountId, err: String(error) }, 'could not send a closed account’s refunds yet'),
    );
  }

  private async resumeAtEnd(accountId: string, at: number): Promise<void> {
    const by = { kind: 'system' as const, id: null, name: 'tollgate' };
    const resume: AccountEvent = { type: 'RESUME', at, by, reason: 'suspension ended' };
    // A statement the card company declined keeps the account suspended, whatever suspension
    // overlapped it, until an operator resumes it. Only a resume that is due becomes that
    // suspension: a late timer (another node's, or one an operator's resume beat) is refused as before.
    const event = async (_row: AccountStateRow, tx: TransactionSql, state: AccountSnapshot): Promise<AccountEvent> => {
      if (!state.can(resume)) return resume;
      const unpaid = await unpaidStatements(tx, accountId);
      return unpaid && unpaid.declinedMicros > 0n
        ? { type: 'SUSPEND', at, by, reason: 'the suspension ended, but the charge of a statement was declined; a new card is charged for it', until: null }
        : resume;
    };
    await this.change(accountId, event).catch(
      (error: unknown) => this.deps.log.warn({ accountId, err: String(error) }, 'could not resume an account at its suspension’s end'),
    );
  }
}
