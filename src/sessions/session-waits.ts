import { stateNameOf, type SessionSnapshot } from '../../machines/session/index.js';
import type { Clock } from '../clock.js';
import { errors } from '../errors.js';
import { JournalWriteError, type Journal } from './journal.js';
import { type SessionView, viewOf } from './session-view.js';
import type { Supervisor } from './supervisor.js';

/**
 * How a command waits for a session it sent an event to: until the machine gets where the
 * command needs it, then until that state is committed, so an answer never tells of a state a
 * crash could take back.
 */
export class SessionWaits {
  constructor(private readonly deps: { supervisor: Supervisor; journal: Journal; clock: Clock }) {}

  /** The customer's own session running here (woken if cold), or null. */
  async owned(accountId: string, sessionId: string): Promise<SessionSnapshot | null> {
    const snapshot = await this.deps.supervisor.awake(sessionId);
    return snapshot && snapshot.context.accountId === accountId ? snapshot : null;
  }

  viewOf(snapshot: SessionSnapshot): SessionView {
    return viewOf(stateNameOf(snapshot), snapshot.context, this.deps.clock.now());
  }

  /** Until the session rests (no call in flight) or ends. */
  untilResting(sessionId: string, timeoutMs: number): Promise<SessionSnapshot> {
    return this.until(sessionId, (s) => s.status === 'done' || s.hasTag('resting'), timeoutMs);
  }

  /**
   * Waits until `done(snapshot)` (or the timeout), then until that state is committed. A session
   * whose writes keep failing answers NOT_RECORDED.
   */
  async until(sessionId: string, done: (snapshot: SessionSnapshot) => boolean, timeoutMs: number): Promise<SessionSnapshot> {
    const { supervisor, journal } = this.deps;
    const snapshot = await supervisor.waitFor(sessionId, done, timeoutMs);
    // First: a session let go of meanwhile (its server's lease lost) is not recorded, not missing.
    try {
      await journal.committed(sessionId);
    } catch (error) {
      if (error instanceof JournalWriteError) throw errors.notRecorded(error.reason);
      throw error;
    }
    if (!snapshot) throw errors.sessionNotFound();
    return snapshot;
  }
}
