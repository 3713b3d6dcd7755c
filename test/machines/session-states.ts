import { flatTariff } from '../../src/billing/tariff.js';
import { ManualClock } from '../../src/clock.js';
import { ScriptedCardCompany, START, startSession } from './session-harness.js';

const DAY = 86_400_000;
/** 100.00 at 0.0006 a minute lasts about 115 days: long enough to outlive a 7-day hold. */
const LONG = { maxChargeMicros: '100000000', tariff: flatTariff(600n) };

type Session = ReturnType<typeof startSession>;

/** How a session that reached a state ends once it is restored and every call succeeds. */
export interface Outcome {
  /** settled or declined; or a state it rests in (a blocked one waits for an operator, a long session runs on). */
  state: string;
  endReason?: string;
  chargeMicros?: string;
  /** An operator's RETRY is needed first (a call refused for good). */
  needsOperator?: boolean;
}

export interface ReachableState {
  /** The state path, as the history and operators read it. */
  path: string;
  reach(): Promise<Session>;
  outcome: Outcome;
}

function scripted(configure: (card: ScriptedCardCompany) => void = () => {}) {
  const clock = new ManualClock(START);
  const card = new ScriptedCardCompany(clock);
  configure(card);
  return { clock, card };
}

async function running(options: Parameters<typeof startSession>[0] = {}) {
  const session = startSession(options);
  await session.settle();
  return session;
}

async function extendFrom(session: Session) {
  session.actor.send({ type: 'EXTEND', at: session.clock.now(), maxChargeMicros: '8000000' });
  await session.settle();
  return session;
}

async function overLimit(configure: (card: ScriptedCardCompany) => void = () => {}) {
  const session = await running({ ...scripted(configure), input: { graceMs: 60_000 } });
  await session.advance(500_000);
  await session.settle();
  return session;
}

/** 1.00 of uses reserved at 0.01 each leave 4.00 to time: cut 400 s in, the reservation still open. */
async function awaitingUses() {
  const session = await running({ input: { tariff: { ...flatTariff(600_000n), perUse: { unit: 'unit', priceMicros: '10000' } } } });
  session.actor.send({ type: 'RESERVE_USE', at: session.clock.now(), units: 100 });
  await session.advance(400_000);
  await session.settle();
  return session;
}

async function loggedOff(afterMs: number, configure: (card: ScriptedCardCompany) => void) {
  const session = await running(scripted(configure));
  await session.advance(afterMs);
  session.actor.send({ type: 'LOGOFF', at: session.clock.now() });
  await session.settle();
  return session;
}

const refused = { kind: 'refused' as const, detail: 'CardNetworkRequestError: 409 hold_not_open', at: 0 };
const unanswered = { kind: 'unanswered' as const, detail: 'CardNetworkUnavailableError: timeout', at: 0 };

/** Settled at the 5.00 limit, 500 s in, when nothing else happens first. */
const atLimit: Outcome = { state: 'settled', endReason: 'charge_limit', chargeMicros: '5000000' };
/** Extended to 8.00 and run to it. */
const extended: Outcome = { state: 'settled', endReason: 'charge_limit', chargeMicros: '8000000' };
/** Logged off 42 s in: 0.42 at 0.01 a second. */
const loggedOff42: Outcome = { state: 'settled', endReason: 'logoff', chargeMicros: '420000' };
const voided: Outcome = { state: 'settled', endReason: 'logoff', chargeMicros: '0' };
const declined: Outcome = { state: 'declined', endReason: 'declined' };

/**
 * Every state a session can rest or wait in (the transient `deciding` and `choosing` excepted),
 * each with how to get there and how it ends when restored from its snapshot.
 */
export const REACHABLE_STATES: ReachableState[] = [
  { path: 'authorizing.requesting', reach: () => running(scripted((c) => (c.authorize = 'pending'))), outcome: atLimit },
  {
    path: 'authorizing.releasing.calling',
    reach: () => running(scripted((c) => ((c.authorize = unanswered), (c.releases = ['pending'])))),
    outcome: declined,
  },
  {
    path: 'authorizing.releasing.waiting',
    reach: () => running(scripted((c) => ((c.authorize = unanswered), (c.releases = [unanswered])))),
    outcome: declined,
  },
  {
    path: 'authorizing.releasing.blocked',
    reach: () => running(scripted((c) => ((c.authorize = unanswered), (c.releases = [refused])))),
    outcome: { ...declined, needsOperator: true },
  },
  { path: 'active.running', reach: () => running(), outcome: atLimit },
  {
    path: 'active.extending.reserving',
    reach: async () => extendFrom(await running(scripted((c) => (c.reservations = ['pending'])))),
    outcome: extended,
  },
  {
    path: 'active.extending.incrementing',
    reach: async () => extendFrom(await running(scripted((c) => (c.increments = ['pending'])))),
    outcome: extended,
  },
  {
    path: 'active.renewing',
    reach: async () => {
      const session = await running({ ...scripted((c) => (c.renewals = ['pending'])), input: LONG });
      await session.advance(6 * DAY);
      return session;
    },
    // 115 days of credit: an hour later it still runs, on its renewed hold.
    outcome: { state: 'active.running' },
  },
  { path: 'over_limit.grace', reach: () => overLimit(), outcome: atLimit },
  // Nothing committed within the window: the reservation goes back, and time's 4.00 is charged.
  { path: 'over_limit.awaiting_uses', reach: awaitingUses, outcome: { state: 'settled', endReason: 'charge_limit', chargeMicros: '4000000' } },
  {
    path: 'over_limit.extending.reserving',
    reach: async () => extendFrom(await overLimit((c) => (c.reservations = ['pending']))),
    outcome: extended,
  },
  {
    path: 'over_limit.extending.incrementing',
    reach: async () => extendFrom(await overLimit((c) => (c.increments = ['pending']))),
    outcome: extended,
  },
  { path: 'closing.capturing.calling', reach: () => loggedOff(42_000, (c) => (c.captures = ['pending'])), outcome: loggedOff42 },
  { path: 'closing.capturing.waiting', reach: () => loggedOff(42_000, (c) => (c.captures = [unanswered])), outcome: loggedOff42 },
  {
    path: 'closing.capturing.blocked',
    reach: () => loggedOff(42_000, (c) => (c.captures = [refused])),
    outcome: { ...loggedOff42, needsOperator: true },
  },
  { path: 'closing.voiding.calling', reach: () => loggedOff(500, (c) => (c.voids = ['pending'])), outcome: voided },
  { path: 'closing.voiding.waiting', reach: () => loggedOff(500, (c) => (c.voids = [unanswered])), outcome: voided },
  {
    path: 'closing.voiding.blocked',
    reach: () => loggedOff(500, (c) => (c.voids = [refused])),
    outcome: { ...voided, needsOperator: true },
  },
  { path: 'settled', reach: () => loggedOff(42_000, () => {}), outcome: loggedOff42 },
  {
    path: 'declined',
    reach: () => running(scripted((c) => (c.authorize = { kind: 'declined', reason: 'insufficient_funds', at: 0 }))),
    outcome: declined,
  },
];
