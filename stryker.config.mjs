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
  reporters: ['clear-text', 'progress', 'json'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 90, low: 80, break: 80 },
  concurrency: 2,
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
