import { randomUUID } from 'node:crypto';
import { hashPassword, hashToken, newSecret } from '../accounts/credentials.js';
import { recordAudit } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import type { Queryable, Sql } from '../db/sql.js';
import { transaction } from '../db/transaction.js';
import { errors } from '../errors.js';
import type { Actor, Role } from './roles.js';

export interface OperatorView {
  id: string;
  name: string;
  role: Role;
  hasPassword: boolean;
  hasApiKey: boolean;
  createdAt: string;
  createdBy: string | null;
  disabledAt: string | null;
}

/** The operator an API key speaks for, while enabled. */
export interface AuthenticatedOperator {
  id: string;
  name: string;
  role: Role;
}

type Row = {
  id: string;
  name: string;
  role: Role;
  hasPassword: boolean;
  hasApiKey: boolean;
  createdAt: Date;
  createdBy: string | null;
  disabledAt: Date | null;
};

const view = (row: Row): OperatorView => ({
  ...row,
  createdAt: row.createdAt.toISOString(),
  disabledAt: row.disabledAt?.toISOString() ?? null,
});

const COLUMNS = (db: Queryable) => db`
  id, name, role, password_hash is not null as "hasPassword", api_key_hash is not null as "hasApiKey",
  created_at as "createdAt", created_by as "createdBy", disabled_at as "disabledAt"`;

async function findRow(db: Queryable, id: string, lock = false): Promise<Row | null> {
  const [row] = await db<Row[]>`select ${COLUMNS(db)} from operators where id = ${id} ${lock ? db`for update` : db``}`;
  return row ?? null;
}

export async function findOperatorByKey(db: Queryable, apiKey: string): Promise<AuthenticatedOperator | null> {
  const [row] = await db<AuthenticatedOperator[]>`
    select id, name, role from operators where api_key_hash = ${hashToken(apiKey)} and disabled_at is null`;
  return row ?? null;
}

export async function listOperators(sql: Sql): Promise<OperatorView[]> {
  const rows = await sql<Row[]>`select ${COLUMNS(sql)} from operators order by created_at, name limit 1000`;
  return rows.map(view);
}

/**
 * Operator accounts: each with a role, an API key (shown once, stored as its SHA-256) and,
 * optionally, a password for the web console (issue 12). Every change is written to the audit
 * log in the same transaction.
 */
export class Operators {
  constructor(private readonly deps: { sql: Sql; clock: Clock }) {}

  async create(
    request: { name: string; role: Role; password?: string | undefined },
    actor: Actor,
    requestId?: string,
  ): Promise<{ operator: OperatorView; apiKey: string }> {
    const passwordHash = request.password === undefined ? null : await hashPassword(request.password);
    return transaction(this.deps.sql, async (tx) => {
      // One bootstrap at a time: two at once must not both find no admin.
      await tx`select pg_advisory_xact_lock(hashtext('tollgate.operators'))`;
      if (actor.role === 'bootstrap') {
        const [admin] = await tx`select 1 from operators where role = 'admin' and disabled_at is null`;
        if (admin || request.role !== 'admin') throw errors.bootstrapOnly();
      }
      return this.insert(tx, request.name, request.role, passwordHash, actor, requestId);
    });
  }

  /** True while no enabled admin exists: only then does the bootstrap token work. */
  async bootstrapOpen(): Promise<boolean> {
    const [admin] = await this.deps.sql`select 1 from operators where role = 'admin' and disabled_at is null`;
    return !admin;
  }

  async update(
    id: string,
    change: { role?: Role | undefined; disabled?: boolean | undefined },
    actor: Actor,
    requestId?: string,
  ): Promise<OperatorView> {
    return transaction(this.deps.sql, async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtext('tollgate.operators'))`;
      const before = await findRow(tx, id, true);
      if (!before) throw errors.operatorNotFound();
      const at = new Date(this.deps.clock.now());
      await tx`
        update operators set role = coalesce(${change.role ?? null}, role),
          disabled_at = case when ${change.disabled ?? null}::boolean is null then disabled_at
            when ${change.disabled ?? null}::boolean then coalesce(disabled_at, ${at}) else null end
        where id = ${id}`;
      const [admins] = await tx<{ count: number }[]>`select count(*)::int as count from operators where role = 'admin' and disabled_at is null`;
      if (admins!.count === 0) throw errors.lastAdmin();
      const after = (await findRow(tx, id))!;
      await recordAudit(tx, { actor, action: 'operator.update', targetType: 'operator', targetId: id, before: view(before), after: view(after), at: at.getTime(), requestId });
      return view(after);
    });
  }

  /** A new API key for the operator; the old one stops working at once. */
  async newKey(id: string, actor: Actor, requestId?: string): Promise<{ operator: OperatorView; apiKey: string }> {
    const { secret, secretHash } = newSecret('tgo');
    return transaction(this.deps.sql, async (tx) => {
      const before = await findRow(tx, id, true);
      if (!before) throw errors.operatorNotFound();
      await tx`update operators set api_key_hash = ${secretHash} where id = ${id}`;
      const after = (await findRow(tx, id))!;
      await recordAudit(tx, {
        actor,
        action: 'operator.new_key',
        targetType: 'operator',
        targetId: id,
        before: view(before),
        after: view(after),
        at: this.deps.clock.now(),
        requestId,
      });
      return { operator: view(after), apiKey: secret };
    });
  }

  private async insert(tx: Queryable, name: string, role: Role, passwordHash: string | null, actor: Actor, requestId?: string) {
    const { secret, secretHash } = newSecret('tgo');
    const id = randomUUID();
    const now = this.deps.clock.now();
    try {
      await tx`
        insert into operators (id, name, role, password_hash, api_key_hash, created_at, created_by)
        values (${id}, ${name}, ${role}, ${passwordHash}, ${secretHash}, ${new Date(now)}, ${actor.operatorId})`;
    } catch (error) {
      if ((error as { code?: string }).code === '23505') throw errors.nameTaken('operator');
      throw error;
    }
    const operator = view((await findRow(tx, id))!);
    await recordAudit(tx, { actor, action: 'operator.create', targetType: 'operator', targetId: id, before: null, after: operator, at: now, requestId });
    return { operator, apiKey: secret };
  }
}
