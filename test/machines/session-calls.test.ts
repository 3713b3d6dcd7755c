import { describe, expect, it } from 'vitest';
import { deadlineOf, stateNameOf, statePathOf } from '../../machines/session/index.js';
import { flatTariff } from '../../src/billing/tariff.js';
import { ManualClock } from '../../src/clock.js';
import { hold, ScriptedCardCompany, START, startSession } from './session-harness.js';

/**
 * What the session asks the card company (the idempotency keys are made of it: the session,
 * the operation, the attempt), and what it keeps of each failed answer for operators to read.
 */
const DAY = 86_400_000;
const sessionId = 'a0000000-0000-4000-8000-000000000001';
const accountId = 'a0000000-0000-4000-8000-0000000000aa';
const authorization = { sessionId, accountId, amountMicros: '5000000', currency: 'USD', attempt: 0 };

function scripted(configure: (card: ScriptedCardCompany) => void = () => {}) {
  const clock = new ManualClock(START);
  const card = new ScriptedCardCompany(clock);
  configure(card);
  return { clock, card };
}

/** A session started with `options`, logged off 42 s in (0.42 to capture), once its calls have answered. */
async function loggedOffAfter42s(options: Parameters<typeof startSession>[0]) {
  const session = startSession(options);
  await session.settle();
  await session.advance(42_000);
  session.actor.send({ type: 'LOGOFF', at: session.clock.now() });
  await session.settle();
  return session;
}

