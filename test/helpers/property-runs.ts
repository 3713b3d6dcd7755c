/**
 * How many cases a property test tries: its own number, scaled by PROPERTY_RUNS_SCALE (the
 * mutation run sets 0.1: each mutant is checked by every covering test, on instrumented code).
 */
export function runs(numRuns: number): number {
  const scale = Number(process.env.PROPERTY_RUNS_SCALE ?? 1);
  return Math.max(5, Math.round(numRuns * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
}
