import { deadlineOf, statePathOf } from '../../machines/session/index.js';
import type { startSession } from './session-harness.js';
import type { Outcome } from './session-states.js';
import { expect } from 'vitest';

type Session = ReturnType<typeof startSession>;

/** Lets time pass deadline by deadline (each firing at its instant), for `ms`. */
export async function runFor(session: Session, ms: number): Promise<void> {
  const end = session.clock.now() + ms;
  await session.settle();
  for (let steps = 0; steps < 1000; steps++) {
    const deadline = deadlineOf(session.actor.getSnapshot());
    if (!deadline || deadline.at > end) break;
    await session.advance(Math.max(0, deadline.at - session.clock.now()));
    await session.settle();
  }
  await session.advance(Math.max(0, end - session.clock.now()));
  await session.settle();
}

/**
 * Restored sessions end as their state says: run for an hour with every call succeeding (an
 * operator's RETRY first, where a call was refused for good), then compare with `outcome`.
 */
export async function expectOutcome(session: Session, outcome: Outcome, label: string): Promise<void> {
  await runFor(session, 3_600_000);
  if (outcome.needsOperator) {
    const blocked = session.actor.getSnapshot();
    expect(blocked.hasTag('stuck'), `${label} waits for an operator`).toBe(true);
    expect(deadlineOf(blocked), `${label} schedules nothing by itself`).toBeNull();
    session.actor.send({ type: 'RETRY', at: session.clock.now() });
    await runFor(session, 60_000);
  }
  const snapshot = session.actor.getSnapshot();
  expect(statePathOf(snapshot.value), label).toBe(outcome.state);
  if (outcome.endReason !== undefined) expect(snapshot.context.endReason, `${label} end reason`).toBe(outcome.endReason);
  if (outcome.chargeMicros !== undefined) {
    expect(snapshot.context.chargeMicros, `${label} charge`).toBe(outcome.chargeMicros);
    if (outcome.state === 'settled') {
      const slip = snapshot.context.chargeSlip;
      expect(slip?.amountMicros ?? '0', `${label} charge slip`).toBe(outcome.chargeMicros);
    }
  }
}