describe('calls to the card company', () => {
  it('authorizes the limit as attempt 0, and captures the charge on the hold it got', async () => {
    const session = startSession();
    await session.settle();
    await session.advance(42_000);
    session.actor.send({ type: 'LOGOFF', at: session.clock.now() });
    await session.settle();
    expect(session.card.inputs).toEqual([
      { src: 'authorizeHold', input: authorization },
      { src: 'captureCharge', input: { sessionId, holdId: 'hold_1', amountMicros: '420000', staleHoldIds: [] } },
    ]);
  });

  it('releases an unanswered authorization by replaying it with the same key', async () => {
    const session = startSession(scripted((c) => ((c.authorize = { kind: 'unanswered', detail: 'timeout', at: 0 }), (c.releases = ['pending']))));
    await session.settle();
    expect(session.card.inputs).toEqual([
      { src: 'authorizeHold', input: authorization },
      { src: 'releaseAuthorization', input: authorization },
    ]);
    expect(session.actor.getSnapshot().context).toMatchObject({
      endedAt: START,
      endReason: 'declined',
      declineReason: 'card_network_unavailable',
      lastError: 'timeout',
    });
  });

  it('ends declined without a release when the authorization is refused as a request', async () => {
    const session = startSession(scripted((c) => (c.authorize = { kind: 'refused', detail: '409 idempotency_key_reused', at: 0 })));
    await session.settle();
    expect(stateNameOf(session.actor.getSnapshot())).toBe('declined');
    expect(session.actor.getSnapshot().context).toMatchObject({ declineReason: 'card_refused', lastError: '409 idempotency_key_reused' });
    expect(session.card.calls).toEqual(['authorize']);
  });

  it('releases after a bug in the authorization call, saying so', async () => {
    const session = startSession(scripted((c) => ((c.authorize = 'throws'), (c.releases = ['pending']))));
    await session.settle();
    expect(session.actor.getSnapshot().value).toEqual({ authorizing: { releasing: 'calling' } });
    expect(session.actor.getSnapshot().context).toMatchObject({
      endedAt: START,
      declineReason: 'internal_error',
      lastError: 'Error: bug in the card client',
    });
  });

  it('retries a release that threw, a second after the session ended', async () => {
    const session = startSession(scripted((c) => ((c.authorize = { kind: 'unanswered', detail: 'timeout', at: 0 }), (c.releases = ['throws']))));
    await session.settle();
    expect(session.actor.getSnapshot().value).toEqual({ authorizing: { releasing: 'waiting' } });
    expect(session.actor.getSnapshot().context).toMatchObject({ lastError: 'internal error: Error: bug in the card client', retryAt: START + 1000 });
    expect(deadlineOf(session.actor.getSnapshot())).toEqual({ at: START + 1000, event: 'RETRY' });
  });

  it('waits for an operator when a release is refused for good; the operator’s void ends it declined', async () => {
    const session = startSession(
      scripted((c) => ((c.authorize = { kind: 'unanswered', detail: 'timeout', at: 0 }), (c.releases = [{ kind: 'refused', detail: '409 hold_not_open', at: 0 }]))),
    );
    await session.settle();
    const blocked = session.actor.getSnapshot();
    expect(blocked.value).toEqual({ authorizing: { releasing: 'blocked' } });
    expect(blocked.hasTag('stuck')).toBe(true);
    expect(blocked.context).toMatchObject({ blocked: { operation: 'release', detail: '409 hold_not_open', at: START }, retryAt: null, closeAttempts: 1 });
    session.actor.send({ type: 'VOID', at: START + 5_000 });
    expect(stateNameOf(session.actor.getSnapshot())).toBe('declined');
    expect(session.actor.getSnapshot().context).toMatchObject({ blocked: null, lastError: null, retryAt: null });
  });

  it('retries a capture again when an operator asks, with the failure cleared', async () => {
    const session = await loggedOffAfter42s(scripted((c) => (c.captures = [{ kind: 'refused', detail: '409 hold_not_open', at: 0 }, 'pending'])));
    expect(session.actor.getSnapshot().context.blocked).toEqual({ operation: 'capture', detail: '409 hold_not_open', at: START + 42_000 });
    session.actor.send({ type: 'RETRY', at: session.clock.now() });
    expect(session.actor.getSnapshot().value).toEqual({ closing: { capturing: 'calling' } });
    expect(session.actor.getSnapshot().context).toMatchObject({ blocked: null, lastError: null, retryAt: null });
  });

  it('voids the hold instead of a capture an operator forgives, and notes that the charge was forgiven', async () => {
    const session = await loggedOffAfter42s(scripted((c) => ((c.captures = [{ kind: 'refused', detail: '409 hold_not_open', at: 0 }]), (c.voids = ['pending']))));
    session.actor.send({ type: 'VOID', at: session.clock.now() });
    await session.settle();
    expect(session.actor.getSnapshot().value).toEqual({ closing: { voiding: 'calling' } });
    // Owed until the hold is voided: a void the card company refuses leaves the charge to capture.
    expect(session.actor.getSnapshot().context).toMatchObject({ chargeMicros: '420000', lastError: 'charge voided by an operator', blocked: null });
    expect(session.card.inputs.at(-1)).toEqual({ src: 'voidHold', input: { sessionId, holdId: 'hold_1', staleHoldIds: [] } });
  });

  it('settles a forgiven charge at 0 once its hold is voided, and takes no VOID while a capture is on its way', async () => {
    const unanswered = { kind: 'unanswered' as const, detail: 'timeout', at: 0 };
    const session = await loggedOffAfter42s(scripted((c) => (c.captures = [unanswered, 'pending'])));
    expect(session.actor.getSnapshot().value).toEqual({ closing: { capturing: 'waiting' } });
    session.actor.send({ type: 'RETRY', at: session.clock.now() });
    await session.settle();
    expect(session.actor.getSnapshot().value).toEqual({ closing: { capturing: 'calling' } });
    expect(session.actor.getSnapshot().can({ type: 'VOID', at: session.clock.now() })).toBe(false);
  });

  it('captures again when the hold of a forgiven charge cannot be voided: the unanswered capture was made after all', async () => {
    const unanswered = { kind: 'unanswered' as const, detail: 'timeout', at: 0 };
    const session = await loggedOffAfter42s(scripted((c) => ((c.captures = [unanswered]), (c.voids = [{ kind: 'refused', detail: '409 hold_not_open: the hold is captured', at: 0 }]))));
    session.actor.send({ type: 'VOID', at: session.clock.now() });
    await session.settle();
    expect(session.actor.getSnapshot().value).toEqual({ closing: { voiding: 'blocked' } });
    expect(session.actor.getSnapshot().context.chargeMicros).toBe('420000');
    session.actor.send({ type: 'RETRY', at: session.clock.now() });
    await session.settle();
    expect(stateNameOf(session.actor.getSnapshot())).toBe('settled');
    expect(session.actor.getSnapshot().context).toMatchObject({ chargeMicros: '420000', chargeSlip: { amountMicros: '420000' } });
    expect(session.card.inputs.at(-1)).toMatchObject({ src: 'captureCharge', input: { amountMicros: '420000' } });
  });

  it('waits longer after each unanswered capture, up to the longest wait', async () => {
    const unanswered = { kind: 'unanswered' as const, detail: '503', at: 0 };
    const session = await loggedOffAfter42s(scripted((c) => (c.captures = [unanswered, unanswered, unanswered, unanswered, unanswered, 'pending'])));
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      const { retryAt, lastError } = session.actor.getSnapshot().context;
      expect(lastError).toBe('503');
      waits.push(retryAt! - session.clock.now());
      await session.advance(retryAt! - session.clock.now());
      await session.settle();
    }
    expect(waits).toEqual([1000, 2000, 4000, 8000, 8000]);
  });

  it('retries a capture that threw from when it was due', async () => {
    const session = await loggedOffAfter42s(scripted((c) => (c.captures = [{ kind: 'unanswered', detail: '503', at: 0 }, 'throws', 'pending'])));
    await session.advance(1000);
    await session.settle();
    // Due at 43 s, second attempt: two seconds later.
    expect(session.actor.getSnapshot().value).toEqual({ closing: { capturing: 'waiting' } });
    expect(session.actor.getSnapshot().context).toMatchObject({ retryAt: START + 45_000, closeAttempts: 2, lastError: 'internal error: Error: bug in the card client' });
  });

  it('retries a void that threw a second after the end, and clears the failure once it is done', async () => {
    const session = startSession(scripted((c) => (c.voids = ['throws', { kind: 'unanswered', detail: '503', at: 0 }])));
    await session.settle();
    session.actor.send({ type: 'LOGOFF', at: START + 500 });
    await session.settle();
    expect(session.actor.getSnapshot().value).toEqual({ closing: { voiding: 'waiting' } });
    expect(session.actor.getSnapshot().context).toMatchObject({ retryAt: START + 1_500, closeAttempts: 1, lastError: 'internal error: Error: bug in the card client' });
    await session.advance(1_500);
    expect(session.actor.getSnapshot().context).toMatchObject({ retryAt: START + 3_500, closeAttempts: 2, lastError: '503' });
    await session.advance(2_000);
    expect(statePathOf(session.actor.getSnapshot().value)).toBe('settled');
    expect(session.actor.getSnapshot().context).toMatchObject({ lastError: null, retryAt: null, chargeMicros: '0' });
  });
});

