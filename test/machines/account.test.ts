import { createActor } from 'xstate';
import { describe, expect, it } from 'vitest';
import {
  accountDeadlineOf,
  accountEventSchema,
  accountMachine,
  accountStateOf,
  type AccountChanger,
  type AccountSnapshot,
} from '../../machines/account/index.js';
import { ManualClock } from '../../src/clock.js';
import { DeadlineScheduler } from '../../src/time/deadline-scheduler.js';

const START = Date.UTC(2026, 10, 30, 9, 0, 0);
const HOUR = 3_600_000;
const customer: AccountChanger = { kind: 'customer', id: 'a0000000-0000-4000-8000-0000000000aa', name: 'Ada Lovelace' };
const operator: AccountChanger = { kind: 'operator', id: 'a0000000-0000-4000-8000-0000000000ee', name: 'grace-support' };
const tollgate: AccountChanger = { kind: 'system', id: null, name: 'tollgate' };

/** An account actor on a simulated clock, whose deadline is scheduled as the host schedules it. */
function startAccount(snapshot?: AccountSnapshot) {
  const clock = new ManualClock(START);
  const actor = createActor(accountMachine, {
    input: { accountId: customer.id!, createdAt: START },
    ...(snapshot && { snapshot }),
  });
  const scheduler = new DeadlineScheduler(clock, (_key, at) => actor.send({ type: 'RESUME', at, by: tollgate, reason: 'suspension ended' }), {
    setTimeout: () => null,
    clearTimeout: () => {},
  });
  const arm = (s: AccountSnapshot) => {
    const deadline = accountDeadlineOf(s);
    if (deadline) scheduler.schedule('account', deadline.at);
    else scheduler.cancel('account');
  };
  actor.subscribe(arm);
  actor.start();
  arm(actor.getSnapshot());
  return {
    actor,
    clock,
    advance(ms: number) {
      clock.advance(ms);
      scheduler.runDue();
    },
    state: () => accountStateOf(actor.getSnapshot()),
  };
}

function activeAccount() {
  const account = startAccount();
  account.actor.send({ type: 'CARD_VERIFIED', at: START, by: customer, reason: 'card checked at sign-up' });
  return account;
}

/** What a row holds: the persisted snapshot through JSON, as jsonb gives it back. */
const persisted = (snapshot: AccountSnapshot) =>
  JSON.parse(JSON.stringify(createActor(accountMachine, { snapshot, input: { accountId: customer.id!, createdAt: START } }).getPersistedSnapshot())) as AccountSnapshot;

