import { createActor, fromPromise, type Actor } from 'xstate';
import {
  deadlineOf,
  sessionMachine,
  type AuthorizeOutcome,
  type AuthorizeInput,
  type CallOutcome,
  type CaptureInput,
  type CaptureOutcome,
  type IncrementInput,
  type RenewInput,
  type ReserveInput,
  type VoidInput,
  type IncrementOutcome,
  type RenewOutcome,
  type ReserveOutcome,
  type SessionInput,
  type SessionSnapshot,
} from '../../machines/session/index.js';
import { flatTariff } from '../../src/billing/tariff.js';
import { ManualClock } from '../../src/clock.js';
import { DeadlineScheduler } from '../../src/time/deadline-scheduler.js';

export const START = Date.UTC(2026, 10, 22, 9, 0, 0);

export function input(overrides: Partial<SessionInput> = {}): SessionInput {
  return {
    sessionId: 'a0000000-0000-4000-8000-000000000001',
    accountId: 'a0000000-0000-4000-8000-0000000000aa',
    serviceId: 'a0000000-0000-4000-8000-0000000000bb',
    serverId: 'a0000000-0000-4000-8000-0000000000cc',
    currency: 'USD',
    tariff: flatTariff(600_000n),
    maxChargeMicros: '5000000',
    maxMs: null,
    createdAt: START,
    retry: { baseMs: 1000, maxMs: 8000 },
    graceMs: 0,
    renewBeforeMs: 86_400_000,
    warnings: { shareBasisPoints: null, secondsBefore: null },
    quote: null,
    ...overrides,
  };
}

/** An answer; or none ever; or a bug in the provided actor (it throws). */
type Scripted<T> = T | 'pending' | 'throws';
const never = <T>() => new Promise<T>(() => {});

/** A card company (and an account to reserve against) under the test's control. */
export class ScriptedCardCompany {
  authorize: Scripted<AuthorizeOutcome> = { kind: 'held', hold: hold(), at: START };
  releases: Scripted<CallOutcome>[] = [];
  renewals: Scripted<RenewOutcome>[] = [];
  reservations: Scripted<ReserveOutcome>[] = [];
  increments: Scripted<IncrementOutcome>[] = [];
  captures: Scripted<CaptureOutcome>[] = [];
  voids: Scripted<CallOutcome>[] = [];
  calls: string[] = [];
  /** What each call was asked, in order: the idempotency keys are made of these. */
  inputs: { src: string; input: unknown }[] = [];
  constructor(private readonly clock: ManualClock) {}

  private answer<T extends { at: number }>(next: Scripted<T>): Promise<T> {
    if (next === 'throws') return Promise.reject(new Error('bug in the card client'));
    return next === 'pending' ? never<T>() : Promise.resolve({ ...next, at: this.clock.now() });
  }

  actors() {
    return {
      authorizeHold: fromPromise<AuthorizeOutcome, AuthorizeInput>(async ({ input }) => {
        this.inputs.push({ src: 'authorizeHold', input });
        this.calls.push('authorize');
        return this.answer(this.authorize);
      }),
      releaseAuthorization: fromPromise<CallOutcome, AuthorizeInput>(async ({ input }) => {
        this.inputs.push({ src: 'releaseAuthorization', input });
        this.calls.push('release');
        return this.answer(this.releases.shift() ?? { kind: 'done', at: 0 });
      }),
      renewHold: fromPromise<RenewOutcome, RenewInput>(async ({ input }) => {
        this.inputs.push({ src: 'renewHold', input });
        this.calls.push(`renew ${input.attempt}`);
        return this.answer(
          this.renewals.shift() ?? {
            kind: 'held',
            hold: { ...hold(), holdId: `hold_${input.attempt + 1}`, authorizedAt: this.clock.now(), expiresAt: this.clock.now() + 7 * 86_400_000 },
            staleHoldId: null,
            at: 0,
          },
        );
      }),
      reserveExtension: fromPromise<ReserveOutcome, ReserveInput>(async ({ input }) => {
        this.inputs.push({ src: 'reserveExtension', input });
        this.calls.push(`reserve ${input.toMicros}`);
        return this.answer(this.reservations.shift() ?? { kind: 'reserved', at: 0 });
      }),
      incrementHold: fromPromise<IncrementOutcome, IncrementInput>(async ({ input }) => {
        this.inputs.push({ src: 'incrementHold', input });
        this.calls.push(`increment ${input.amountMicros}`);
        return this.answer(this.increments.shift() ?? { kind: 'raised', hold: { ...hold(), holdId: input.holdId, amountMicros: input.amountMicros }, at: 0 });
      }),
      captureCharge: fromPromise<CaptureOutcome, CaptureInput>(async ({ input }) => {
        this.inputs.push({ src: 'captureCharge', input });
        this.calls.push(`capture ${input.amountMicros}${input.staleHoldIds.length ? ` voiding ${input.staleHoldIds.join(' ')}` : ''}`);
        return this.answer(this.captures.shift() ?? { kind: 'captured', slip: slip(input.amountMicros, input.sessionId), at: 0 });
      }),
      voidHold: fromPromise<CallOutcome, VoidInput>(async ({ input }) => {
        this.inputs.push({ src: 'voidHold', input });
        this.calls.push(`void ${[...input.staleHoldIds, input.holdId].join(' ')}`);
        return this.answer(this.voids.shift() ?? { kind: 'done', at: 0 });
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

/** A charge slip; its id is the card company's, unique per session. */
export function slip(amountMicros: string, sessionId = 'a0000000-0000-4000-8000-000000000001') {
  return { id: `ch_${sessionId}`, authorizationNumber: 'AB12CD', amountMicros };
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
  const machine = sessionMachine.provide({ actors: card.actors() });
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
