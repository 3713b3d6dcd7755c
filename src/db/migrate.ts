import { readFile } from 'node:fs/promises';
import { Umzug } from 'umzug';
import type { Sql, TransactionSql } from './sql.js';
import { transaction } from './transaction.js';

/**
 * Applies the numbered SQL files of `dir` in order, each once, recorded in `table`.
 * umzug orders, resolves and records; the whole run happens in one transaction under an
 * advisory lock, so two processes starting together never apply a file twice and a
 * failed file leaves nothing half-applied.
 */
export async function migrate(sql: Sql, options: { dir: string; table: string; schema?: string }): Promise<string[]> {
  const { dir, table } = options;
  const schema = options.schema ?? 'public';
  return transaction(sql, async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtext(${`${schema}.${table}`}))`;
    await tx.unsafe(`create schema if not exists "${schema}"`);
    await tx.unsafe(
      `create table if not exists "${schema}"."${table}" (name text primary key, applied_at timestamptz not null default now())`,
    );
    const umzug = new Umzug<TransactionSql>({
      migrations: {
        glob: ['*.sql', { cwd: dir }],
        resolve: ({ name, path: file, context }) => ({
          name,
          up: async () => {
            await context.unsafe(await readFile(file!, 'utf8'));
          },
        }),
      },
      // A function context is called by umzug; the tagged-template sql must be returned, not passed.
      context: () => tx,
      storage: {
        executed: async ({ context }) =>
          (await context.unsafe(`select name from "${schema}"."${table}" order by name`)).map((r) => r.name as string),
        logMigration: async ({ name, context }) => {
          await context.unsafe(`insert into "${schema}"."${table}" (name) values ($1)`, [name]);
        },
        unlogMigration: async ({ name, context }) => {
          await context.unsafe(`delete from "${schema}"."${table}" where name = $1`, [name]);
        },
      },
      logger: undefined,
    });
    const applied = await umzug.up();
    return applied.map((m) => m.name);
  });
}
