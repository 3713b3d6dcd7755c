// tsc compiles TypeScript only; the SQL migrations travel next to the compiled code.
import { cpSync } from 'node:fs';

for (const dir of ['src/db/migrations', 'src/payments/sandbox/migrations']) {
  cpSync(dir, `dist/${dir}`, { recursive: true });
}
