import { defineConfig } from 'vitest/config';

/** The unit tests only: what `npm run test:mutation` (StrykerJS) runs against each mutant. */
export default defineConfig({
  test: {
    execArgv: ['--conditions=development'],
    include: ['test/machines/**/*.test.ts', 'test/billing/**/*.test.ts', 'test/admission/**/*.test.ts'],
  },
});
