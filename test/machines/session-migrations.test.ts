import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { migrateSessionSnapshot, SESSION_MACHINE_VERSION, UnknownSnapshotVersionError, type SessionSnapshot } from '../../machines/session/index.js';
import { flatTariff } from '../../src/billing/tariff.js';
import { ManualClock } from '../../src/clock.js';
import { expectOutcome } from './session-drive.js';
import { ScriptedCardCompany, START, startSession } from './session-harness.js';

/**
 * What each upgrade step makes of a stored snapshot, field by field, for the states the fixtures
 * of old versions do not hold (session-fixtures.test.ts restores those that exist). Each case
 * starts from a fixture and changes only what the state in question would have stored.
 */
type Stored = Parameters<typeof migrateSessionSnapshot>[1] & { context: Record<string, unknown> };

const DAY = 86_400_000;
const fixture = (name: string): Stored => JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as Stored;
const migrated = (version: number, stored: Stored) => migrateSessionSnapshot(version, stored) as unknown as SessionSnapshot;
const restore = (snapshot: SessionSnapshot) => {
  const clock = new ManualClock(START + 60_000);
  return startSession({ snapshot, clock, card: new ScriptedCardCompany(clock) });
};

/** A v1 session over its limit, as v1 stored it: ended at the cutoff with the limit as its charge. */
function v1OverLimit(chargeMicros: string): Stored {
  const active = fixture('session-v1-active.json');
  const { cutoffAt } = active.context as { cutoffAt: number };
  return { ...active, value: 'over_limit', context: { ...active.context, endedAt: cutoffAt, endReason: 'charge_limit', chargeMicros } };
}

describe('upgrading a v1 session', () => {
  it('renews an active session’s 7-day hold a day before it lapses, dating the hold from the start', () => {
    const stored = fixture('session-v1-active.json');
    const { context, value } = migrated(1, stored);
    expect(value).toEqual({ active: 'running' });
    expect(context.hold).toEqual({ ...(stored.context.hold as object), authorizedAt: START });
    expect(context.renewAt).toBe(START + 6 * DAY);
    expect(context).toMatchObject({ graceMs: 0, renewBeforeMs: DAY, graceUntil: null, extension: null, extensions: 0, reauthorizations: 0 });
    expect(context).toMatchObject({ staleHoldIds: [], closingSince: null, blocked: null, resumes: [], tariff: flatTariff('600000') });
  });

  it('renews a hold shorter than two days halfway through its life', () => {
    const stored = fixture('session-v1-active.json');
    const shortHold = { ...(stored.context.hold as object), expiresAt: START + 10_000_001 };
    const { context } = migrated(1, { ...stored, context: { ...stored.context, hold: shortHold } });
    expect(context.renewAt).toBe(START + 5_000_001);
  });

  it('dates the hold of an active session from when it started, not from when it was created', () => {
    // Started 30 s after it was created, with a hold that lapses 10,000 s after the start: renewed halfway, 5,000 s in.
    const stored = fixture('session-v1-active.json');
    const hold = { ...(stored.context.hold as object), expiresAt: START + 10_030_000 };
    const { context } = migrated(1, { ...stored, context: { ...stored.context, startedAt: START + 30_000, hold } });
    expect(context.hold).toEqual({ ...hold, authorizedAt: START + 30_000 });
    expect(context.renewAt).toBe(START + 5_030_000);
  });

  it('gives a settled session no closing instant', () => {
    const { value, context } = migrated(1, fixture('session-v1-settled.json'));
    expect(value).toBe('settled');
    expect(context.closingSince).toBeNull();
  });

  it('gives an authorizing session its authorization call back under its new name, as the first attempt', () => {
    const { value, context, children } = migrated(1, fixture('session-v1-authorizing.json'));
    expect(value).toEqual({ authorizing: 'requesting' });
    expect(context.renewAt).toBeNull();
    expect(Object.keys(children)).toEqual(['authorize']);
    const call = children.authorize as unknown as { src: string; snapshot: { input: { attempt: number; amountMicros: string } } };
    expect(call.src).toBe('authorizeHold');
    expect(call.snapshot.input).toMatchObject({ attempt: 0, amountMicros: '5000000' });
  });

  it('dates a closing session’s close from its end, and retries its capture', () => {
    const { value, context } = migrated(1, fixture('session-v1-closing-waiting.json'));
    expect(value).toEqual({ closing: { capturing: 'waiting' } });
    expect(context).toMatchObject({ closingSince: START + 42_000, retryAt: START + 43_000, renewAt: null });
  });

  it('captures the limit at once for a session stored over its limit (v1 had no grace)', async () => {
    const snapshot = migrated(1, v1OverLimit('5000000'));
    expect(snapshot.value).toEqual({ closing: { capturing: 'waiting' } });
    expect(snapshot.context).toMatchObject({ closingSince: START + 500_000, retryAt: START + 500_000, closeAttempts: 0 });
    const session = restore(snapshot);
    await expectOutcome(session, { state: 'settled', endReason: 'charge_limit', chargeMicros: '5000000' }, 'v1 over_limit');
    expect(session.card.calls).toEqual(['capture 5000000']);
  });

  it('voids the hold of a session stored over its limit with nothing to charge', async () => {
    const snapshot = migrated(1, v1OverLimit('0'));
    expect(snapshot.value).toEqual({ closing: { voiding: 'waiting' } });
    const session = restore(snapshot);
    await expectOutcome(session, { state: 'settled', chargeMicros: '0' }, 'v1 over_limit, nothing charged');
    expect(session.card.calls).toEqual(['void hold_1']);
  });
});

