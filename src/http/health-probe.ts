import type { Sql } from '../db/sql.js';

/**
 * Whether the database answers, asked at most once per `maxAgeMs` however many ask: a flood of
 * GET /health costs one `select 1` a second, not one per request. Probes in flight are shared.
 */
export class HealthProbe {
  private last: { at: number; ok: boolean } | null = null;
  private inFlight: Promise<boolean> | null = null;

  constructor(
    private readonly sql: Sql,
    private readonly maxAgeMs = 1000,
  ) {}

  async databaseAnswers(): Promise<boolean> {
    const now = Date.now();
    if (this.last && now - this.last.at < this.maxAgeMs) return this.last.ok;
    this.inFlight ??= this.sql`select 1`
      .then(
        () => true,
        () => false,
      )
      .then((ok) => {
        this.last = { at: Date.now(), ok };
        this.inFlight = null;
        return ok;
      });
    return this.inFlight;
  }
}
