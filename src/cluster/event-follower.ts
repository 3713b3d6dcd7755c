import type { Sql } from '../db/sql.js';
import type { EventBus } from '../events/event-bus.js';
import { endOfStream, readEvents, type EventCursor } from '../events/event-store.js';
import type { Logger } from '../logger.js';

export interface EventFollowerOptions {
  sql: Sql;
  bus: EventBus;
  log: Logger;
  /** A wake waits this long before reading, so a burst of commits is read at once. */
  wakeDelayMs?: number;
  /** Read anyway this often, in case a notification was lost with its connection. */
  pollMs?: number;
}

const CHANNEL = 'tollgate_events';
const BATCH = 1000;

/**
 * Domain events committed by the other nodes, onto this node's bus (issue 17). The table is the
 * source: PostgreSQL notifies `tollgate_events` at the commit of any transaction that appended
 * events (migration 0013_cluster.sql), and the follower reads on from its position in
 * (tx, position) order, as durable consumers do, so nothing is skipped however notifications are
 * folded or lost. Events this node published itself (the journal hands them to the bus right
 * after its commit) are not published again; one read before its own node published it may be
 * seen twice, and consumers are idempotent (DESIGN rule 14).
 */
export class EventFollower {
  private cursor: EventCursor | null = null;
  /** Positions this node published itself and the follower has not passed yet, with when (ms). */
  private readonly local = new Map<bigint, number>();
  private republishing = false;
  private unlisten: (() => Promise<void>) | null = null;
  private stopFollowingBus: (() => void) | null = null;
  private reading: Promise<void> | null = null;
  private again = false;
  private wakeTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly options: EventFollowerOptions) {}

  async start(): Promise<void> {
    const { sql, bus } = this.options;
    this.stopFollowingBus = bus.subscribe((events) => {
      if (this.republishing) return;
      const now = Date.now();
      for (const event of events) this.local.set(event.position, now);
    });
    this.cursor = await endOfStream(sql);
    // postgres.js listens again after a lost connection and calls onlisten each time: a catch-up
    // then covers whatever was committed while it was away.
    const listening = await sql.listen(CHANNEL, () => this.wake(), () => this.wake());
    this.unlisten = listening.unlisten;
    const pollMs = this.options.pollMs ?? 5000;
    this.pollTimer = setInterval(() => this.wake(), pollMs);
    this.pollTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.stopFollowingBus?.();
    await this.unlisten?.().catch(() => undefined);
    await this.reading;
  }

  /** Reads on from the position now, then again if woken meanwhile. */
  catchUp(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = this.readAll().finally(() => {
      this.reading = null;
      if (this.again && !this.stopped) {
        this.again = false;
        void this.catchUp();
      }
    });
    return this.reading;
  }

  private wake(): void {
    if (this.stopped || this.wakeTimer) return;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = null;
      void this.catchUp();
    }, this.options.wakeDelayMs ?? 20);
  }

  private async readAll(): Promise<void> {
    const { sql, bus, log } = this.options;
    try {
      for (;;) {
        if (this.stopped || this.cursor === null) return;
        const events = await readEvents(sql, this.cursor, BATCH);
        if (events.length === 0) return;
        const last = events.at(-1)!;
        this.cursor = { tx: last.tx, position: last.position };
        const remote = events.filter((event) => !this.local.delete(event.position));
        if (remote.length > 0) {
          this.republishing = true;
          try {
            bus.publish(remote);
          } finally {
            this.republishing = false;
          }
        }
        if (events.length < BATCH) break;
      }
      // One the follower read before its node published it is never passed again: forgotten after a minute.
      const old = Date.now() - 60_000;
      for (const [position, at] of this.local) if (at < old) this.local.delete(position);
    } catch (error) {
      log.warn({ err: String(error) }, 'could not read the other nodes’ events; trying again at the next wake');
    }
  }
}
