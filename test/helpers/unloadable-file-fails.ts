import type { RunnerTestCase } from 'vitest';
import { experimental_getRunnerTask, type Reporter, type TestModule } from 'vitest/node';

/**
 * For the mutation run only (vitest.mutation.config.ts). A mutant that breaks a module where it is
 * imported (a machine definition that no longer builds) makes every test file importing it fail
 * to load, and such a file collects no test; Stryker's vitest runner scores a mutant from the tests
 * it collected, so it counted the mutant as survived though the suite fails on it
 * (stryker-mutator/stryker-js#6150, open). This gives each file that failed without a test one
 * failed test that carries the file's load error.
 */
export default class UnloadableFileFails implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    for (const testModule of testModules) {
      const file = experimental_getRunnerTask(testModule);
      if (file.result?.state !== 'fail' || file.tasks.length > 0) continue;
      // Only the fields a reporter reads of a finished test: vitest builds the rest (its context) itself.
      const loads = {
        type: 'test',
        id: `${file.id}_loads`,
        name: 'the test file loads',
        mode: 'run',
        meta: {},
        file,
        suite: file,
        timeout: 0,
        annotations: [],
        artifacts: [],
        result: { state: 'fail', errors: file.result.errors ?? [] },
      } as unknown as RunnerTestCase;
      file.tasks.push(loads);
    }
  }
}
