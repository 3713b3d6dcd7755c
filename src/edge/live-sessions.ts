import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import type { StoredEvent } from '../events/event-store.js';
import type { Logger } from '../logger.js';
import { DeadlineScheduler } from '../time/deadline-scheduler.js';
import { Traffic, type TrafficCounts } from './traffic.js';

/** Why and when a session's access ended. */
export interface Ended {
  reason: string;
  at: number;
}

/** Something open through the edge that a cut must end: a response in flight, a WebSocket. */
export interface Connection {
  /** False: another node meters it (a WebSocket relayed to the session's owner), so its cut is counted there. */
  counted?: boolean;
  /** The session ended: the customer is told so (402, WebSocket 4402). */
  cut(ended: Ended): void;
  /** tollgate is shutting down: closed without blaming the session. */
  drop(): void;
}

/** A session the edge knows: whose it is, until when it may pass, and what is open for it. */
export interface LiveSession {
  sessionId: string;
  accountId: string;
  serviceId: string;
  cutoffAt: number;
  cutoffReason: string;
  ended: Ended | null;
  connections: Set<Connection>;
  traffic: Traffic;
  /** The session's access token once one was checked, so the next is a comparison, not an HMAC. */
  token?: string;
  /** Whether its tariff charges each request, once the first request found out (a session keeps its tariff). */
  perRequest?: boolean;
  /** The signed headers of its latest request and what they were made from (Edge.signedHeaders reuses them). */
  signed?: { t: number; cutoffAt: number; method: string; path: string; secret: string; headers: Readonly<Record<string, string>> };
}

interface Adoption {
  ended: Ended | null;
  session: Promise<LiveSession | undefined>;
}

/** How many of the latest cuts at a cutoff are remembered for their lateness (the benchmark reads them). */
const LATENESS_KEPT = 10_000;

/** How long an ended session is remembered, so its token is told why (402) without a query. */
const REMEMBER_ENDED_MS = 600_000;

interface ActiveRow {
  sessionId: string;
  accountId: string;
  serviceId: string;
  cutoffAt: Date;
  cutoffReason: string | null;
  requests: string | null;
  bytesIn: string | null;
  bytesOut: string | null;
  connectionsCut: number | null;
}

/**
 * The edge's own table of live sessions (DESIGN rule 15, like a RADIUS NAS): each holds its
 * cutoff instant and is cut at that instant by the edge's own deadline, with no round trip.
 * Domain events (rule 14) move the cutoff (extended, a RADIUS CoA) or end access early (logged
 * off, terminated, renewal declined: a Disconnect). At start-up the table is read from the rows
 * of active sessions, after the bus is followed, so nothing committed in between is missed.
 */
export class LiveSessions {
  private readonly sessions = new Map<string, LiveSession>();
  private readonly deadlines: DeadlineScheduler;
  private readonly endedListeners = new Set<(session: LiveSession) => void>();
  private readonly lateness: number[] = [];

  constructor(private readonly deps: { clock: Clock; log: Logger }) {
    this.deadlines = new DeadlineScheduler(deps.clock, (key) => this.due(key));
  }

  get(sessionId: string): LiveSession | undefined {
    return this.sessions.get(sessionId);
  }

  /** Every session the edge holds, ended ones included (for flushing their counts). */
  all(): IterableIterator<LiveSession> {
    return this.sessions.values();
  }

  /** How late (ms) the edge's deadline ran the latest cuts at a cutoff: the event loop's share of a cut's delay. */
  cutLateness(): readonly number[] {
    return this.lateness;
  }

  onEnded(listener: (session: LiveSession) => void): () => void {
    this.endedListeners.add(listener);
    return () => this.endedListeners.delete(listener);
  }

  /** The sessions active in their rows (a restart), except those the bus already told about. */
  async load(sql: Sql): Promise<number> {
    let loaded = 0;
    for (const row of await activeRows(sql, null)) {
      if (this.sessions.has(row.sessionId)) continue;
      this.activateRow(row);
      loaded++;
    }
    return loaded;
  }

  /**
   * One session the bus has not told this edge of yet, from its row when that says active: one
   * another node opened, whose activation reaches this node a moment after its client had the
   * answer (an outside probe's requests got 402 SESSION_ENDED for an active session). An end told
   * while the row was being read is not lost: the session is taken in ended.
   */
  adopt(sql: Sql, sessionId: string): Promise<LiveSession | undefined> {
    const reading = this.adopting.get(sessionId);
    if (reading) return reading.session;
    const adoption: Adoption = { ended: null, session: Promise.resolve(undefined) };
    adoption.session = this.adoptRow(sql, sessionId, adoption).finally(() => this.adopting.delete(sessionId));
    this.adopting.set(sessionId, adoption);
    return adoption.session;
  }

  /** Sessions being read by adopt (requests for one share the read), with an end the bus told meanwhile. */
  private readonly adopting = new Map<string, Adoption>();

  private async adoptRow(sql: Sql, sessionId: string, adoption: Adoption): Promise<LiveSession | undefined> {
    const [row] = await activeRows(sql, sessionId);
    const known = this.sessions.get(sessionId);
    if (known || !row || row.cutoffAt.getTime() <= this.deps.clock.now()) return known;
    this.activateRow(row);
    if (adoption.ended) this.end(sessionId, adoption.ended);
    return this.sessions.get(sessionId);
  }

  private activateRow(row: ActiveRow): void {
    const stored: TrafficCounts = {
      requests: Number(row.requests ?? 0),
      bytesIn: Number(row.bytesIn ?? 0),
      bytesOut: Number(row.bytesOut ?? 0),
      connectionsCut: row.connectionsCut ?? 0,
    };
    this.activate(row.sessionId, row.accountId, row.serviceId, row.cutoffAt.getTime(), row.cutoffReason ?? 'time_limit', stored);
  }

