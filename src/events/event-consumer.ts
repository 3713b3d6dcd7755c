import type { Sql, TransactionSql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';
import type { Logger } from '../logger.js';
import type { EventBus } from './event-bus.js';
import { endOfStream, readEvents, START_OF_STREAM, type EventCursor, type StoredEvent } from './event-store.js';

export interface EventConsumerOptions {
  sql: Sql;
  /** The consumer's name: its position is kept under it. */
  name: string;
  log: Logger;
  /** Wakes the consumer as soon as this process commits events; without it, it polls. */
  bus?: EventBus;
  /** A new consumer starts at the beginning of the stream, or with what comes next. */
  from?: 'start' | 'now';
  pollMs?: number;
  /**
   * How long a wake from the bus waits for more commits before reading (default 0). Each read
   * that finds events moves the position in a transaction of its own: a consumer that does not
   * need to answer within milliseconds reads many journal batches at once instead of one each.
   */
  wakeDelayMs?: number;
  /**
   * Which committed events wake it (default: any). A consumer that acts on few types is not
   * woken by the rest; it still reads past them, at its next wake or poll.
   */
  wakesOn?: (event: StoredEvent) => boolean;
  batch?: number;
  /** Between failed attempts at a batch. */
  retryMs?: number;
}

/**
 * Handles a batch in the transaction that also moves the consumer's position: what the handler
 * writes through `tx` happens exactly once. Anything else it does may happen again after a crash
 * (at least once), so it must be idempotent.
 */
export type BatchHandler = (events: readonly StoredEvent[], tx: TransactionSql) => Promise<void>;

/**
 * A durable reader of the domain events (DESIGN rule 14): it keeps its own position in
 * PostgreSQL, so a consumer that was down catches up from where it stopped, in order.
 */
export class EventConsumer {
  private running = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private unsubscribe: (() => void) | null = null;

  constructor(
    private readonly options: EventConsumerOptions,
    private readonly handle: BatchHandler,
  ) {}

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const { wakesOn } = this.options;
    this.unsubscribe = this.options.bus?.subscribe((events) => (!wakesOn || events.some(wakesOn)) && this.wake?.()) ?? null;
    const cursor = await this.position();
    this.loop = this.run(cursor);
  }

  async stop(): Promise<void> {
    this.running = false;
    this.unsubscribe?.();
    this.wake?.();
    await this.loop;
  }

  private async position(): Promise<EventCursor> {
    const { sql, name } = this.options;
    const [row] = await sql<{ tx: string; position: bigint }[]>`
      select tx::text as tx, position from event_consumers where name = ${name}`;
    if (row) return row;
    const start = this.options.from === 'now' ? await endOfStream(sql) : START_OF_STREAM;
    await sql`
      insert into event_consumers (name, tx, position, updated_at)
      values (${name}, ${start.tx}::xid8, ${start.position}, now()) on conflict (name) do nothing`;
    return start;
  }

  private async run(start: EventCursor): Promise<void> {
    const { sql, name, log } = this.options;
    const batch = this.options.batch ?? 500;
    let cursor = start;
    while (this.running) {
      let events: StoredEvent[];
      try {
        events = await readEvents(sql, cursor, batch);
        if (events.length > 0) {
          const last = events.at(-1)!;
          const from = cursor;
          // The position's row is locked and compared first: where several nodes run the same
          // consumer (issue 17), one handles a batch and the others carry on from where it got to.
          // A node that finds the row locked does not wait for it (a connection held per waiter,
          // then the same events read again): the node holding it is handling them.
          const moved = await transaction(sql, async (tx): Promise<EventCursor | 'busy' | null> => {
            const [stored] = await tx<{ tx: string; position: bigint }[]>`
              select tx::text as tx, position from event_consumers where name = ${name} for update skip locked`;
            if (!stored) return 'busy';
            if (stored.tx !== from.tx || stored.position !== from.position) return stored;
            await this.handle(events, tx);
            await tx`
              update event_consumers set tx = ${last.tx}::xid8, position = ${last.position}, updated_at = now()
              where name = ${name}`;
            return null;
          });
          if (moved === 'busy') {
            await this.pause(this.options.pollMs ?? 1000);
            continue;
          }
          cursor = moved ?? { tx: last.tx, position: last.position };
          if (moved) continue;
        }
      } catch (error) {
        log.warn({ consumer: name, err: String(error) }, 'event consumer failed; retrying');
        await this.pause(this.options.retryMs ?? 1000);
        continue;
      }
      if (events.length < batch) await this.pause(this.options.pollMs ?? 1000);
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        const delay = this.running ? (this.options.wakeDelayMs ?? 0) : 0;
        if (delay === 0) done();
        else {
          clearTimeout(timer);
          setTimeout(done, delay);
        }
      };
    });
  }
}
