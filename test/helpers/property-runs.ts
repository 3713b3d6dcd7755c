/**
 * How many cases a property test tries: its own number, scaled by PROPERTY_RUNS_SCALE (the
 * mutation run sets 0.1: each mutant is checked by every covering test, on instrumented code).
 */
export function runs(numRuns: number): number {
  const scale = Number(process.env.PROPERTY_RUNS_SCALE ?? 1);
  return Math.max(5, Math.round(numRuns * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
}

/**
 * The seed property tests run from: fixed, so a run is the same on every machine and its time
 * does not depend on what a random seed happens to draw; PROPERTY_SEED tries another.
 */
export const SEED = Number(process.env.PROPERTY_SEED ?? 20_261_130);
