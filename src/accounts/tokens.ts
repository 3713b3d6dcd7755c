import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/sql.js';
import { hashToken, newSecret } from './credentials.js';

/** How long a customer token lives: it lapses `idleMs` after its last use, and `maxAgeMs` after it was issued in any case. */
export interface TokenPolicy {
  idleMs: number;
  maxAgeMs: number;
}

/** A use moves a token's expiry at most this often, so a busy client does not write on every request. */
export const TOUCH_EVERY_MS = 60_000;

export interface TokenRecord {
  id: string;
  accountId: string;
  tokenHash: Buffer;
  createdAt: number;
  lastUsedAt: number;
  expiresAt: number;
}

export interface TokenView {
  id: string;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  /** The token this request was made with. */
  current: boolean;
}

const expiryAt = (policy: TokenPolicy, createdAt: number, now: number) => Math.min(now + policy.idleMs, createdAt + policy.maxAgeMs);

/** Live tokens one account may hold (DESIGN rule 16): a new one beyond it revokes the oldest. */
export const MAX_LIVE_TOKENS_PER_ACCOUNT = 100;

/**
 * Issues a token for the account; the secret is answered once and never stored. Returns the
 * hashes of the oldest tokens it pushed out, for caches to forget.
 */
export async function insertToken(
  db: Queryable,
  accountId: string,
  policy: TokenPolicy,
  now: number,
): Promise<{ token: string; id: string; revokedHashes: Buffer[] }> {
  const { secret, secretHash } = newSecret('tg');
  const id = randomUUID();
  const at = new Date(now);
  await db`
    insert into api_tokens (id, token_hash, account_id, created_at, last_used_at, expires_at)
    values (${id}, ${secretHash}, ${accountId}, ${at}, ${at}, ${new Date(expiryAt(policy, now, now))})`;
  const pushedOut = await db<{ tokenHash: Buffer }[]>`
    update api_tokens set revoked_at = ${at}
    where account_id = ${accountId} and revoked_at is null and id not in (
      select id from api_tokens where account_id = ${accountId} and revoked_at is null
      order by created_at desc, id desc limit ${MAX_LIVE_TOKENS_PER_ACCOUNT})
    returning token_hash as "tokenHash"`;
  return { token: secret, id, revokedHashes: pushedOut.map((row) => row.tokenHash) };
}

type Row = { id: string; accountId: string; tokenHash: Buffer; createdAt: Date; lastUsedAt: Date; expiresAt: Date };
const record = (row: Row): TokenRecord => ({
  id: row.id,
  accountId: row.accountId,
  tokenHash: row.tokenHash,
  createdAt: row.createdAt.getTime(),
  lastUsedAt: row.lastUsedAt.getTime(),
  expiresAt: row.expiresAt.getTime(),
});

/** The live token with this secret: not revoked, not lapsed at `now`. */
export async function findLiveToken(db: Queryable, token: string, now: number): Promise<TokenRecord | null> {
  const [row] = await db<Row[]>`
    select id, account_id as "accountId", token_hash as "tokenHash", created_at as "createdAt",
      last_used_at as "lastUsedAt", expires_at as "expiresAt"
    from api_tokens where token_hash = ${hashToken(token)} and revoked_at is null and expires_at > ${new Date(now)}`;
  return row ? record(row) : null;
}

/** Records a use: the expiry slides (never past the token's maximum age). Null when the token lapsed or was revoked meanwhile. */
export async function touchToken(db: Queryable, id: string, policy: TokenPolicy, now: number): Promise<TokenRecord | null> {
  const at = new Date(now);
  const [row] = await db<Row[]>`
    update api_tokens set last_used_at = ${at},
      expires_at = greatest(expires_at, least(${new Date(now + policy.idleMs)}::timestamptz, created_at + ${`${policy.maxAgeMs} milliseconds`}::interval))
    where id = ${id} and revoked_at is null and expires_at > ${at}
    returning id, account_id as "accountId", token_hash as "tokenHash", created_at as "createdAt",
      last_used_at as "lastUsedAt", expires_at as "expiresAt"`;
  return row ? record(row) : null;
}

/** The account's tokens that still work, newest first. */
export async function listLiveTokens(db: Queryable, accountId: string, currentId: string, now: number): Promise<TokenView[]> {
  const rows = await db<Row[]>`
    select id, account_id as "accountId", token_hash as "tokenHash", created_at as "createdAt",
      last_used_at as "lastUsedAt", expires_at as "expiresAt"
    from api_tokens where account_id = ${accountId} and revoked_at is null and expires_at > ${new Date(now)}
    order by created_at desc, id
    limit 1000`;
  return rows.map((row) => ({
    id: row.id,
    createdAt: row.createdAt.toISOString(),
    lastUsedAt: row.lastUsedAt.toISOString(),
    expiresAt: row.expiresAt.toISOString(),
    current: row.id === currentId,
  }));
}

/** Revokes one of the account's tokens; its hash (to forget it in caches), or null when it has no such live token. */
export async function revokeToken(db: Queryable, accountId: string, id: string, now: number): Promise<Buffer | null> {
  const [row] = await db<{ tokenHash: Buffer }[]>`
    update api_tokens set revoked_at = ${new Date(now)}
    where id = ${id} and account_id = ${accountId} and revoked_at is null
    returning token_hash as "tokenHash"`;
  return row?.tokenHash ?? null;
}

/** Tokens that lapsed or were revoked long ago are of no use to anyone: deleted by housekeeping. */
export async function purgeDeadTokens(db: Queryable, olderThan: number): Promise<number> {
  const rows = await db`
    delete from api_tokens where coalesce(revoked_at, expires_at) < ${new Date(olderThan)} returning 1`;
  return rows.length;
}
