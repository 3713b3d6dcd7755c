import { existsSync } from 'node:fs';
import { defineConfig } from 'vitest/config';
import { isTypeFetchEscape } from './src/db/type-fetch-escape.js';

// Without Chromium the browser tests are skipped (test/browser/chromium-check.ts says so): no PostgreSQL is started for them.
const hasChromium = existsSync(process.env.CHROMIUM_PATH ?? '/usr/bin/chromium');
// The several-node suites run apart (npm run test:cluster): the three-node fault suite takes minutes,
// and the two-node test's 1.5 s leases lapse on a busy machine (a 503 SERVER_MOVING in CI's second
// pass); neither is part of npm test (issue 17).
const clusterFaults = process.env.CLUSTER_FAULTS === '1';

export default defineConfig({
  test: {
    // The driver's dropped promise when a new connection closes while it reads array types
    // (src/db/type-fetch-escape.ts): tollgate's processes survive it, and so does a test run.
    onUnhandledError: (error) => (isTypeFetchEscape(error) ? false : undefined),
    // xstate's development build throws early on misuse (inline actors, unknown events).
    execArgv: ['--conditions=development'],
    // The integration files mostly wait (on PostgreSQL, the card network, timers): three at a
    // time on two cores halve the suite's wall time (docs/testing.md); the default is one.
    maxWorkers: 3,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/machines/**/*.test.ts', 'test/billing/**/*.test.ts', 'test/admission/**/*.test.ts', 'test/time/**/*.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: ['test/machines/**', 'test/billing/**', 'test/admission/**', 'test/time/**/*.test.ts', 'test/bench/**', 'test/browser/**', 'test/cluster/cluster-faults.test.ts', 'test/cluster/nodes.test.ts'],
          globalSetup: ['test/helpers/global-postgres.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        extends: true,
        test: {
          // Pages in Debian's Chromium (playwright-core); skipped, with one line said, where it is absent.
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
          globalSetup: hasChromium ? ['test/helpers/global-postgres.ts'] : ['test/browser/chromium-check.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      ...(clusterFaults
        ? [
            {
              extends: true as const,
              test: {
                name: 'cluster-faults',
                include: ['test/cluster/cluster-faults.test.ts', 'test/cluster/nodes.test.ts'],
                globalSetup: ['test/helpers/global-postgres.ts'],
                testTimeout: 30_000,
                hookTimeout: 60_000,
              },
            },
          ]
        : []),
    ],
  },
});
