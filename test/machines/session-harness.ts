import { createActor, fromPromise, type Actor } from 'xstate';
import {
  deadlineOf,
  sessionMachine,
  type AuthorizeOutcome,
  type CallOutcome,
  type CaptureOutcome,
  type IncrementOutcome,
  type RenewOutcome,
  type SessionInput,
  type SessionSnapshot,
  type VoidOutcome,
} from '../../machines/session/index.js';
import { ManualClock } from '../../src/clock.js';
import { DeadlineScheduler } from '../../src/supervisor/deadline-scheduler.js';

export const START = Date.UTC(2026, 10, 22, 9, 0, 0);

export function input(overrides: Partial<SessionInput> = {}): SessionInput {
  return {
    sessionId: 'a0000000-0000-4000-8000-000000000001',
    accountId: 'a0000000-0000-4000-8000-0000000000aa',
    serviceId: 'a0000000-0000-4000-8000-0000000000bb',
    serverId: 'a0000000-0000-4000-8000-0000000000cc',
    currency: 'USD',
    pricePerMinuteMicros: '600000',
    maxChargeMicros: '5000000',
    maxMs: null,
    createdAt: START,
    retry: { baseMs: 1000, maxMs: 8000 },
    graceMs: 0,
    renewBeforeMs: 86_400_000,
    ...overrides,
  };
}

/** A card company under the test's control: each call waits for the test to answer it. */
export class ScriptedCardCompany {
  authorize: AuthorizeOutcome | 'pending' = { ok: true, hold: hold(), at: START };
  releases: CallOutcome[] = [];
  renewals: (RenewOutcome | 'pending')[] = [];
  increments: (IncrementOutcome | 'pending')[] = [];
  captures: (CaptureOutcome | 'pending')[] = [];
  voids: VoidOutcome[] = [];
  calls: string[] = [];
  constructor(private readonly clock: ManualClock) {}

  actors() {
    return {
      authorizeHold: fromPromise<AuthorizeOutcome>(async () => {
        this.calls.push('authorize');
        if (this.authorize === 'pending') return new Promise<never>(() => {});
        return { ...this.authorize, at: this.clock.now() };
      }),
      releaseAuthorization: fromPromise<CallOutcome>(async () => {
        this.calls.push('release');
        return { ...(this.releases.shift() ?? { ok: true, at: 0 }), at: this.clock.now() };
      }),
      renewHold: fromPromise<RenewOutcome, { attempt: number }>(async ({ input }) => {
        this.calls.push(`renew ${input.attempt}`);
        const next = this.renewals.shift() ?? {
          ok: true,
          hold: { ...hold(), holdId: `hold_${input.attempt + 1}`, authorizedAt: this.clock.now(), expiresAt: this.clock.now() + 7 * 86_400_000 },
          at: 0,
        };
        if (next === 'pending') return new Promise<never>(() => {});
        return { ...next, at: this.clock.now() };
      }),
      incrementHold: fromPromise<IncrementOutcome, { amountMicros: string; holdId: string }>(async ({ input }) => {
        this.calls.push(`increment ${input.amountMicros}`);
        const next = this.increments.shift() ?? { ok: true, hold: { ...hold(), holdId: input.holdId, amountMicros: input.amountMicros }, at: 0 };
        if (next === 'pending') return new Promise<never>(() => {});
        return { ...next, at: this.clock.now() };
      }),
      interruptService: fromPromise<void>(async () => {
        this.calls.push('interrupt');
      }),
      captureCharge: fromPromise<CaptureOutcome, { amountMicros: string; staleHoldIds: string[] }>(async ({ input }) => {
        this.calls.push(`capture ${input.amountMicros}${input.staleHoldIds.length ? ` voiding ${input.staleHoldIds.join(' ')}` : ''}`);
        const next = this.captures.shift() ?? { ok: true, slip: slip(input.amountMicros), at: 0 };
        if (next === 'pending') return new Promise<never>(() => {});
        return { ...next, at: this.clock.now() };
      }),
      voidHold: fromPromise<VoidOutcome, { holdId: string; staleHoldIds: string[] }>(async ({ input }) => {
        this.calls.push(`void ${[...input.staleHoldIds, input.holdId].join(' ')}`);
        return { ...(this.voids.shift() ?? { ok: true, at: 0 }), at: this.clock.now() };
      }),
    };
  }
}

export function hold() {
  return {
    holdId: 'hold_1',
    authorizationNumber: 'AB12CD',
    amountMicros: '5000000',
    authorizedAt: START,
    expiresAt: START + 7 * 86_400_000,
  };
}

export function slip(amountMicros: string) {
  return { id: 'ch_1', authorizationNumber: 'AB12CD', amountMicros };
}

/**
 * A session actor with its deadlines driven by a manual clock, the way the supervisor drives
 * them: `advance` moves time and fires whatever fell due.
 */
export function startSession(
  options: { input?: Partial<SessionInput>; snapshot?: SessionSnapshot; card?: ScriptedCardCompany; clock?: ManualClock } = {},
) {
  const clock = options.clock ?? new ManualClock(START);
  const card = options.card ?? new ScriptedCardCompany(clock);
  const machine = sessionMachine.provide({ actors: card.actors() as never });
  let actor: Actor<typeof machine>;
  const scheduler = new DeadlineScheduler(
    clock,
    () => {
      const deadline = deadlineOf(actor.getSnapshot());
      if (deadline) actor.send({ type: deadline.event, at: clock.now() });
    },
    { setTimeout: () => null, clearTimeout: () => {} },
  );
  const sessionInput = input(options.input);
  actor = createActor(machine, options.snapshot ? { snapshot: options.snapshot, input: sessionInput } : { input: sessionInput });
  actor.subscribe((snapshot) => {
    const deadline = deadlineOf(snapshot);
    if (deadline) scheduler.schedule('session', deadline.at);
    else scheduler.cancel('session');
  });
  actor.start();
  const initial = deadlineOf(actor.getSnapshot());
  if (initial) scheduler.schedule('session', initial.at);
  return {
    actor,
    clock,
    card,
    scheduler,
    /** Lets promise actors answer. */
    settle: () => new Promise((resolve) => setTimeout(resolve, 0)),
    advance: async (ms: number) => {
      clock.advance(ms);
      scheduler.runDue();
      await new Promise((resolve) => setTimeout(resolve, 0));
    },
    persisted: () => JSON.parse(JSON.stringify(actor.getPersistedSnapshot())) as SessionSnapshot,
  };
}
