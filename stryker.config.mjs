// @ts-check
/**
 * Mutation testing of the machines and the money and tariff arithmetic: `npm run test:mutation`
 * (not part of npm test; about N minutes on this machine). docs/testing.md has the last score and
 * the surviving mutants judged equivalent.
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts' },
  plugins: ['@stryker-mutator/vitest-runner'],
  mutate: ['machines/**/*.ts', 'src/billing/**/*.ts', '!machines/**/index.ts', '!machines/**/*.types.ts'],
  coverageAnalysis: 'perTest',
  // Static mutants (in module-level code: the machine's definition objects) each need the whole
  // suite run again: about two thirds of the time for a fifth of the mutants. docs/testing.md
  // says how many were left out this way.
  ignoreStatic: true,
  reporters: ['clear-text', 'progress', 'json'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 90, low: 80, break: 80 },
  concurrency: 2,
  // Stryker copies the project into a sandbox: not the scratch work trees, reports or docs.
  ignorePatterns: ['.scratch', 'reports', 'docs', 'coverage', 'dist'],
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
