import { describe, expect, it } from 'vitest';
import { getShortestPaths, getSimplePaths } from 'xstate/graph';
import {
  billableMs,
  bookingsOf,
  deadlineOf,
  termsOf,
  domainEventsOf,
  sessionMachine,
  statePathOf,
  type SessionEvent,
  type SessionSnapshot,
  type TaggedFacts,
} from '../../machines/session/index.js';
import { factsOf } from '../../src/sessions/transition-record.js';
import { timeChargeMicros } from '../../src/billing/charge.js';
import { flatTariff } from '../../src/billing/tariff.js';
import { hold, input, slip } from './session-harness.js';
import { REACHABLE_STATES } from './session-states.js';

/**
 * Paths through the session machine, generated from its definition (xstate/graph): every
 * event from outside, and every answer each call in flight can get. Along every simple path
 * the session never charges beyond its limit, never waits on nothing, and at its end its books
 * balance and its announcements tell a coherent story.
 */
type PathEvent = SessionEvent | { type: string; output: unknown };

/** What the limit leaves for uses at `at`, after the time used and the uses held. */
function left(c: SessionSnapshot['context'], at: number): bigint {
  if (c.startedAt === null) return 0n;
  const held = BigInt(c.uses.usedMicros) + BigInt(c.uses.reservedMicros);
  return BigInt(c.maxChargeMicros) - timeChargeMicros(termsOf(c), billableMs(c, at)) - held;
}

function eventsFor(snapshot: SessionSnapshot): PathEvent[] {
  const c = snapshot.context;
  const at = (c.startedAt ?? c.createdAt) + 42_000;
  const limit = c.extension?.toMicros ?? c.maxChargeMicros;
  const failures = [
    { kind: 'unanswered', detail: 'timeout', at },
    { kind: 'refused', detail: 'hold_not_open', at },
  ];
  const answers: Record<string, unknown[]> = {
    authorize: [{ kind: 'held', hold: { ...hold(), amountMicros: c.maxChargeMicros }, at: c.createdAt }, { kind: 'declined', reason: 'insufficient_funds', at }, ...failures],
    release: [{ kind: 'done', at }, ...failures],
    renew: [
      { kind: 'held', hold: { ...hold(), holdId: `hold_r${c.reauthorizations + 1}`, amountMicros: c.maxChargeMicros }, staleHoldId: null, at },
      { kind: 'declined', reason: 'insufficient_funds', at },
      ...failures,
    ],
    reserve: [{ kind: 'reserved', at }, { kind: 'declined', reason: 'outstanding_limit_reached', at }, failures[0]],
    increment: [{ kind: 'raised', hold: { ...hold(), holdId: c.hold?.holdId ?? 'hold_1', amountMicros: limit }, at }, { kind: 'declined', reason: 'insufficient_funds', at }, ...failures],
    capture: [{ kind: 'captured', slip: slip(c.chargeMicros ?? '0'), at }, ...failures],
    void: [{ kind: 'done', at }, ...failures],
  };
  const outside: SessionEvent[] = [
    { type: 'LOGOFF', at },
    { type: 'CUTOFF', at: c.cutoffAt ?? at },
    { type: 'TERMINATE', at },
    { type: 'ABANDON', at },
    // The service lost a little before now: charged to then, never before the start.
    { type: 'SERVICE_LOST', at, since: at - 5_000 },
    { type: 'RETRY', at },
    { type: 'RENEW_HOLD', at },
    { type: 'GRACE_OVER', at },
    { type: 'VOID', at },
    { type: 'EXTEND', at, maxChargeMicros: (BigInt(c.maxChargeMicros) + 3_000_000n).toString() },
    { type: 'WARN', at: c.warnAt ?? at },
    { type: 'RESERVE_USE', at, units: 2 },
    // Uses that take all that is left end the session at its limit once committed.
    { type: 'RESERVE_USE', at, units: Math.max(1, Number(left(c, at) / 5_000n)) },
    ...Object.entries(c.uses.open).flatMap(([reservationId, { units }]) => [
      { type: 'COMMIT_USE' as const, at, reservationId, units },
      { type: 'RELEASE_USE' as const, at, reservationId },
    ]),
  ];
  const calls = Object.keys(snapshot.children).flatMap((id) => (answers[id] ?? []).map((output) => ({ type: `xstate.done.actor.${id}`, output })));
  return [...outside, ...calls];
}

const traversal = {
  input: input({
    graceMs: 60_000,
    warnings: { shareBasisPoints: 8_000, secondsBefore: 30 },
    // 0.60 a minute and 0.005 a use: 1,000 uses take all of a 5.00 limit.
    tariff: { ...flatTariff(600_000n), perUse: { unit: 'unit', priceMicros: '5000' } },
  }),
  // The answers of calls in flight are events the machine takes, though its declared event
  // type (what may come from outside) leaves them out.
  events: eventsFor as (snapshot: SessionSnapshot) => SessionEvent[],
  serializeState: (snapshot: SessionSnapshot) => statePathOf(snapshot.value),
};

