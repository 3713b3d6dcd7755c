// tsc compiles TypeScript only; the SQL migrations and the web site's assets travel next to the compiled code.
import { cpSync } from 'node:fs';

for (const dir of ['src/db/migrations', 'src/payments/sandbox/migrations', 'src/web/assets']) {
  cpSync(dir, `dist/${dir}`, { recursive: true });
}
