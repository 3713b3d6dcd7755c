import type { Sql, TransactionSql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';

export type Write = (tx: TransactionSql) => Promise<void>;

interface Pending {
  /** Writes with the same key run in the order queued; different keys run side by side. */
  key: string;
  write: Write;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit: writes queued while a commit is in flight go together in the next
 * transaction, so many sessions' transitions share one fsync. Writes of one key (a session)
 * run in the order they were queued; writes of different keys are sent side by side, which
 * postgres.js pipelines on the transaction's connection. A batch that fails is retried one
 * write at a time, so one bad write fails alone.
 */
export class WriteBatcher {
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly sql: Sql,
    private readonly maxBatch = 256,
    /** Told of every committed batch: how many writes, how long the commit took. */
    private readonly onCommit: (writes: number, seconds: number) => void = () => {},
  ) {}

  enqueue(key: string, write: Write): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ key, write, resolve, reject });
      if (!this.flushing) this.flushing = this.drain();
    });
  }

  /** Resolves when everything queued so far is committed (or has failed). */
  async idle(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async drain(): Promise<void> {
    // Let writes queued in the same tick join the first batch.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      try {
        const started = performance.now();
        await transaction(this.sql, async (tx) => {
          const byKey = new Map<string, Write[]>();
          for (const item of batch) {
            const writes = byKey.get(item.key);
            if (writes) writes.push(item.write);
            else byKey.set(item.key, [item.write]);
          }
          await Promise.all(
            [...byKey.values()].map(async (writes) => {
              for (const write of writes) await write(tx);
            }),
          );
        });
        this.onCommit(batch.length, (performance.now() - started) / 1000);
        for (const item of batch) item.resolve();
      } catch {
        for (const item of batch) {
          try {
            await transaction(this.sql, (tx) => item.write(tx));
            item.resolve();
          } catch (error) {
            item.reject(error);
          }
        }
      }
    }
    this.flushing = null;
  }
}
