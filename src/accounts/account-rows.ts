import { createActor } from 'xstate';
import {
  ACCOUNT_MACHINE_VERSION,
  accountMachine,
  accountStateOf,
  type AccountChanger,
  type AccountEvent,
  type AccountSnapshot,
} from '../../machines/account/index.js';
import type { Queryable } from '../db/sql.js';
import { appendEvents, type StoredEvent } from '../events/event-store.js';

/** The account's row as the account machine needs it, read under its row lock. */
export interface AccountStateRow {
  id: string;
  createdAt: Date;
  seq: number;
  machineVersion: number | null;
  snapshot: AccountSnapshot | null;
  /** Unsettled sessions, kept by the statements that open and end them (0004_security.sql). */
  openSessions: number;
}

export async function lockAccountState(db: Queryable, accountId: string): Promise<AccountStateRow | null> {
  const [row] = await db<AccountStateRow[]>`
    select id, created_at as "createdAt", seq, machine_version as "machineVersion", snapshot, open_sessions as "openSessions"
    from accounts where id = ${accountId} for update`;
  return row ?? null;
}

export async function readAccountState(db: Queryable, accountId: string): Promise<AccountStateRow | null> {
  const [row] = await db<AccountStateRow[]>`
    select id, created_at as "createdAt", seq, machine_version as "machineVersion", snapshot, open_sessions as "openSessions"
    from accounts where id = ${accountId}`;
  return row ?? null;
}

/** A snapshot written by an account machine version this build does not know. */
export class UnknownAccountVersionError extends Error {
  constructor(readonly version: number) {
    super(`no migration for account snapshots of version ${version} (this build writes version ${ACCOUNT_MACHINE_VERSION})`);
    this.name = 'UnknownAccountVersionError';
  }
}

const BEFORE_STATES: AccountChanger = { kind: 'system', id: null, name: 'tollgate' };

/**
 * The account's actor, restored from its row. An account made before accounts had states
 * (0008_accounts.sql) has no snapshot: it was active from the day it was made, and is restored so.
 */
export function accountActorOf(row: Pick<AccountStateRow, 'id' | 'createdAt' | 'machineVersion' | 'snapshot'>) {
  const input = { accountId: row.id, createdAt: row.createdAt.getTime() };
  if (row.snapshot === null) {
    const actor = createActor(accountMachine, { input }).start();
    actor.send({ type: 'CARD_VERIFIED', at: input.createdAt, by: BEFORE_STATES, reason: 'made before accounts had states' });
    return actor;
  }
  if (row.machineVersion !== ACCOUNT_MACHINE_VERSION) throw new UnknownAccountVersionError(row.machineVersion ?? 0);
  return createActor(accountMachine, { input, snapshot: row.snapshot }).start();
}

/**
 * The domain event each change announces. A sign-up's verified card announces nothing: the account
 * is new to everyone, and its first row says all there is.
 */
const ANNOUNCED: Partial<Record<AccountEvent['type'], string>> = {
  SUSPEND: 'account.suspended',
  RESUME: 'account.resumed',
  CLOSE: 'account.closed',
};

/**
 * Writes one change of an account: its row (the state, what its tags say for SQL, the deadline,
 * the snapshot), its history line and its domain event, all in the caller's transaction. The
 * tokens of a closed account are revoked with it; their hashes are returned for caches to forget.
 */
export async function writeAccountChange(
  db: Queryable,
  change: { row: AccountStateRow; before: AccountSnapshot; after: AccountSnapshot; persisted: unknown; event: AccountEvent },
): Promise<{ events: StoredEvent[]; revokedTokenHashes: Buffer[] }> {
  const { row, before, after, event } = change;
  const seq = row.seq + 1;
  const state = accountStateOf(after);
  const at = new Date(event.at);
  const { resumesAt, closedAt } = after.context;
  await db`
    update accounts set state = ${state}, may_open = ${after.hasTag('opens')},
      resumes_at = ${resumesAt === null ? null : new Date(resumesAt)}, closed_at = ${closedAt === null ? null : new Date(closedAt)},
      machine_version = ${ACCOUNT_MACHINE_VERSION}, snapshot = ${db.json(change.persisted as never)}, seq = ${seq}
    where id = ${row.id}`;
  await db`
    insert into account_events (account_id, seq, event, from_state, to_state, at, by_kind, by_id, by_name, reason)
    values (${row.id}, ${seq}, ${event.type}, ${accountStateOf(before)}, ${state}, ${at}, ${event.by.kind}, ${event.by.id},
      ${event.by.name}, ${event.reason})`;
  const type = ANNOUNCED[event.type];
  const events = type
    ? await appendEvents(db, [
        {
          key: `account:${row.id}:${seq}`,
          stream: `account:${row.id}`,
          type,
          at: event.at,
          payload: { accountId: row.id, reason: event.reason, by: event.by, resumesAt: resumesAt === null ? null : new Date(resumesAt).toISOString() },
        },
      ])
    : [];
  const revoked = after.status === 'done' ? await db<{ tokenHash: Buffer }[]>`
    update api_tokens set revoked_at = ${at} where account_id = ${row.id} and revoked_at is null
    returning token_hash as "tokenHash"` : [];
  return { events, revokedTokenHashes: revoked.map((r) => r.tokenHash) };
}

export interface AccountHistoryLine {
  event: string;
  from: string | null;
  to: string;
  at: string;
  by: AccountChanger;
  reason: string;
}

/** Every change of the account, oldest first. */
export async function accountHistory(db: Queryable, accountId: string): Promise<AccountHistoryLine[]> {
  const rows = await db<{ event: string; from: string | null; to: string; at: Date; kind: AccountChanger['kind']; id: string | null; name: string; reason: string }[]>`
    select event, from_state as from, to_state as to, at, by_kind as kind, by_id as id, by_name as name, reason
    from account_events where account_id = ${accountId} order by seq limit 10000`;
  return rows.map((r) => ({ event: r.event, from: r.from, to: r.to, at: r.at.toISOString(), by: { kind: r.kind, id: r.id, name: r.name }, reason: r.reason }));
}

/**
 * A new account's first change, in the sign-up's transaction: its card was checked by the card
 * company before anything was stored, so it is active from its first row.
 */
export async function writeSignUpState(db: Queryable, accountId: string, createdAt: Date, by: AccountChanger): Promise<void> {
  const actor = createActor(accountMachine, { input: { accountId, createdAt: createdAt.getTime() } }).start();
  const before = actor.getSnapshot();
  const event: AccountEvent = { type: 'CARD_VERIFIED', at: createdAt.getTime(), by, reason: 'card checked by the card company at sign-up' };
  actor.send(event);
  const after = actor.getSnapshot();
  const persisted = actor.getPersistedSnapshot();
  actor.stop();
  const row = { id: accountId, createdAt, seq: 0, machineVersion: null, snapshot: null, openSessions: 0 };
  await writeAccountChange(db, { row, before, after, persisted, event });
}
