/** What one session did through the edge. */
export interface TrafficCounts {
  requests: number;
  bytesIn: number;
  bytesOut: number;
  connectionsCut: number;
}

export const NO_TRAFFIC: TrafficCounts = { requests: 0, bytesIn: 0, bytesOut: 0, connectionsCut: 0 };

/** A session's counts: what is already stored, and what this process added since its last flush. */
export class Traffic {
  readonly total: TrafficCounts;
  private unsaved: TrafficCounts = { ...NO_TRAFFIC };

  constructor(stored: TrafficCounts = NO_TRAFFIC) {
    this.total = { ...stored };
  }

  add(kind: keyof TrafficCounts, amount = 1): void {
    this.total[kind] += amount;
    this.unsaved[kind] += amount;
  }

  get dirty(): boolean {
    const u = this.unsaved;
    return u.requests + u.bytesIn + u.bytesOut + u.connectionsCut > 0;
  }

  /** What to add to the stored row; the caller gives it back (`restore`) if writing failed. */
  take(): TrafficCounts {
    const taken = this.unsaved;
    this.unsaved = { ...NO_TRAFFIC };
    return taken;
  }

  restore(counts: TrafficCounts): void {
    for (const key of Object.keys(counts) as (keyof TrafficCounts)[]) this.unsaved[key] += counts[key];
  }
}
