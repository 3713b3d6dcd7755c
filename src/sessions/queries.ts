import {
  migrateSessionSnapshot,
  stateNameOf,
  statePathOf,
  type SessionContext,
  type SessionSnapshot,
  type SessionStateName,
} from '../../machines/session/index.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import type { Journal } from './journal.js';
import { sessionIdsPage, stuckIdsPage, type SessionFilter } from './ops-queries.js';
import { findSession, listSessions, type StoredSession } from './session-rows.js';
import { type SessionView, viewOf } from './session-view.js';
import { stuckReasonOf, type StuckPolicy } from './stuck.js';
import type { Supervisor } from './supervisor.js';

/** A session as operators see it: the customer's view, plus whose it is, where it is and whether it is stuck. */
export interface OpsSessionView extends SessionView {
  accountId: string;
  /** The whole state path, "closing.capturing.waiting". */
  path: string;
  stuck: boolean;
  stuckReason: string | null;
  /** Not run by this process until an operator resumes it. */
  held: boolean;
  closeAttempts: number;
  lastError: string | null;
}

export interface QueryDeps {
  sql: Sql;
  supervisor: Supervisor;
  journal: Journal;
  clock: Clock;
  stuck: StuckPolicy;
}

/** What a stored row's snapshot says, read with this build's migrations; null when it cannot be read. */
function readable(row: StoredSession): { value: unknown; context: SessionContext } | null {
  try {
    return migrateSessionSnapshot(row.machineVersion, row.snapshot) as unknown as { value: unknown; context: SessionContext };
  } catch {
    return null;
  }
}

/**
 * Views and lists of sessions (the read side): a session running here is read from its actor,
 * any other from PostgreSQL, so a session without an actor (held, settled, on another node)
 * still shows. A row that cannot be read shows with its reason; it never breaks a list.
 */
export class SessionQueries {
  constructor(private readonly deps: QueryDeps) {}

  /**
   * A customer's session (accountId null: anyone's), or null when it is not theirs or does not
   * exist. A customer is told only what is committed (what a crash cannot take back): a session
   * with a transition still being written shows as its row says.
   */
  async view(accountId: string | null, sessionId: string): Promise<SessionView | null> {
    const live = this.committedSnapshot(sessionId);
    if (live) return accountId === null || live.context.accountId === accountId ? this.liveView(live) : null;
    const row = await findSession(this.deps.sql, sessionId, accountId ?? undefined);
    return row ? this.storedView(row) : null;
  }

  async list(accountId: string): Promise<SessionView[]> {
    return (await listSessions(this.deps.sql, accountId)).map((row) => {
      const live = this.committedSnapshot(row.snapshot.context.sessionId);
      return live ? this.liveView(live) : this.storedView(row);
    });
  }

  async opsView(sessionId: string): Promise<OpsSessionView | null> {
    const live = this.deps.supervisor.snapshotOf(sessionId);
    if (live) return this.opsViewOf(stateNameOf(live), statePathOf(live.value), live.context, live.hasTag('stuck'));
    const row = await findSession(this.deps.sql, sessionId);
    return row ? this.storedOpsView(row) : null;
  }

  /** A page of sessions, newest first; with `stuck`, only those that need an operator, oldest first. */
  async opsList(filter: SessionFilter & { stuck?: boolean | undefined }): Promise<{ sessions: OpsSessionView[]; nextCursor: string | null }> {
    const now = this.deps.clock.now();
    const page = filter.stuck
      ? await stuckIdsPage(this.deps.sql, filter, {
          authorizingBefore: now - this.deps.stuck.authorizingMs,
          closingBefore: now - this.deps.stuck.closingMs,
          closeAttempts: this.deps.stuck.closeAttempts,
        })
      : await sessionIdsPage(this.deps.sql, filter);
    const views = await Promise.all(page.ids.map((id) => this.opsView(id)));
    const sessions = views.filter((v): v is OpsSessionView => v !== null).filter((v) => filter.stuck !== false || !v.stuck);
    return { sessions, nextCursor: page.nextCursor };
  }

  /** Live sessions by state, and how many are stuck, for the metrics. */
  countLive(): { byState: Record<string, number>; stuck: number } {
    const byState: Record<string, number> = {};
    let stuck = 0;
    for (const { state, snapshot } of this.deps.supervisor.census()) {
      byState[state] = (byState[state] ?? 0) + 1;
      // A cold session rests with nothing stuck (or it would not be cold).
      if (snapshot && this.stuckReason(state as SessionStateName, statePathOf(snapshot.value), snapshot.context, snapshot.hasTag('stuck')) !== null) stuck++;
    }
    return { byState, stuck };
  }

  /** The live snapshot when everything it says is committed; otherwise the row is read. */
  private committedSnapshot(sessionId: string): SessionSnapshot | null {
    return this.deps.journal.pending(sessionId) ? null : this.deps.supervisor.snapshotOf(sessionId);
  }

  private liveView(snapshot: SessionSnapshot): SessionView {
    return viewOf(stateNameOf(snapshot), snapshot.context, this.deps.clock.now());
  }

  private storedView(row: StoredSession): SessionView {
    const stored = readable(row);
    return viewOf(row.state, { ...row.snapshot.context, ...stored?.context }, this.deps.clock.now());
  }

  private storedOpsView(row: StoredSession): OpsSessionView {
    const stored = readable(row);
    const held = this.deps.supervisor.heldOf(row.snapshot.context.sessionId);
    const context = { ...row.snapshot.context, ...stored?.context };
    const view = this.opsViewOf(row.state, stored ? statePathOf(stored.value as SessionSnapshot['value']) : row.state, context, Boolean(context.blocked));
    if (!stored) return { ...view, held: true, stuck: true, stuckReason: held?.reason ?? `snapshot of version ${row.machineVersion} cannot be read` };
    if (held) return { ...view, held: true, stuck: true, stuckReason: held.reason };
    return view;
  }

  private opsViewOf(state: SessionStateName, path: string, context: SessionContext, blocked: boolean): OpsSessionView {
    const reason = this.stuckReason(state, path, context, blocked);
    return {
      ...viewOf(state, context, this.deps.clock.now()),
      // The exact reason, a lost or stolen card included, which the customer is not told.
      declineReason: context.declineReason,
      accountId: context.accountId,
      path,
      stuck: reason !== null,
      stuckReason: reason,
      held: false,
      closeAttempts: context.closeAttempts ?? 0,
      lastError: context.lastError ?? null,
    };
  }

  /** Writes that keep failing come first, then a call refused for good, then a deadline passed. */
  private stuckReason(state: SessionStateName, path: string, context: SessionContext, blocked: boolean): string | null {
    const writes = this.deps.journal.stuckReason(context.sessionId);
    if (writes) return writes;
    if (blocked && context.blocked) return `${context.blocked.operation} refused: ${context.blocked.detail}`;
    return stuckReasonOf(state, path, context, this.deps.clock.now(), this.deps.stuck);
  }
}
