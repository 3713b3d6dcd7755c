import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  deadlineOf,
  migrateSessionSnapshot,
  SESSION_MACHINE_VERSION,
  stateNameOf,
  type SessionSnapshot,
} from '../../machines/session/index.js';
import { ManualClock } from '../../src/clock.js';
import { ScriptedCardCompany, START, startSession } from './session-harness.js';

const dir = new URL('./fixtures/', import.meta.url);
const fixtures = readdirSync(dir).filter((name) => name.startsWith('session-v'));

/**
 * Snapshots written by every machine version must still restore (DESIGN rule 7): a change to
 * the machine that breaks a stored session fails here, before it reaches a database.
 */
describe('stored session snapshots', () => {
  it('has fixtures for the current machine version', () => {
    expect(fixtures.some((name) => name.startsWith(`session-v${SESSION_MACHINE_VERSION}-`))).toBe(true);
  });

  it.each(fixtures)('restores %s and carries on from it', async (name) => {
    const version = Number(/^session-v(\d+)-/.exec(name)![1]);
    const stored = migrateSessionSnapshot(version, JSON.parse(readFileSync(new URL(name, dir), 'utf8'))) as unknown as SessionSnapshot;
    const clock = new ManualClock(START + 1_000);
    const card = new ScriptedCardCompany(clock);
    const session = startSession({ snapshot: stored, clock, card });
    expect(session.actor.getSnapshot().value).toEqual(stored.value);
    expect(deadlineOf(session.actor.getSnapshot())).toEqual(deadlineOf(stored));
    // Whatever the state, the session reaches a final one once time passes and calls succeed.
    await session.settle();
    await session.advance(3_600_000);
    await session.settle();
    const state = stateNameOf(session.actor.getSnapshot());
    expect(['settled', 'declined']).toContain(state);
    if (state === 'settled') {
      const { context } = session.actor.getSnapshot();
      expect(BigInt(context.chargeMicros!)).toBeLessThanOrEqual(BigInt(context.maxChargeMicros));
    }
  });
});