/**
 * The same, telling apart sessions with uses committed, one reservation open or more, and warned
 * or not: for shortest paths only (simple paths through these would be too many to walk).
 */
const richTraversal = {
  ...traversal,
  serializeState: (snapshot: SessionSnapshot) => {
    const { uses, warnedAt } = snapshot.context;
    return [statePathOf(snapshot.value), uses.usedUnits > 0, Math.min(2, Object.keys(uses.open).length), warnedAt !== null].join('|');
  },
};

/** What each announcement may follow, for one session. */
const NEXT: Record<string, string[]> = {
  start: ['session.activated', 'session.declined', 'session.stuck'],
  'session.activated': ['session.interrupted', 'session.logged_off', 'session.extended', 'session.warning'],
  'session.warning': ['session.interrupted', 'session.logged_off', 'session.extended'],
  'session.extended': ['session.interrupted', 'session.logged_off', 'session.extended', 'session.warning'],
  'session.interrupted': ['session.settled', 'session.extended', 'session.stuck'],
  'session.logged_off': ['session.settled', 'session.stuck'],
  'session.stuck': ['session.settled', 'session.declined', 'session.stuck'],
};

type Path = ReturnType<typeof getShortestPaths<typeof sessionMachine>>[number];

/** Checks one path's invariants step by step; true when it ended (settled or declined). */
function checkPath(path: Path): boolean {
  const label = path.steps.map((s) => s.event.type).join(' → ');
  const ledger = new Map<string, { entry: string; amount: bigint }>();
  let reservation = BigInt(path.steps[0]!.state.context.maxChargeMicros);
  let story = 'start';
  let previous: TaggedFacts | null = null;
  for (const { state } of path.steps) {
    const { context } = state;
    if (context.chargeMicros !== null) {
      expect(BigInt(context.chargeMicros) <= BigInt(context.maxChargeMicros), label).toBe(true);
      expect(BigInt(context.chargeMicros) >= 0n, label).toBe(true);
    }
    if (state.hasTag('seat')) expect(state.status, label).toBe('active');
    if (state.hasTag('stuck')) {
      expect(context.blocked, label).not.toBeNull();
      expect(deadlineOf(state), label).toBeNull();
    } else if (state.status === 'active' && state.hasTag('resting') && !state.hasTag('billable')) {
      // Waiting to retry, or in grace: something is scheduled.
      expect(deadlineOf(state), label).not.toBeNull();
    } else if (state.status === 'active' && !state.hasTag('resting')) {
      // A call is in flight.
      expect(Object.keys(state.children).length, label).toBeGreaterThan(0);
    }
    const next = factsOf(state);
    if (previous) {
      for (const booking of bookingsOf(previous, next)) {
        if (booking.kind === 'ledger' && !ledger.has(booking.key)) ledger.set(booking.key, { entry: booking.entry, amount: booking.amountMicros });
        if (booking.kind === 'reservation') reservation = booking.targetMicros;
      }
      for (const event of domainEventsOf(previous, next, 0)) {
        expect(NEXT[story], `${label}: ${story} → ${event.type}`).toContain(event.type);
        story = event.type;
      }
    }
    previous = next;
  }
  const last = path.steps.at(-1)!.state;
  if (last.status !== 'done') return false;
  expect(reservation, label).toBe(0n);
  expect(['session.settled', 'session.declined'], label).toContain(story);
  const sum = (entry: string) => [...ledger.values()].filter((l) => l.entry === entry).reduce((total, l) => total + l.amount, 0n);
  expect(sum('hold'), `${label}: holds balance`).toBe(sum('capture') + sum('release'));
  expect(sum('capture'), `${label}: captured as the slip says`).toBe(BigInt(last.context.chargeSlip?.amountMicros ?? '0'));
  return true;
}

describe('paths through the session machine', () => {
  it('reaches exactly the states the round-trip and fixture tests cover', () => {
    // Told apart by their uses: a reservation open at the cutoff is what reaches over_limit.awaiting_uses.
    const reached = new Set(getShortestPaths(sessionMachine, richTraversal).map((p) => statePathOf(p.state.value)));
    expect([...reached].sort()).toEqual(REACHABLE_STATES.map((s) => s.path).sort());
  });

  it('never charges beyond the limit, never waits on nothing, and ends with balanced books and a coherent story, on every simple path', () => {
    const paths = getSimplePaths(sessionMachine, traversal);
    expect(paths.length).toBeGreaterThan(100);
    expect(paths.filter(checkPath).length).toBeGreaterThan(50);
  });

  it('does the same on the shortest path to every state with uses reserved, committed, released, and warnings given', () => {
    const paths = getShortestPaths(sessionMachine, richTraversal);
    const withUses = paths.filter((p) => p.state.context.uses.usedUnits > 0);
    expect(withUses.length).toBeGreaterThan(5);
    expect(paths.filter((p) => p.state.context.warnedAt !== null).length).toBeGreaterThan(5);
    expect(paths.filter(checkPath).length).toBeGreaterThan(10);
  });
;
});
