import { defineConfig } from 'vitest/config';

/** The unit tests only: what `npm run test:mutation` (StrykerJS) runs against each mutant. */
export default defineConfig({
  test: {
    execArgv: ['--conditions=development'],
    // Property tests try a tenth of their cases against each mutant (test/helpers/property-runs.ts).
    env: { PROPERTY_RUNS_SCALE: '0.1' },
    testTimeout: 120_000,
    // The admission tests drive machines/gate (mutated) through src/admission; pure, no I/O.
    include: ['test/machines/**/*.test.ts', 'test/billing/**/*.test.ts', 'test/admission/**/*.test.ts'],
  },
});
