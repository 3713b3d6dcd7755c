/** How long an account's statement period is: a calendar month (the default) or an ISO week, in UTC. */
export type StatementPeriod = 'month' | 'week';

const DAY_MS = 86_400_000;

/** The period of this kind that contains `at`: [start, end), in UTC. */
export function periodContaining(kind: StatementPeriod, at: number): { start: number; end: number } {
  const date = new Date(at);
  if (kind === 'month') {
    const start = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1);
    return { start, end: Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1) };
  }
  // ISO weeks start on Monday; getUTCDay() is 0 on Sunday.
  const midnight = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate());
  const start = midnight - ((date.getUTCDay() + 6) % 7) * DAY_MS;
  return { start, end: start + 7 * DAY_MS };
}

/** The period after one that ended at `end`. */
export const periodAfter = (kind: StatementPeriod, end: number) => periodContaining(kind, end);
