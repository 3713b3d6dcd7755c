import { errors } from '../errors.js';

/**
 * At most `concurrency` calls at once and `maxWaiting` more queued; a call beyond that is refused
 * at once (503 BUSY). Token look-ups go through one, so a flood of made-up tokens waits its turn
 * on a pool of its own and cannot take the connections that sessions need.
 */
export class Bulkhead {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly concurrency: number,
    private readonly maxWaiting: number,
  ) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) {
      if (this.waiting.length >= this.maxWaiting) throw errors.busy();
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running += 1;
    }
    try {
      return await work();
    } finally {
      // The slot passes straight to the next waiter, so `running` never dips between them.
      const next = this.waiting.shift();
      if (next) next();
      else this.running -= 1;
    }
  }
}