describe('calls for extensions and renewals', () => {
  const longSession = { maxChargeMicros: '100000000', tariff: flatTariff(600n) };

  it('reserves and raises each extension as its own attempt', async () => {
    const session = startSession();
    await session.settle();
    session.actor.send({ type: 'EXTEND', at: START, maxChargeMicros: '8000000' });
    await session.settle();
    session.actor.send({ type: 'EXTEND', at: START, maxChargeMicros: '9000000' });
    await session.settle();
    expect(session.card.inputs.slice(1)).toEqual([
      { src: 'reserveExtension', input: { sessionId, accountId, toMicros: '8000000', attempt: 1 } },
      { src: 'incrementHold', input: { sessionId, holdId: 'hold_1', amountMicros: '8000000', attempt: 1, mayHoldMicros: null } },
      { src: 'reserveExtension', input: { sessionId, accountId, toMicros: '9000000', attempt: 2 } },
      { src: 'incrementHold', input: { sessionId, holdId: 'hold_1', amountMicros: '9000000', attempt: 2, mayHoldMicros: null } },
    ]);
    expect(session.actor.getSnapshot().context).toMatchObject({ extensions: 2, maxChargeMicros: '9000000', cutoffAt: START + 900_000 });
  });

  it('keeps the hold’s grant instant when it is raised', async () => {
    const session = startSession(scripted((c) => (c.increments = [{ kind: 'raised', hold: { ...hold(), amountMicros: '8000000', authorizedAt: START + 99 }, at: 0 }])));
    await session.settle();
    session.actor.send({ type: 'EXTEND', at: START, maxChargeMicros: '8000000' });
    await session.settle();
    expect(session.actor.getSnapshot().context.hold).toEqual({ ...hold(), amountMicros: '8000000', authorizedAt: START });
  });

  it.each([
    ['declined by the account', { reservations: [{ kind: 'declined' as const, reason: 'outstanding_limit_reached', at: 0 }] }, 'outstanding_limit_reached'],
    ['unanswered by the account', { reservations: [{ kind: 'unanswered' as const, detail: 'timeout', at: 0 }] }, 'timeout'],
    ['a bug reserving', { reservations: ['throws' as const] }, 'internal error: Error: bug in the card client'],
    ['unanswered by the card company', { increments: [{ kind: 'unanswered' as const, detail: 'timeout', at: 0 }] }, 'card_network_unavailable'],
    ['refused by the card company', { increments: [{ kind: 'refused' as const, detail: '409', at: 0 }] }, 'card_network_unavailable'],
    ['a bug raising', { increments: ['throws' as const] }, 'internal error: Error: bug in the card client'],
  ])('declines an extension %s, with why, and runs on at the old limit', async (_label, answers, reason) => {
    const session = startSession(scripted((c) => Object.assign(c, answers)));
    await session.settle();
    session.actor.send({ type: 'EXTEND', at: START, maxChargeMicros: '8000000' });
    await session.settle();
    expect(session.actor.getSnapshot().value).toEqual({ active: 'running' });
    expect(session.actor.getSnapshot().context).toMatchObject({
      maxChargeMicros: '5000000',
      cutoffAt: START + 500_000,
      extensions: 1,
      extension: { outcome: 'declined', reason, fromMicros: '5000000', toMicros: '8000000', requestedAt: START },
    });
  });

  it('renews as attempts 1, 2, … naming the hold each replaces', async () => {
    const session = startSession({ ...scripted(), input: longSession });
    await session.settle();
    await session.advance(6 * DAY);
    await session.settle();
    await session.advance(6 * DAY);
    await session.settle();
    const renewal = { sessionId, accountId, amountMicros: '100000000', currency: 'USD' };
    expect(session.card.inputs.slice(1)).toEqual([
      { src: 'renewHold', input: { ...renewal, attempt: 1, previousHoldId: 'hold_1', lastTry: false } },
      { src: 'renewHold', input: { ...renewal, attempt: 2, previousHoldId: 'hold_2', lastTry: false } },
    ]);
    expect(session.actor.getSnapshot().context).toMatchObject({ reauthorizations: 2, renewAt: START + 12 * DAY + 6 * DAY, lastError: null });
  });

  it('renews a hold that lasts less than two days halfway through its life', async () => {
    const session = startSession({
      ...scripted((c) => (c.authorize = { kind: 'held', hold: { ...hold(), authorizedAt: START, expiresAt: START + DAY }, at: START })),
      input: longSession,
    });
    await session.settle();
    expect(deadlineOf(session.actor.getSnapshot())).toEqual({ at: START + DAY / 2, event: 'RENEW_HOLD' });
  });

  it('retries a renewal soon after a bug in it, never past its last try, half a renewal window before the hold lapses', async () => {
    const session = startSession({
      ...scripted((c) => (c.renewals = ['throws'])),
      input: { ...longSession, retry: { baseMs: 2 * DAY, maxMs: 4 * DAY } },
    });
    await session.settle();
    await session.advance(6 * DAY);
    await session.settle();
    expect(session.actor.getSnapshot().value).toEqual({ active: 'running' });
    // The backoff would say 8 days; the hold lapses at 7, renewed from 6: the last try is at 6.5.
    expect(session.actor.getSnapshot().context).toMatchObject({ renewAt: START + 6.5 * DAY, closeAttempts: 1, lastError: 'internal error: Error: bug in the card client' });
  });

  it('ends at what it accrued, and charges it on the hold while it is still open, when its last renewal fails too', async () => {
    const unanswered = { kind: 'unanswered' as const, detail: 'no answer within 1500 ms', at: 0 };
    const session = startSession({
      ...scripted((c) => (c.renewals = [unanswered, 'throws', unanswered])),
      input: { ...longSession, retry: { baseMs: DAY / 4, maxMs: DAY } },
    });
    await session.settle();
    await session.advance(6 * DAY);
    await session.settle();
    expect(session.actor.getSnapshot().context.renewAt).toBe(START + 6.25 * DAY);
    await session.advance(DAY / 4);
    await session.settle();
    // The backoff would say 6.75 days: the last try is at 6.5.
    expect(session.actor.getSnapshot().context.renewAt).toBe(START + 6.5 * DAY);
    await session.advance(DAY / 4);
    await session.settle();
    const { context } = session.actor.getSnapshot();
    // 561,600 s at 0.00001 a second is 5.616, charged as 5.61, while the hold (to day 7) still holds.
    expect(context).toMatchObject({ endReason: 'reauthorization_declined', declineReason: 'no answer within 1500 ms', endedAt: START + 6.5 * DAY, chargeMicros: '5610000' });
    expect(stateNameOf(session.actor.getSnapshot())).toBe('settled');
    expect(session.card.calls).toEqual(['authorize', 'renew 1', 'renew 1', 'renew 1', 'capture 5610000']);
  });

  it('closes at what it accrued when a renewal is refused, saying why', async () => {
    const session = startSession({ ...scripted((c) => (c.renewals = [{ kind: 'refused', detail: '409 card_expired', at: 0 }])), input: longSession });
    await session.settle();
    await session.advance(6 * DAY);
    await session.settle();
    expect(session.actor.getSnapshot().context).toMatchObject({ endReason: 'reauthorization_declined', declineReason: '409 card_expired', endedAt: START + 6 * DAY });
  });
});
