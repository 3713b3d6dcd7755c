import { execFile } from 'node:child_process';
import { cpSync, existsSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './child.js';

const run = promisify(execFile);

/**
 * Compiles src/, machines/ and test/bench/ with tsc into the run's temporary folder, as
 * `npm run build` does for `npm start`, so the measured processes run plain JavaScript under
 * plain node. Under tsx every function would also carry esbuild's `__name` wrapper (a property
 * store on each closure: hundreds of bytes per session) and the loader's own memory.
 * Type errors do not stop the build (tsc emits anyway); missing output does.
 */
export async function buildForBench(root: string): Promise<{ dir: string; seconds: number; diagnostics: number }> {
  const started = performance.now();
  const dir = path.join(root, 'build');
  const tsconfig = path.join(root, 'tsconfig.bench.json');
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: path.join(REPO_ROOT, 'tsconfig.json'),
      compilerOptions: {
        outDir: dir,
        rootDir: REPO_ROOT,
        noEmit: false,
        sourceMap: true,
        incremental: false,
        typeRoots: [path.join(REPO_ROOT, 'node_modules/@types')],
      },
      include: ['src', 'machines', 'test/bench'].map((p) => path.join(REPO_ROOT, p)),
    }),
  );
  let diagnostics = 0;
  try {
    await run(process.execPath, [path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', tsconfig], { cwd: REPO_ROOT, timeout: 180_000 });
  } catch (error) {
    // Exit status 2: emitted with type errors (someone's work in progress); anything else is fatal.
    const out = String((error as { stdout?: string }).stdout ?? '');
    diagnostics = (out.match(/error TS\d+/g) ?? []).length;
    if (!existsSync(path.join(dir, 'test/bench/hold-child.js'))) throw error;
  }
  // The same folders as scripts/copy-assets.mjs copies for `npm run build`.
  for (const assets of ['src/db/migrations', 'src/payments/sandbox/migrations', 'src/web/assets']) {
    cpSync(path.join(REPO_ROOT, assets), path.join(dir, assets), { recursive: true });
  }
  // ESM like the repository, and the repository's packages.
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }));
  symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  return { dir, seconds: (performance.now() - started) / 1000, diagnostics };
}