describe('account machine', () => {
  it('is new until its card is verified, and only then opens sessions', () => {
    const account = startAccount();
    expect(account.state()).toBe('new');
    expect(account.actor.getSnapshot().hasTag('opens')).toBe(false);
    account.actor.send({ type: 'CARD_VERIFIED', at: START + 5, by: customer, reason: 'card checked at sign-up' });
    expect(account.state()).toBe('active');
    expect(account.actor.getSnapshot().hasTag('opens')).toBe(true);
    expect(account.actor.getSnapshot().context.since).toBe(START + 5);
  });

  it('records who suspended it and why, ends sessions while suspended, and opens again on resume', () => {
    const account = activeAccount();
    account.advance(HOUR);
    account.actor.send({ type: 'SUSPEND', at: account.clock.now(), by: operator, reason: 'chargeback under review', until: null });
    const suspended = account.actor.getSnapshot();
    expect(account.state()).toBe('suspended');
    expect(suspended.hasTag('opens')).toBe(false);
    expect(suspended.hasTag('ends_sessions')).toBe(true);
    expect(suspended.context.lastChange).toEqual({ event: 'SUSPEND', at: START + HOUR, by: operator, reason: 'chargeback under review' });
    expect(accountDeadlineOf(suspended)).toBeNull();
    account.advance(HOUR);
    account.actor.send({ type: 'RESUME', at: account.clock.now(), by: operator, reason: 'cleared' });
    expect(account.state()).toBe('active');
    expect(account.actor.getSnapshot().context).toMatchObject({ since: START + 2 * HOUR, resumesAt: null });
  });

  it('resumes by itself at the end of a suspension that has one, and not a moment before', () => {
    const account = activeAccount();
    account.actor.send({ type: 'SUSPEND', at: START, by: operator, reason: 'cooling off', until: START + 24 * HOUR });
    expect(accountDeadlineOf(account.actor.getSnapshot())).toEqual({ at: START + 24 * HOUR, event: 'RESUME' });
    account.advance(24 * HOUR - 1);
    expect(account.state()).toBe('suspended');
    account.advance(1);
    expect(account.state()).toBe('active');
    expect(account.actor.getSnapshot().context.lastChange).toMatchObject({ event: 'RESUME', by: tollgate, at: START + 24 * HOUR });
  });

  it('ignores the end of an earlier suspension once suspended again for longer', () => {
    const account = activeAccount();
    account.actor.send({ type: 'SUSPEND', at: START, by: operator, reason: 'first look', until: START + HOUR });
    account.actor.send({ type: 'SUSPEND', at: START + 1, by: operator, reason: 'worse than thought', until: START + 10 * HOUR });
    // The first end, delivered late, as a scheduler that had not yet heard of the second would.
    account.actor.send({ type: 'RESUME', at: START + HOUR, by: tollgate, reason: 'suspension ended' });
    expect(account.state()).toBe('suspended');
    account.advance(10 * HOUR);
    expect(account.state()).toBe('active');
  });

  it('closes only when no session is unsettled, and then for good', () => {
    const account = activeAccount();
    const close = (unsettledSessions: number) => ({ type: 'CLOSE', at: START, by: customer, reason: 'moving on', unsettledSessions }) as const;
    expect(account.actor.getSnapshot().can(close(2))).toBe(false);
    account.actor.send(close(2));
    expect(account.state()).toBe('active');
    account.actor.send(close(0));
    const closed = account.actor.getSnapshot();
    expect(account.state()).toBe('closed');
    expect(closed.status).toBe('done');
    expect(closed.context.closedAt).toBe(START);
    expect(closed.hasTag('self_service')).toBe(false);
    expect(closed.can({ type: 'RESUME', at: START, by: operator, reason: 'oops' })).toBe(false);
  });

  it('may be closed while suspended, once its sessions have settled', () => {
    const account = activeAccount();
    account.actor.send({ type: 'SUSPEND', at: START, by: operator, reason: 'fraud', until: START + HOUR });
    account.actor.send({ type: 'CLOSE', at: START + 1, by: operator, reason: 'fraud confirmed', unsettledSessions: 0 });
    expect(account.state()).toBe('closed');
    expect(account.actor.getSnapshot().context).toMatchObject({ closedAt: START + 1, resumesAt: null, since: START + 1 });
    expect(accountDeadlineOf(account.actor.getSnapshot())).toBeNull();
  });

  it('records the card check that made it active', () => {
    const account = activeAccount();
    expect(account.actor.getSnapshot().context).toEqual({
      accountId: customer.id,
      createdAt: START,
      since: START,
      lastChange: { event: 'CARD_VERIFIED', at: START, by: customer, reason: 'card checked at sign-up' },
      resumesAt: null,
      closedAt: null,
    });
  });

  it('is not resumed by tollgate before its suspension ends, nor at all when it has no end', () => {
    const account = activeAccount();
    account.actor.send({ type: 'SUSPEND', at: START, by: operator, reason: 'review', until: START + HOUR });
    account.actor.send({ type: 'RESUME', at: START + HOUR - 1, by: tollgate, reason: 'suspension ended' });
    expect(account.state()).toBe('suspended');
    account.actor.send({ type: 'SUSPEND', at: START + 1, by: operator, reason: 'until further notice', until: null });
    expect(account.actor.getSnapshot().context).toMatchObject({ resumesAt: null, since: START + 1 });
    account.actor.send({ type: 'RESUME', at: START + 2 * HOUR, by: tollgate, reason: 'suspension ended' });
    expect(account.state()).toBe('suspended');
    // An operator may resume it at any time.
    account.actor.send({ type: 'RESUME', at: START + 2 * HOUR, by: operator, reason: 'cleared' });
    expect(account.state()).toBe('active');
  });

  it('may be closed before its card is ever verified, with when and why', () => {
    const account = startAccount();
    account.actor.send({ type: 'CLOSE', at: START + 7, by: customer, reason: 'changed my mind', unsettledSessions: 0 });
    expect(account.state()).toBe('closed');
    expect(account.actor.getSnapshot().context).toMatchObject({
      since: START + 7,
      closedAt: START + 7,
      resumesAt: null,
      lastChange: { event: 'CLOSE', at: START + 7, by: customer, reason: 'changed my mind' },
    });
  });

  it('lets its customer serve themselves until it is closed, and ends sessions while suspended or closed', () => {
    const account = startAccount();
    const tags = () => [...account.actor.getSnapshot().tags].sort();
    expect(tags()).toEqual(['self_service']);
    account.actor.send({ type: 'CARD_VERIFIED', at: START, by: customer, reason: 'card checked at sign-up' });
    expect(tags()).toEqual(['opens', 'self_service']);
    account.actor.send({ type: 'SUSPEND', at: START, by: operator, reason: 'review', until: null });
    expect(tags()).toEqual(['ends_sessions', 'self_service']);
    account.actor.send({ type: 'CLOSE', at: START + 1, by: operator, reason: 'closed by review', unsettledSessions: 0 });
    expect(tags()).toEqual(['ends_sessions']);
  });

  it('is not closed while a session is unsettled, whatever state it is in', () => {
    const fresh = startAccount();
    fresh.actor.send({ type: 'CLOSE', at: START, by: customer, reason: 'moving on', unsettledSessions: 1 });
    expect(fresh.state()).toBe('new');
    const suspended = activeAccount();
    suspended.actor.send({ type: 'SUSPEND', at: START, by: operator, reason: 'review', until: null });
    suspended.actor.send({ type: 'CLOSE', at: START, by: operator, reason: 'fraud', unsettledSessions: 1 });
    expect(suspended.state()).toBe('suspended');
  });

  it('parses events from outside and refuses malformed ones', () => {
    expect(accountEventSchema.safeParse({ type: 'SUSPEND', at: START, by: operator, reason: 'x', until: null }).success).toBe(true);
    expect(accountEventSchema.safeParse({ type: 'SUSPEND', at: START, by: operator, reason: '', until: null }).success).toBe(false);
    expect(accountEventSchema.safeParse({ type: 'CLOSE', at: START, by: customer, reason: 'x', unsettledSessions: -1 }).success).toBe(false);
    // A customer may close their own account, and a card verification may be theirs.
    expect(accountEventSchema.safeParse({ type: 'CLOSE', at: START, by: customer, reason: 'x', unsettledSessions: 0 }).success).toBe(true);
    expect(accountEventSchema.safeParse({ type: 'CARD_VERIFIED', at: START, by: customer, reason: 'x' }).success).toBe(true);
    const ok = (event: object) => accountEventSchema.safeParse({ at: START, by: operator, reason: 'x', ...event }).success;
    expect([{ type: 'CARD_VERIFIED' }, { type: 'RESUME' }, { type: 'CLOSE', unsettledSessions: 0 }, { type: 'SUSPEND', until: START + 1 }].map(ok)).toEqual([true, true, true, true]);
    expect(
      [
        { type: 'REOPEN' },
        { type: 'RESUME', at: -1 },
        { type: 'RESUME', at: 0.5 },
        { type: 'RESUME', reason: 'x'.repeat(501) },
        { type: 'RESUME', by: { ...operator, kind: 'robot' } },
        { type: 'RESUME', by: { ...operator, name: '' } },
        { type: 'RESUME', by: { ...operator, name: 'x'.repeat(201) } },
        { type: 'RESUME', by: { ...operator, id: 'x'.repeat(101) } },
        { type: 'SUSPEND', until: -1 },
        { type: 'SUSPEND' },
        { type: 'CLOSE', unsettledSessions: 0.5 },
      ].map(ok),
    ).toEqual(Array(11).fill(false));
    expect([{ type: 'RESUME', reason: 'x'.repeat(500), by: { ...tollgate, name: 'x'.repeat(200) } }, { type: 'RESUME', by: { ...operator, id: 'x'.repeat(100) } }].map(ok)).toEqual([true, true]);
  });
});

