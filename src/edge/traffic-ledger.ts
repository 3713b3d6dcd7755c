import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import type { Logger } from '../logger.js';
import type { Ended, LiveSessions } from './live-sessions.js';
import type { TrafficCounts } from './traffic.js';

/**
 * Writes what sessions did through the edge to `session_traffic`: every `flushMs`, and soon after
 * a session's access ends, one statement adds every session's new counts. Counting stays in memory
 * per request (a write per request would cost more than the request); a crash loses at most the
 * last interval's counts, never a charge.
 */
export class TrafficLedger {
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  private readonly stopListening: () => void;
  private soon: NodeJS.Timeout | null = null;
  /** Sessions whose access ended since the last flush: each gets a line in its history. */
  private endings: { sessionId: string; ended: Ended; counts: () => TrafficCounts }[] = [];

  constructor(private readonly deps: { sql: Sql; live: LiveSessions; clock: Clock; log: Logger; flushMs: number }) {
    this.timer = setInterval(() => void this.flush(), deps.flushMs).unref();
    // The counts of an ended session reach its view, its history and the marketing log soon.
    this.stopListening = deps.live.onEnded((session) => {
      if (session.ended && session.traffic.total.requests > 0) {
        this.endings.push({ sessionId: session.sessionId, ended: session.ended, counts: () => ({ ...session.traffic.total }) });
      }
      this.soon ??= setTimeout(() => {
        this.soon = null;
        void this.flush();
      }, 100).unref();
    });
  }

  /** Adds the counts gathered since the last flush; serialized, so two never race. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.write());
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    if (this.soon) clearTimeout(this.soon);
    this.stopListening();
    await this.flush();
  }

  private async write(): Promise<void> {
    const taken: { sessionId: string; counts: TrafficCounts; restore(c: TrafficCounts): void }[] = [];
    for (const session of this.deps.live.all()) {
      if (session.traffic.dirty) taken.push({ sessionId: session.sessionId, counts: session.traffic.take(), restore: (c) => session.traffic.restore(c) });
    }
    const endings = this.endings;
    this.endings = [];
    if (taken.length === 0 && endings.length === 0) return;
    const at = new Date(this.deps.clock.now());
    if (taken.length > 0) {
      await this.add(taken, at).catch((error: unknown) => {
        for (const t of taken) t.restore(t.counts);
        this.deps.log.warn({ sessions: taken.length, err: String(error) }, 'traffic counts not written yet');
      });
    }
    // The session's history says what it did through the edge, once its access ended.
    if (endings.length > 0) {
      const lines = endings.map((e) => ({ sessionId: e.sessionId, toState: e.ended.reason, at: new Date(e.ended.at).toISOString(), detail: e.counts() }));
      await this.deps.sql`
        insert into session_events (session_id, event, from_state, to_state, at, detail)
        select l."sessionId", 'edge.access_ended', 'active', l."toState", l.at, l.detail
        from jsonb_to_recordset(${this.deps.sql.json(lines as never)}::jsonb) as l("sessionId" uuid, "toState" text, at timestamptz, detail jsonb)`.catch(
        (error: unknown) => {
          this.endings.push(...endings);
          this.deps.log.warn({ sessions: endings.length, err: String(error) }, 'edge history lines not written yet');
        },
      );
    }
  }

  private async add(taken: { sessionId: string; counts: TrafficCounts }[], at: Date): Promise<void> {
    await this.deps.sql`
        insert into session_traffic (session_id, requests, bytes_in, bytes_out, connections_cut, updated_at)
        select *, ${at}::timestamptz from unnest(
          ${taken.map((t) => t.sessionId)}::uuid[], ${taken.map((t) => t.counts.requests)}::int8[],
          ${taken.map((t) => t.counts.bytesIn)}::int8[], ${taken.map((t) => t.counts.bytesOut)}::int8[],
          ${taken.map((t) => t.counts.connectionsCut)}::int4[])
        on conflict (session_id) do update set
          requests = session_traffic.requests + excluded.requests,
          bytes_in = session_traffic.bytes_in + excluded.bytes_in,
          bytes_out = session_traffic.bytes_out + excluded.bytes_out,
          connections_cut = session_traffic.connections_cut + excluded.connections_cut,
          updated_at = excluded.updated_at`;
  }
}
