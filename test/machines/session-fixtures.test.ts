import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { migrateSessionSnapshot, SESSION_MACHINE_VERSION, statePathOf, type SessionSnapshot } from '../../machines/session/index.js';
import { ManualClock } from '../../src/clock.js';
import { expectOutcome } from './session-drive.js';
import { ScriptedCardCompany, START, startSession } from './session-harness.js';
import { REACHABLE_STATES, type Outcome } from './session-states.js';

const dir = new URL('./fixtures/', import.meta.url);
const fixtures = readdirSync(dir).filter((name) => name.startsWith('session-v'));

const atLimit: Outcome = { state: 'settled', endReason: 'charge_limit', chargeMicros: '5000000' };
const loggedOff42: Outcome = { state: 'settled', endReason: 'logoff', chargeMicros: '420000' };

/**
 * How each stored snapshot of an earlier version ends once restored (every fixture is a 5.00
 * session at 0.60 a minute; the closing ones were logged off 42 s in; the extending one asked
 * for 8.00). The current version's come from the catalogue of reachable states.
 */
const EARLIER: Record<string, Outcome> = {
  'session-v1-active.json': atLimit,
  'session-v1-authorizing.json': atLimit,
  'session-v1-closing-waiting.json': loggedOff42,
  'session-v1-settled.json': atLimit,
  'session-v2-active-extending.json': { state: 'settled', endReason: 'charge_limit', chargeMicros: '8000000' },
  'session-v2-active-running.json': atLimit,
  'session-v2-authorizing-requesting.json': atLimit,
  'session-v2-authorizing-waiting.json': { state: 'declined', endReason: 'declined' },
  'session-v2-closing-waiting.json': loggedOff42,
  'session-v2-over_limit-grace.json': atLimit,
  'session-v2-settled.json': atLimit,
};
/** Every reachable state of a version since 3, and how it ends: the catalogue's. */
const byState = (version: number) => Object.fromEntries(REACHABLE_STATES.map((s) => [`session-v${version}-${s.path}.json`, s.outcome]));
Object.assign(EARLIER, byState(3));
const CURRENT = byState(SESSION_MACHINE_VERSION);

/**
 * Snapshots written by every machine version must still restore (DESIGN rule 7): a change to
 * the machine that breaks a stored session fails here, before it reaches a database.
 */
describe('stored session snapshots', () => {
  it('has a fixture of the current version for every reachable state', () => {
    expect(fixtures.filter((name) => name.startsWith(`session-v${SESSION_MACHINE_VERSION}-`)).sort()).toEqual(Object.keys(CURRENT).sort());
  });

  it('knows how every fixture ends', () => {
    expect(fixtures.filter((name) => !(name in EARLIER) && !(name in CURRENT))).toEqual([]);
  });

  it.each(fixtures)('restores %s and carries on from it to the end its state implies', async (name) => {
    const version = Number(/^session-v(\d+)-/.exec(name)![1]);
    const stored = migrateSessionSnapshot(version, JSON.parse(readFileSync(new URL(name, dir), 'utf8'))) as unknown as SessionSnapshot;
    const clock = new ManualClock(START + 1_000);
    const session = startSession({ snapshot: stored, clock, card: new ScriptedCardCompany(clock) });
    expect(statePathOf(session.actor.getSnapshot().value)).toBe(statePathOf(stored.value));
    await expectOutcome(session, (EARLIER[name] ?? CURRENT[name])!, name);
  });
});
