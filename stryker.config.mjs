// @ts-check
/**
 * Mutation testing of the machines and the money and tariff arithmetic: `npm run test:mutation`
 * (not part of npm test; well over an hour for all of it on this 2-core machine, longer when it is
 * shared). One file at a time: `npx stryker run --mutate machines/gate/gate.logic.ts --concurrency 1`.
 * docs/testing.md has the last scores and the surviving mutants judged equivalent.
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts' },
  plugins: ['@stryker-mutator/vitest-runner'],
  mutate: ['machines/**/*.ts', 'src/billing/**/*.ts', '!machines/**/index.ts', '!machines/**/*.types.ts'],
  coverageAnalysis: 'perTest',
  // Static mutants (in module-level code) would each need the whole suite run again. With the
  // vitest runner none is found static in practice (each run imports the modules afresh, so the
  // machines' definitions are covered test by test), and none is left out.
  ignoreStatic: true,
  // A run keeps its results (reports/mutation/incremental.json) and the next tests again only the
  // mutants whose code or covering tests changed; `--force` tests everything.
  incremental: true,
  incrementalFile: 'reports/mutation/incremental.json',
  reporters: ['clear-text', 'progress', 'json'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 90, low: 80, break: 80 },
  concurrency: 2,
  // Stryker copies the project into a sandbox: not the scratch work trees, reports or docs.
  ignorePatterns: ['.scratch', 'reports', 'docs', 'coverage', 'dist'],
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
