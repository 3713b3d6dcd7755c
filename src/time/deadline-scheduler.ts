import type { Clock } from '../clock.js';

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

// setTimeout overflows past 2^31−1 ms (about 24.8 days); longer deadlines are re-armed.
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Entry {
  at: number;
  key: string;
  generation: number;
}

/**
 * Every deadline of every actor in one min-heap with one real timer armed for the earliest
 * (DESIGN rule 5: scheduled once, no polling loop). Rescheduling a key supersedes its older
 * entry, which is skipped when it surfaces.
 */
export class DeadlineScheduler {
  private readonly heap: Entry[] = [];
  private readonly current = new Map<string, Entry>();
  private generation = 0;
  private timer: unknown = null;
  private armedFor = Infinity;
  private readonly stopFollowing: (() => void) | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly fire: (key: string, at: number) => void,
    private readonly timers: Timers = realTimers,
  ) {
    // When a test's clock jumps, what fell due fires then, not when a real timer armed for the
    // old "now" would have; a microtask later, so nothing fires inside the caller's advance().
    this.stopFollowing = clock.onJump?.(() => queueMicrotask(() => this.runDue()));
  }

  get size(): number {
    return this.current.size;
  }

  schedule(key: string, at: number): void {
    const existing = this.current.get(key);
    if (existing && existing.at === at) return;
    const entry = { at, key, generation: ++this.generation };
    this.current.set(key, entry);
    this.push(entry);
    if (at < this.armedFor) this.arm();
  }

  cancel(key: string): void {
    this.current.delete(key);
  }

  /** Fires every deadline that is due now; returns how many fired. */
  runDue(): number {
    const now = this.clock.now();
    let fired = 0;
    while (this.heap.length > 0 && this.heap[0]!.at <= now) {
      const entry = this.pop()!;
      if (this.current.get(entry.key) !== entry) continue;
      this.current.delete(entry.key);
      fired++;
      this.fire(entry.key, entry.at);
    }
    this.arm();
    return fired;
  }

  close(): void {
    this.stopFollowing?.();
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.armedFor = Infinity;
    this.heap.length = 0;
    this.current.clear();
  }

  private arm(): void {
    while (this.heap.length > 0 && this.current.get(this.heap[0]!.key) !== this.heap[0]) this.pop();
    const next = this.heap[0];
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.armedFor = next ? next.at : Infinity;
    if (!next) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, next.at - this.clock.now()));
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.armedFor = Infinity;
      this.runDue();
    }, delay);
  }

  private push(entry: Entry): void {
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= entry.at) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = entry;
  }

  private pop(): Entry | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length === 0 || !last) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && heap[right]!.at < heap[left]!.at ? right : left;
      if (heap[child]!.at >= last.at) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}