  /** Domain events after commit, in order per session; applying one twice changes nothing. */
  apply(events: readonly StoredEvent[]): void {
    for (const event of events) {
      const p = event.payload as { sessionId?: string; accountId?: string; serviceId?: string; cutoffAt?: number; cutoffReason?: string; reason?: string; endedAt?: number };
      if (!p.sessionId) continue;
      switch (event.type) {
        case 'session.activated':
          // Known already (adopted from its row, which may be ahead of the bus): an activation told
          // late must not move its cutoff back; only session.extended moves it.
          if (p.accountId && p.serviceId && typeof p.cutoffAt === 'number' && !this.sessions.has(p.sessionId)) {
            this.activate(p.sessionId, p.accountId, p.serviceId, p.cutoffAt, p.cutoffReason ?? 'time_limit');
          }
          break;
        case 'session.extended':
          // A session the edge forgot (over its limit for long, then extended) comes back whole.
          if (typeof p.cutoffAt === 'number' && p.accountId && p.serviceId && p.cutoffAt > this.deps.clock.now()) {
            this.activate(p.sessionId, p.accountId, p.serviceId, p.cutoffAt, p.cutoffReason ?? 'charge_limit');
          }
          break;
        case 'session.interrupted':
        case 'session.logged_off':
          this.end(p.sessionId, { reason: p.reason ?? 'ended', at: p.endedAt ?? this.deps.clock.now() });
          break;
        case 'session.settled':
        case 'session.declined':
          this.deadlines.schedule(`forget:${p.sessionId}`, this.deps.clock.now() + REMEMBER_ENDED_MS);
          break;
      }
    }
  }

  /** On shutdown: everything open is closed, no session ends. */
  close(): void {
    this.deadlines.close();
    for (const session of this.sessions.values()) {
      for (const connection of session.connections) connection.drop();
      session.connections.clear();
    }
  }

  private activate(sessionId: string, accountId: string, serviceId: string, cutoffAt: number, cutoffReason: string, stored?: TrafficCounts): void {
    const known = this.sessions.get(sessionId);
    if (known) {
      this.extend(sessionId, cutoffAt, cutoffReason);
      return;
    }
    const session: LiveSession = { sessionId, accountId, serviceId, cutoffAt, cutoffReason, ended: null, connections: new Set(), traffic: new Traffic(stored) };
    this.sessions.set(sessionId, session);
    this.arm(session);
  }

  /** A CoA: the cutoff moves; a session cut at its old cutoff (over its limit) is let through again. */
  private extend(sessionId: string, cutoffAt: number, cutoffReason: string): void {
    const session = this.sessions.get(sessionId);
    if (!session) return;
    session.cutoffAt = cutoffAt;
    session.cutoffReason = cutoffReason;
    if (session.ended && cutoffAt > this.deps.clock.now()) {
      session.ended = null;
      this.deadlines.cancel(`forget:${sessionId}`);
    }
    if (!session.ended) this.arm(session);
  }

  private arm(session: LiveSession): void {
    this.deadlines.schedule(`cutoff:${session.sessionId}`, session.cutoffAt);
  }

  private due(key: string): void {
    const [kind, sessionId] = key.split(':') as [string, string];
    const session = this.sessions.get(sessionId);
    if (!session) return;
    if (kind === 'forget') {
      if (session.ended) this.sessions.delete(sessionId);
      return;
    }
    // The edge's own cut: at the stored instant, whatever the supervisor is doing (rule 15).
    if (this.lateness.length >= LATENESS_KEPT) this.lateness.shift();
    this.lateness.push(this.deps.clock.now() - session.cutoffAt);
    this.end(sessionId, { reason: session.cutoffReason, at: session.cutoffAt });
  }

  /** A Disconnect: access ends now and everything open is cut. */
  private end(sessionId: string, ended: Ended): void {
    const session = this.sessions.get(sessionId);
    const adoption = session ? undefined : this.adopting.get(sessionId);
    if (adoption) adoption.ended = ended;
    if (!session || session.ended) return;
    session.ended = ended;
    this.deadlines.cancel(`cutoff:${sessionId}`);
    this.deadlines.schedule(`forget:${sessionId}`, this.deps.clock.now() + REMEMBER_ENDED_MS);
    const open = [...session.connections];
    session.connections.clear();
    for (const connection of open) {
      try {
        connection.cut(ended);
        if (connection.counted !== false) session.traffic.add('connectionsCut');
      } catch (error) {
        this.deps.log.warn({ sessionId, err: String(error) }, 'a connection could not be cut cleanly');
      }
    }
    if (open.length > 0) this.deps.log.info({ sessionId, reason: ended.reason, cut: open.length }, 'edge cut a session');
    for (const listener of this.endedListeners) listener(session);
  }
}

function activeRows(sql: Sql, sessionId: string | null): Promise<ActiveRow[]> {
  return sql<ActiveRow[]>`
    select s.id as "sessionId", s.account_id as "accountId", s.service_id as "serviceId", s.cutoff_at as "cutoffAt",
      s.snapshot->'context'->>'cutoffReason' as "cutoffReason",
      t.requests::text as requests, t.bytes_in::text as "bytesIn", t.bytes_out::text as "bytesOut", t.connections_cut as "connectionsCut"
    from sessions s left join session_traffic t on t.session_id = s.id
    where s.state = 'active' and s.cutoff_at is not null ${sessionId === null ? sql`` : sql`and s.id = ${sessionId}`}`;
}
