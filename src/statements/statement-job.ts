import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';
import type { StoredEvent } from '../events/event-store.js';
import type { Logger } from '../logger.js';
import { DeadlineScheduler } from '../time/deadline-scheduler.js';
import type { CardGateway } from '../payments/gateway.js';
import { periodContaining } from './periods.js';
import { chargeStatements } from './statement-charges.js';
import { dueAccounts, nextDue, produceStatement } from './statement-sql.js';

const BATCH = 100;

/**
 * Produces statements as periods end, then charges the card for what postpaid sessions owe. The earliest end of any account's period is a deadline,
 * scheduled once (DESIGN rule 5) and recomputed after each run; a sweep every `sweepMs` also
 * runs, so a period changed behind this process's back (another node, an operator's SQL) is not
 * missed. Each statement is one transaction (claim, lines, insert, event, next period): a crash
 * leaves it unproduced, and the next run, here or after a restart, produces it. The unique
 * (account, period) constraint makes a second one impossible whoever tries.
 */
export class StatementJob {
  private readonly deadline: DeadlineScheduler;
  private sweeping: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;
  private again = false;
  private stopped = false;

  constructor(
    private readonly deps: {
      sql: Sql;
      clock: Clock;
      log: Logger;
      /** The card company, for what postpaid sessions owe (statement-charges.ts). */
      gateway: CardGateway;
      published: (events: readonly StoredEvent[]) => void;
      sweepMs: number;
    },
  ) {
    this.deadline = new DeadlineScheduler(deps.clock, () => void this.run());
  }

  async start(): Promise<void> {
    await this.run();
    if (this.deps.sweepMs > 0) this.sweeping = setInterval(() => void this.run(), this.deps.sweepMs).unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweeping) clearInterval(this.sweeping);
    this.deadline.close();
    await this.running;
  }

  /**
   * Produces every statement due now and charges what they owe; one run at a time. A run asked for
   * while one is under way follows it (that one may have read the charges to make already). Answers
   * how many were produced.
   */
  run(): Promise<number> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.produceDue()
      .catch((error: unknown) => {
        this.deps.log.warn({ err: String(error) }, 'statements not produced; tried again at the next run');
        return 0;
      })
      .finally(() => {
        this.running = null;
        if (this.again && !this.stopped) {
          this.again = false;
          void this.run();
        }
      });
    return this.running;
  }

  private async produceDue(): Promise<number> {
    const { sql, clock } = this.deps;
    let produced = 0;
    for (;;) {
      if (this.stopped) return produced;
      const now = clock.now();
      const due = await dueAccounts(sql, now, BATCH);
      let moved = 0;
      for (const accountId of due) {
        const result = await transaction(sql, (tx) => produceStatement(tx, accountId, now));
        if (!result) continue;
        moved++;
        if (result.statement) produced++;
        this.deps.published(result.events);
      }
      // An account many periods behind comes back until it is current; one claimed elsewhere is left to its claimer.
      if (moved === 0) break;
    }
    await chargeStatements(this.deps);
    // An account made from now on is due no earlier than the end of this month (its first period
    // is this month), so that bounds the next deadline for accounts this query cannot yet see.
    const firstOfNew = periodContaining('month', clock.now()).end;
    const next = Math.min((await nextDue(sql)) ?? firstOfNew, firstOfNew);
    if (!this.stopped) this.deadline.schedule('statements', next);
    return produced;
  }
}
