import { randomUUID } from 'node:crypto';
import { hashToken, newSecret, verifyPassword } from '../accounts/credentials.js';
import { forgetFailures, recordFailure, refuseWhileLocked, type LockPolicy } from '../accounts/login.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import { errors } from '../errors.js';
import type { AuthenticatedOperator } from './operators.js';

export interface ConsoleSessionDeps {
  sql: Sql;
  clock: Clock;
  lock: LockPolicy;
  /** A hash of nothing anyone knows: an unknown name costs the same argon2 work as a wrong password. */
  decoy: string;
  /** How long a console session lasts from its log-in. */
  maxAgeMs: number;
}

/**
 * Failures are counted with the customers' (login_failures) under a key no customer log-in can
 * produce: customer e-mails are refused with any control character, so none starts with U+0001.
 */
const failureKey = (name: string) => `\u0001operator:${name.trim().toLowerCase()}`;

/**
 * An operator's name and password → a console session (the web console's cookie). The same rules
 * as the customers' log-in: a decoy hash for unknown names, failures counted, a run of them locks
 * the name for a growing time. A disabled operator, or one with no password, cannot log in.
 */
export async function logInOperator(deps: ConsoleSessionDeps, name: string, password: string): Promise<{ token: string; operator: AuthenticatedOperator }> {
  const now = deps.clock.now();
  const key = failureKey(name);
  await refuseWhileLocked(deps.sql, key, now);
  const [row] = await deps.sql<(AuthenticatedOperator & { passwordHash: string | null })[]>`
    select id, name, role, password_hash as "passwordHash" from operators where name = ${name.trim()} and disabled_at is null`;
  const verified = await verifyPassword(row?.passwordHash ?? deps.decoy, password);
  if (!row || !row.passwordHash || !verified) {
    await recordFailure(deps, key, now);
    throw errors.badCredentials();
  }
  await forgetFailures(deps.sql, key);
  const { secret, secretHash } = newSecret('tgo');
  await deps.sql`
    insert into operator_sessions (id, token_hash, operator_id, created_at, expires_at)
    values (${randomUUID()}, ${secretHash}, ${row.id}, ${new Date(now)}, ${new Date(now + deps.maxAgeMs)})`;
  return { token: secret, operator: { id: row.id, name: row.name, role: row.role } };
}

/** The enabled operator a live console session belongs to (read on every console request, so a disabled operator is out at once). */
export async function operatorForConsole(sql: Sql, token: string, now: number): Promise<AuthenticatedOperator | null> {
  const [row] = await sql<AuthenticatedOperator[]>`
    select o.id, o.name, o.role from operator_sessions s join operators o on o.id = s.operator_id
    where s.token_hash = ${hashToken(token)} and s.revoked_at is null and s.expires_at > ${new Date(now)} and o.disabled_at is null`;
  return row ?? null;
}

/** Log-out: the session stops working at once. */
export async function revokeConsoleSession(sql: Sql, token: string, now: number): Promise<void> {
  await sql`update operator_sessions set revoked_at = ${new Date(now)} where token_hash = ${hashToken(token)} and revoked_at is null`;
}
