import type { Sql } from '../../src/db/sql.js';
import { Journal, type JournalOptions } from '../../src/sessions/journal.js';

/**
 * A journal on its own for tests that drive it directly: small batches, quick retries, stuck
 * after two attempts, and no supervisor behind it (the callbacks do nothing unless given).
 */
export function testJournal(sql: Sql, options: Partial<JournalOptions> = {}): Journal {
  return new Journal({
    sql,
    maxBatch: 64,
    attemptsBeforeStuck: 2,
    retryBaseMs: 10,
    retryMaxMs: 10,
    onCommitted: () => undefined,
    onStuck: () => undefined,
    onRecovering: async () => undefined,
    onRecovered: () => undefined,
    onBatch: () => undefined,
    ...options,
  });
}