describe('upgrading a v2 session', () => {
  /** A v2 snapshot in `value`, with one call in flight keyed as v2 keyed it. */
  function v2(value: unknown, child?: { key: string; src: string }, context: Record<string, unknown> = {}): Stored {
    const base = fixture('session-v2-closing-waiting.json');
    const children = child ? { [child.key]: { snapshot: { status: 'active', input: {} }, src: child.src, syncSnapshot: false } } : {};
    return { ...base, value, children, context: { ...base.context, ...context } };
  }

  it.each([
    [{ authorizing: 'releasing' }, '0.session.authorizing.releasing', 'releaseAuthorization', { authorizing: { releasing: 'calling' } }, 'release'],
    [{ active: 'extending' }, '0.session.active.extending', 'incrementHold', { active: { extending: 'incrementing' } }, 'increment'],
    [{ over_limit: 'extending' }, '0.session.over_limit.extending', 'incrementHold', { over_limit: { extending: 'incrementing' } }, 'increment'],
    [{ active: 'renewing' }, '0.session.active.renewing', 'renewHold', { active: 'renewing' }, 'renew'],
    [{ closing: 'capturing' }, '0.session.closing.capturing', 'captureCharge', { closing: { capturing: 'calling' } }, 'capture'],
    [{ closing: 'voiding' }, '0.session.closing.voiding', 'voidHold', { closing: { voiding: 'calling' } }, 'void'],
    [{ authorizing: 'requesting' }, '0.session.authorizing.requesting', 'authorizeHold', { authorizing: 'requesting' }, 'authorize'],
  ])('moves %j to its v3 state, its call in flight named as v3 names it', (value, key, src, expected, id) => {
    const snapshot = migrated(2, v2(value, { key, src }));
    expect(snapshot.value).toEqual(expected);
    expect(Object.keys(snapshot.children)).toEqual([id]);
    expect(snapshot.context.blocked).toBeNull();
  });

  it('drops a child v3 has no name for', () => {
    expect(migrated(2, v2({ closing: 'capturing' }, { key: '0.session.closing', src: 'captureCharge' })).children).toEqual({});
  });

  it('waits to retry a release that was waiting', () => {
    expect(migrated(2, v2({ authorizing: 'waiting' })).value).toEqual({ authorizing: { releasing: 'waiting' } });
  });

  it('retries a void, not a capture, for a closing session with nothing to charge', () => {
    expect(migrated(2, v2({ closing: 'waiting' }, undefined, { chargeMicros: '0' })).value).toEqual({ closing: { voiding: 'waiting' } });
    expect(migrated(2, v2({ closing: 'waiting' }, undefined, { chargeMicros: null })).value).toEqual({ closing: { voiding: 'waiting' } });
  });

  it('gives a session interrupted over its limit the grace its service grants, from the instant it ended', () => {
    const interrupted = v2({ over_limit: 'interrupting' }, undefined, { graceMs: 60_000, endedAt: START + 500_000, chargeMicros: '5000000' });
    const snapshot = migrated(2, interrupted);
    expect(snapshot.value).toEqual({ over_limit: 'grace' });
    expect(snapshot.context.graceUntil).toBe(START + 560_000);
  });

  it('closes a session interrupted over its limit without grace at once', () => {
    const interrupted = v2({ over_limit: 'interrupting' }, undefined, { endedAt: START + 500_000, chargeMicros: '5000000', closeAttempts: 3 });
    const snapshot = migrated(2, interrupted);
    expect(snapshot.value).toEqual({ closing: { capturing: 'waiting' } });
    expect(snapshot.context).toMatchObject({ closingSince: START + 500_000, retryAt: START + 500_000, closeAttempts: 0, graceUntil: null });
  });
});

describe('upgrading a v3 session', () => {
  it('bills a session paused over its limit only for the time it ran', async () => {
    const stored = fixture('session-v3-active.running.json');
    const snapshot = migrated(3, { ...stored, context: { ...stored.context, pausedMs: 20_000, cutoffAt: START + 520_000 } });
    expect(snapshot.context.resumes).toEqual([{ billableAtMs: 0, wallAtMs: START + 20_000 }]);
    expect(snapshot.context.tariff).toEqual(flatTariff('600000'));
    expect(snapshot.context).not.toHaveProperty('pricePerMinuteMicros');
    expect(snapshot.context).not.toHaveProperty('pausedMs');
    expect(snapshot.context).toMatchObject({ warnAt: null, warnedAt: null, quote: null, warnings: { shareBasisPoints: null, secondsBefore: null } });
    expect(snapshot.context.uses).toEqual({ usedUnits: 0, usedMicros: '0', reservedMicros: '0', open: {}, next: 1 });
    const session = restore(snapshot);
    // 60 s after the start, 20 s of them paused: 40 s at 0.01 a second.
    session.actor.send({ type: 'LOGOFF', at: START + 60_000 });
    await session.settle();
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'logoff', chargeMicros: '400000' });
  });

  it('keeps no pause for a session that never paused', () => {
    expect(migrated(3, fixture('session-v3-active.running.json')).context.resumes).toEqual([]);
  });
});

describe('a snapshot of a version this build does not know', () => {
  it.each([0, SESSION_MACHINE_VERSION + 1])('is refused for version %i, naming it', (version) => {
    const stored = fixture('session-v3-active.running.json');
    expect(() => migrateSessionSnapshot(version, stored)).toThrow(UnknownSnapshotVersionError);
    expect(() => migrateSessionSnapshot(version, stored)).toThrow(`no migration for session snapshots of version ${version} (this build writes version ${SESSION_MACHINE_VERSION})`);
  });

  it('is returned as it is when it is of the current version', () => {
    const stored = fixture(`session-v${SESSION_MACHINE_VERSION}-active.running.json`);
    expect(migrateSessionSnapshot(SESSION_MACHINE_VERSION, stored)).toBe(stored);
  });
});
