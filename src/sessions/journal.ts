import type { Sql, TransactionSql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';
import type { StoredEvent } from '../events/event-store.js';
import { isStaleEpoch } from '../cluster/ownership.js';

/** One write of one session: a transition, or the session's first row. */
export interface JournalEntry {
  sessionId: string;
  /** Runs in the batch's transaction; returns the domain events it appended. Safe to run twice. */
  write(tx: TransactionSql): Promise<readonly StoredEvent[]>;
  /** False for a write whose caller handles a failure itself (an open): it is tried once, alone. */
  retry: boolean;
  /**
   * What the write locks besides its session's row (the account): writes with the same key go
   * through the same lane, so lanes committing side by side never wait on each other's locks.
   */
  lockKey?: string;
}

/** The transition did not commit: nothing that depends on it may go out (DESIGN rule 13). */
export class JournalWriteError extends Error {
  constructor(
    readonly sessionId: string,
    readonly reason: string,
  ) {
    super(`session ${sessionId}: ${reason}`);
    this.name = 'JournalWriteError';
  }
}

export interface JournalOptions {
  sql: Sql;
  maxBatch: number;
  /**
   * Transactions in flight at once (default 1). Sessions are spread over the lanes by their
   * lock key, and each lane group-commits its own batches, so PostgreSQL can run one batch
   * while another waits for its commit's flush.
   */
  lanes?: number;
  /** Failed attempts at a session's writes before it is stuck; backoff between attempts. */
  attemptsBeforeStuck: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** After every commit, the events it wrote, in position order. */
  onCommitted(events: readonly StoredEvent[]): void;
  /** A session's writes keep failing: called at each failed attempt once it is stuck. */
  onStuck(sessionId: string, reason: string): void;
  /** Runs in the transaction that finally commits a stuck session's writes. */
  onRecovering(tx: TransactionSql, sessionId: string): Promise<void>;
  /** A stuck session's writes went through. */
  onRecovered(sessionId: string): void;
  /**
   * PostgreSQL refused a write of the session for a stale epoch: another node runs it now. Its
   * writes are dropped, not retried, and nothing waiting for them to be durable is let through.
   */
  onFenced?(sessionId: string): void;
  onBatch(writes: number, seconds: number): void;
}

interface Pending {
  entry: JournalEntry;
  resolve: () => void;
  reject: (error: unknown) => void;
  settled: boolean;
}

interface SessionQueue {
  sessionId: string;
  /** The lane all of this session's writes go through, in order. */
  lane: Lane;
  pending: Pending[];
  /** How many of `pending` the write in flight carries (appends meanwhile wait for the next). */
  inFlight: number;
  failures: number;
  stuck: string | null;
  retryTimer: NodeJS.Timeout | null;
  drained: (() => void)[];
  stuckListeners: ((error: JournalWriteError) => void)[];
  /**
   * Let go of (forget) while a batch carried its writes: no longer the session's queue, so that
   * if the session is hosted here again its new writes start a queue of their own. Its batch
   * commits or fails as it goes; nothing of it is retried, and a refusal says nothing about the
   * session as it runs now.
   */
  letGo: boolean;
}

/** One group-commit loop: sessions ready to write, and the batch being written. */
interface Lane {
  ready: Set<string>;
  flushing: Promise<void> | null;
}

/**
 * The durability promise (DESIGN rules 2, 13). Writes of one session commit in the order they
 * were appended; writes of different sessions share a transaction (group commit: one fsync for
 * many). A batch that fails is retried one session at a time, so a session whose write fails
 * fails alone; it is retried with backoff, and once it has failed `attemptsBeforeStuck` times
 * its callers are told (the promise rejects) and it is stuck until a write goes through.
 */
export class Journal {
  private readonly queues = new Map<string, SessionQueue>();
  private readonly lanes: Lane[];
  /** Sessions let go of (forget) since their last append: nothing of theirs will be committed here. */
  private readonly forgotten = new Set<string>();
  private closed = false;

  constructor(private readonly options: JournalOptions) {
    this.lanes = Array.from({ length: Math.max(1, options.lanes ?? 1) }, () => ({ ready: new Set<string>(), flushing: null }));
  }

  /** Resolves once the entry is committed; rejects when it could not be (it is still retried unless `retry` is false). */
  append(entry: JournalEntry): Promise<void> {
    this.forgotten.delete(entry.sessionId);
    const queue = this.queueOf(entry.sessionId, entry.lockKey);
    return new Promise((resolve, reject) => {
      const pending: Pending = { entry, resolve, reject, settled: false };
      queue.pending.push(pending);
      if (queue.stuck !== null) this.settle(pending, new JournalWriteError(entry.sessionId, queue.stuck));
      else if (queue.inFlight === 0 && queue.retryTimer === null) this.markReady(entry.sessionId);
    });
  }

  /** Resolves when everything appended for the session so far is committed, however long that takes. */
  async durable(sessionId: string): Promise<void> {
    // A transition's observers run in the same tick as the actors it starts: yield once so the
    // transition is appended before this looks.
    await null;
    // What it would wait for was dropped: nothing may go out on it (the next owner drives it).
    if (this.forgotten.has(sessionId)) return new Promise<void>(() => undefined);
    const queue = this.queues.get(sessionId);
    if (!queue) return;
    await new Promise<void>((resolve) => queue.drained.push(resolve));
  }

  /** Like durable, but rejects as soon as the session is stuck: for callers that answer someone. */
  async committed(sessionId: string): Promise<void> {
    await null;
    if (this.forgotten.has(sessionId)) throw new JournalWriteError(sessionId, 'the session runs on another node now');
    const queue = this.queues.get(sessionId);
    if (!queue) return;
    if (queue.stuck !== null) throw new JournalWriteError(sessionId, queue.stuck);
    await new Promise<void>((resolve, reject) => {
      queue.drained.push(resolve);
      queue.stuckListeners.push(reject);
    });
  }

  /** Whether anything appended for the session is not committed yet. */
  pending(sessionId: string): boolean {
    return this.queues.has(sessionId);
  }

  /** The reason a session's writes are failing, or null. */
  stuckReason(sessionId: string): string | null {
    return this.queues.get(sessionId)?.stuck ?? null;
  }

  /** An operator asks for a stuck session's writes to be tried again now. */
  retryNow(sessionId: string): void {
    const queue = this.queues.get(sessionId);
    if (!queue || queue.retryTimer === null) return;
    clearTimeout(queue.retryTimer);
    queue.retryTimer = null;
    this.markReady(sessionId);
  }

  /**
   * Drops what is queued for a session that no longer runs here (its server's lease is gone):
   * callers waiting for an answer are told it was not recorded; `durable` waiters, who would call
   * out once it were, never resolve, now or later, until the session is hosted here again
   * (`remember`). A write already in flight commits or is refused as it goes.
   */
  forget(sessionId: string): void {
    // Bounded: only a command racing the loss of its session's server looks here.
    if (this.forgotten.size >= 10_000) this.forgotten.clear();
    this.forgotten.add(sessionId);
    const queue = this.queues.get(sessionId);
    if (!queue) return;
    if (queue.retryTimer) clearTimeout(queue.retryTimer);
    queue.lane.ready.delete(sessionId);
    const error = new JournalWriteError(sessionId, 'the session runs on another node now');
    // Waiters for everything appended so far: what they wait for includes what is dropped here,
    // so the commit of the batch in flight must not let them through (a void or a capture whose
    // intent was never written, while the next owner restores the session from the row before it).
    queue.drained.length = 0;
    for (const reject of queue.stuckListeners.splice(0)) reject(error);
    this.queues.delete(sessionId);
    if (queue.inFlight > 0) {
      // The batch in flight settles what it carries; only what it does not carry is dropped now.
      queue.letGo = true;
      for (const pending of queue.pending.splice(queue.inFlight)) this.settle(pending, error);
      return;
    }
    for (const pending of queue.pending) this.settle(pending, error);
  }

  /** The session is hosted here again, from its committed row: its calls out may go once written. */
  remember(sessionId: string): void {
    this.forgotten.delete(sessionId);
  }

  /** Resolves when nothing is being written (stuck sessions' writes are left queued). */
  async idle(): Promise<void> {
    for (;;) {
      const flushing = this.lanes.find((lane) => lane.flushing)?.flushing;
      if (!flushing) return;
      await flushing;
    }
  }

  close(): void {
    this.closed = true;
    for (const queue of this.queues.values()) if (queue.retryTimer) clearTimeout(queue.retryTimer);
  }

  private queueOf(sessionId: string, lockKey?: string): SessionQueue {
    let queue = this.queues.get(sessionId);
    if (!queue) {
      const lane = this.lanes[this.lanes.length === 1 ? 0 : laneIndex(lockKey ?? sessionId, this.lanes.length)]!;
      queue = { sessionId, lane, pending: [], inFlight: 0, failures: 0, stuck: null, retryTimer: null, drained: [], stuckListeners: [], letGo: false };
      this.queues.set(sessionId, queue);
    }
    return queue;
  }

  private markReady(sessionId: string): void {
    const lane = this.queueOf(sessionId).lane;
    lane.ready.add(sessionId);
    if (!lane.flushing && !this.closed) lane.flushing = this.drain(lane);
  }

  private async drain(lane: Lane): Promise<void> {
    // Writes appended in the same tick join the first batch.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (lane.ready.size > 0 && !this.closed) {
      const batch = this.takeBatch(lane);
      try {
        const started = performance.now();
        const events = await transaction(this.options.sql, (tx) => Promise.all(batch.map((queue) => this.writeAll(tx, queue))));
        this.options.onBatch(batch.reduce((n, queue) => n + queue.inFlight, 0), (performance.now() - started) / 1000);
        this.afterCommit(batch, events.flat());
      } catch {
        // One session's bad write must not hold the others: each goes again, alone.
        for (const queue of batch) await this.writeAlone(queue);
      }
    }
    lane.flushing = null;
  }

  private takeBatch(lane: Lane): SessionQueue[] {
    const batch: SessionQueue[] = [];
    let writes = 0;
    for (const sessionId of lane.ready) {
      const queue = this.queueOf(sessionId);
      if (writes > 0 && writes + queue.pending.length > this.options.maxBatch) break;
      lane.ready.delete(sessionId);
      queue.inFlight = queue.pending.length;
      writes += queue.inFlight;
      batch.push(queue);
    }
    return batch;
  }

  private async writeAll(tx: TransactionSql, queue: SessionQueue): Promise<StoredEvent[]> {
    if (queue.stuck !== null) await this.options.onRecovering(tx, queue.sessionId);
    const events: StoredEvent[] = [];
    for (const pending of queue.pending.slice(0, queue.inFlight)) events.push(...(await pending.entry.write(tx)));
    return events;
  }

  private async writeAlone(queue: SessionQueue): Promise<void> {
    queue.inFlight = queue.pending.length;
    try {
      const events = await transaction(this.options.sql, (tx) => this.writeAll(tx, queue));
      this.afterCommit([queue], events);
    } catch (error) {
      this.failed(queue, error);
    }
  }

  private afterCommit(queues: SessionQueue[], events: StoredEvent[]): void {
    for (const queue of queues) {
      const { sessionId } = queue;
      for (const pending of queue.pending.splice(0, queue.inFlight)) this.settle(pending);
      queue.inFlight = 0;
      queue.failures = 0;
      if (queue.stuck !== null) {
        queue.stuck = null;
        this.options.onRecovered(sessionId);
      }
      if (queue.letGo) continue;
      if (queue.pending.length > 0) {
        this.markReady(sessionId);
        continue;
      }
      this.queues.delete(sessionId);
      for (const resolve of queue.drained) resolve();
    }
    if (events.length > 0) this.options.onCommitted(events.sort((a, b) => (a.position < b.position ? -1 : 1)));
  }

  private failed(queue: SessionQueue, error: unknown): void {
    const { sessionId } = queue;
    if (queue.letGo) {
      // Written for the session as it ran before it was let go: dropped, whatever the reason.
      queue.inFlight = 0;
      const dropped = new JournalWriteError(sessionId, 'the session runs on another node now');
      for (const pending of queue.pending.splice(0)) this.settle(pending, dropped);
      return;
    }
    if (isStaleEpoch(error)) {
      // Retrying cannot help, and no call out may follow: the session is another node's now.
      queue.inFlight = 0;
      this.forget(sessionId);
      this.options.onFenced?.(sessionId);
      return;
    }
    queue.inFlight = 0;
    queue.failures++;
    const reason = `could not record ${queue.pending.length === 1 ? 'a transition' : `${queue.pending.length} transitions`}: ${describe(error)}`;
    // A write whose caller handles its failure is not retried here.
    const oneShot = queue.pending.filter((p) => !p.entry.retry);
    for (const pending of oneShot) this.settle(pending, new JournalWriteError(sessionId, reason));
    queue.pending = queue.pending.filter((p) => p.entry.retry);
    if (queue.pending.length === 0) {
      this.queues.delete(sessionId);
      for (const resolve of queue.drained) resolve();
      return;
    }
    if (queue.failures >= this.options.attemptsBeforeStuck) {
      queue.stuck = reason;
      const stuckError = new JournalWriteError(sessionId, reason);
      for (const pending of queue.pending) this.settle(pending, stuckError);
      for (const reject of queue.stuckListeners.splice(0)) reject(stuckError);
      this.options.onStuck(sessionId, reason);
    }
    if (this.closed) return;
    const delay = Math.min(this.options.retryMaxMs, this.options.retryBaseMs * 2 ** Math.min(queue.failures - 1, 20));
    queue.retryTimer = setTimeout(() => {
      queue.retryTimer = null;
      this.markReady(sessionId);
    }, delay);
    queue.retryTimer.unref();
  }

  private settle(pending: Pending, error?: JournalWriteError): void {
    if (pending.settled) return;
    pending.settled = true;
    if (error) pending.reject(error);
    else pending.resolve();
  }
}

/** FNV-1a over the key: the same account always lands in the same lane. */
function laneIndex(key: string, lanes: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % lanes;
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? `${error.message} (${code})` : error.message;
  }
  return String(error);
}