describe('account persistence', () => {
  /** Every reachable state, as a snapshot a row would hold. */
  function reachable(): Record<string, AccountSnapshot> {
    const fresh = startAccount();
    const states: Record<string, AccountSnapshot> = { new: fresh.actor.getSnapshot() };
    const active = activeAccount();
    states.active = active.actor.getSnapshot();
    active.actor.send({ type: 'SUSPEND', at: START, by: operator, reason: 'review', until: START + 2 * HOUR });
    states.suspended = active.actor.getSnapshot();
    active.actor.send({ type: 'CLOSE', at: START + 1, by: operator, reason: 'closed by review', unsettledSessions: 0 });
    states.closed = active.actor.getSnapshot();
    return states;
  }

  it.each(Object.entries(reachable()))('restores %s from JSON with its tags, context and deadline', (_name, snapshot) => {
    const restored = startAccount(persisted(snapshot));
    const after = restored.actor.getSnapshot();
    expect(after.value).toEqual(snapshot.value);
    expect(after.context).toEqual(snapshot.context);
    expect([...after.tags].sort()).toEqual([...snapshot.tags].sort());
    expect(accountDeadlineOf(after)).toEqual(accountDeadlineOf(snapshot));
  });

  it('re-arms a restored suspension’s end, and fires at once one already past', () => {
    const account = activeAccount();
    account.actor.send({ type: 'SUSPEND', at: START, by: operator, reason: 'review', until: START + 2 * HOUR });
    const stored = persisted(account.actor.getSnapshot());
    const restored = startAccount(stored);
    restored.advance(2 * HOUR);
    expect(restored.state()).toBe('active');
    const late = startAccount(stored);
    late.advance(5 * HOUR);
    expect(late.state()).toBe('active');
    expect(late.actor.getSnapshot().context.lastChange?.at).toBe(START + 2 * HOUR);
  });
});
