import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import { errors } from '../errors.js';
import { hashPassword, needsRehash, verifyPassword } from './credentials.js';
import { insertToken, type TokenPolicy } from './tokens.js';

/** After `afterFailures` wrong passwords in a row for one e-mail, it is locked for baseMs, doubling with each further failure, up to maxMs. */
export interface LockPolicy {
  afterFailures: number;
  baseMs: number;
  maxMs: number;
}

/** Failures older than this are forgotten: the count starts again. */
const FAILURES_FORGOTTEN_AFTER_MS = 3_600_000;

export interface LoginDeps {
  sql: Sql;
  clock: Clock;
  tokens: TokenPolicy;
  lock: LockPolicy;
  /** A hash of nothing anyone knows, made with today's parameters (credentials.decoyHash). */
  decoy: string;
  /** Counts every argon2 verification: the same for an unknown e-mail as for a wrong password. */
  onVerify?: () => void;
  /** Told of the oldest tokens a new one pushed out, so caches forget them. */
  onRevoked?: (hashes: Buffer[]) => void;
}

export const normalizeEmail = (email: string) => email.trim().toLowerCase();

/**
 * E-mail and password → a new token. A closed account logs in no more: it is answered as an
 * unknown e-mail is. An unknown e-mail is checked against a decoy hash and
 * counted as a failure like a wrong password: the same statements, the same argon2 work, the same
 * answer, so neither the answer nor its time tells whether the e-mail has an account. Failures
 * are counted per e-mail (known or not), and a run of them locks it for a growing time.
 */
export async function logIn(deps: LoginDeps, email: string, password: string): Promise<{ token: string }> {
  const { sql, clock } = deps;
  const normalized = normalizeEmail(email);
  const now = clock.now();
  await refuseWhileLocked(sql, normalized, now);
  const [account] = await sql<{ id: string; passwordHash: string }[]>`
    select id, password_hash as "passwordHash" from accounts where email_normalized = ${normalized} and closed_at is null`;
  const passwordHash = account?.passwordHash ?? deps.decoy;
  deps.onVerify?.();
  const verified = await verifyPassword(passwordHash, password);
  if (!account || !verified) {
    await recordFailure(deps, normalized, now);
    throw errors.badCredentials();
  }
  await forgetFailures(sql, normalized);
  // A hash made with weaker parameters than today's is replaced while the password is at hand.
  if (needsRehash(account.passwordHash)) {
    await sql`update accounts set password_hash = ${await hashPassword(password)} where id = ${account.id}`;
  }
  const issued = await insertToken(sql, account.id, deps.tokens, now);
  if (issued.revokedHashes.length > 0) deps.onRevoked?.(issued.revokedHashes);
  return { token: issued.token };
}

/** Throws LOGIN_LOCKED while the key (an e-mail, or an operator's name) is locked. */
export async function refuseWhileLocked(sql: Sql, key: string, now: number): Promise<void> {
  const [lock] = await sql<{ lockedUntil: Date | null }[]>`
    select locked_until as "lockedUntil" from login_failures where email_normalized = ${key}`;
  if (lock?.lockedUntil && lock.lockedUntil.getTime() > now) {
    throw errors.loginLocked(Math.ceil((lock.lockedUntil.getTime() - now) / 1000));
  }
}

/** Counts a wrong password for the key (an e-mail, or the console's key for an operator: operators/console-sessions.ts). */
export async function recordFailure(deps: Pick<LoginDeps, 'sql' | 'lock'>, email: string, now: number): Promise<void> {
  const { afterFailures, baseMs, maxMs } = deps.lock;
  const at = new Date(now);
  const forgotten = new Date(now - FAILURES_FORGOTTEN_AFTER_MS);
  // One statement: two wrong passwords at once both count.
  await deps.sql`
    insert into login_failures as f (email_normalized, failures, last_failed_at, locked_until)
    values (${email}, 1, ${at}, case when 1 >= ${afterFailures}::int then ${at}::timestamptz + ${baseMs}::float8 * interval '1 millisecond' end)
    on conflict (email_normalized) do update set
      failures = case when f.last_failed_at < ${forgotten} then 1 else f.failures + 1 end,
      last_failed_at = ${at},
      locked_until = case
        when (case when f.last_failed_at < ${forgotten} then 1 else f.failures + 1 end) >= ${afterFailures}::int
        then ${at}::timestamptz + least(${maxMs}::float8, ${baseMs}::float8 * power(2::float8,
          least((case when f.last_failed_at < ${forgotten} then 1 else f.failures + 1 end) - ${afterFailures}::int, 40))) * interval '1 millisecond'
        end`;
}

/** A good password: the key's failures are forgotten. */
export async function forgetFailures(sql: Sql, key: string): Promise<void> {
  await sql`delete from login_failures where email_normalized = ${key}`;
}

/** Failures nobody has added to for an hour, and locks that lapsed, are forgotten. */
export async function purgeLoginFailures(sql: Sql, now: number): Promise<void> {
  await sql`
    delete from login_failures
    where last_failed_at < ${new Date(now - FAILURES_FORGOTTEN_AFTER_MS)} and (locked_until is null or locked_until < ${new Date(now)})`;
}
