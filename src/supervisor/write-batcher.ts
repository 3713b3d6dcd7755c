import type { Sql, TransactionSql } from '../db/sql.js';

export type Write = (tx: TransactionSql) => Promise<void>;

interface Pending {
  write: Write;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit: writes queued while a commit is in flight go together in the next
 * transaction, so many sessions' transitions share one fsync. Order is kept: writes run in
 * the order they were queued. A batch that fails is retried one write at a time, so one bad
 * write fails alone.
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

  enqueue(write: Write): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ write, resolve, reject });
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
        await this.sql.begin(async (tx) => {
          for (const item of batch) await item.write(tx);
        });
        this.onCommit(batch.length, (performance.now() - started) / 1000);
        for (const item of batch) item.resolve();
      } catch {
        for (const item of batch) {
          try {
            await this.sql.begin((tx) => item.write(tx));
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
