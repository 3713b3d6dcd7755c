import type { Queryable } from '../db/sql.js';

/** A domain event as stored: its place in the one stream all events share, and what it says. */
export interface StoredEvent {
  position: bigint;
  /** The id of the transaction that wrote it, as text (xid8). */
  tx: string;
  stream: string;
  type: string;
  at: Date;
  payload: Record<string, unknown>;
}

/** Where a reader has got to: the last event it has, or the start. */
export interface EventCursor {
  tx: string;
  position: bigint;
}

export const START_OF_STREAM: EventCursor = { tx: '0', position: 0n };

/** An event to append, with the key that makes appending it twice a no-op. */
export interface NewEvent {
  key: string;
  stream: string;
  type: string;
  at: number;
  payload: Record<string, unknown>;
}

/**
 * The next events after `cursor`, oldest first. Only transactions older than the oldest one
 * still running are read: an event committed late with a smaller position is never skipped.
 */
export async function readEvents(db: Queryable, cursor: EventCursor, limit: number): Promise<StoredEvent[]> {
  return db<StoredEvent[]>`
    select position, tx::text as tx, stream, type, at, payload from domain_events
    where (tx, position) > (${cursor.tx}::xid8, ${cursor.position})
      and tx < pg_snapshot_xmin(pg_current_snapshot())
    order by tx, position
    limit ${limit}`;
}

/** The last event of every stream's past: a reader that starts here hears only what comes next. */
export async function endOfStream(db: Queryable): Promise<EventCursor> {
  const [row] = await db<{ tx: string; position: bigint }[]>`
    select tx::text as tx, position from domain_events
    where tx < pg_snapshot_xmin(pg_current_snapshot())
    order by tx desc, position desc limit 1`;
  return row ?? START_OF_STREAM;
}

/** Appends domain events; one appended before under the same key is not appended again. */
export async function appendEvents(db: Queryable, events: NewEvent[]): Promise<StoredEvent[]> {
  const stored: StoredEvent[] = [];
  for (const e of events) {
    const [row] = await db<StoredEvent[]>`
      insert into domain_events (event_key, stream, type, at, payload)
      values (${e.key}, ${e.stream}, ${e.type}, ${new Date(e.at)}, ${db.json(e.payload as never)})
      on conflict (event_key) do nothing
      returning position, tx::text as tx, stream, type, at, payload`;
    if (row) stored.push(row);
  }
  return stored;
}
