/** The one source of wall time. Everything that needs "now" is handed a Clock. */
export interface Clock {
  now(): number;
  /** A clock that can jump (a test's) tells whoever schedules on it, so deadlines follow it. */
  onJump?(listener: () => void): () => void;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock the caller moves by hand, for tests and benchmarks that skip time. */
export class ManualClock implements Clock {
  private readonly listeners = new Set<() => void>();

  constructor(private current: number = Date.UTC(2026, 0, 1)) {}

  now(): number {
    return this.current;
  }

  advance(ms: number): void {
    this.set(this.current + ms);
  }

  set(at: number): void {
    this.current = at;
    for (const listener of this.listeners) listener();
  }

  onJump(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
