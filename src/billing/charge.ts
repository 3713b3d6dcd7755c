import { ceilToCents, type Micros, MICROS_PER_CENT, minMicros, truncateToCents } from './money.js';
import { isFlat, priceAt, type BillingSpec, type TariffSpec } from './tariff.js';
import { sameLocalTime } from './zoned-time.js';

/** Billable time `billableAtMs` went on again at wall instant `wallAtMs` (after a pause over the limit). */
export interface Resume {
  billableAtMs: number;
  wallAtMs: number;
}

/** What a session's charge is computed from. Time is billable time: pauses over the limit are not billed. */
export interface SessionTerms {
  tariff: TariffSpec;
  maxChargeMicros: Micros;
  /** Billable time limit in milliseconds, or null for none (the charge limit still applies). */
  maxMs: number | null;
  /** Wall instant billable time 0 began. */
  startedAt: number;
  resumes: readonly Resume[];
  /** What uses have taken (committed, and reserved): time may spend only the rest. */
  usesMicros: Micros;
  /**
   * The tariff's hours are read this much after the wall clock: a session opened on a quote after
   * the quote's start (negative) is priced as the quote priced it, as though it began then.
   */
  priceShiftMs?: number;
}

export type LimitReason = 'charge_limit' | 'time_limit';

export interface Cutoff {
  /** Billable milliseconds after the start at which the session must stop. */
  afterMs: number;
  reason: LimitReason;
}

/**
 * The longest any session runs: at the smallest price a charge limit could lie beyond any
 * instant PostgreSQL stores (DESIGN rule 16: every computed instant stays in range).
 */
export const MAX_SESSION_SPAN_MS = 100 * 365 * 86_400_000;
const MAX_SPAN_SECONDS = MAX_SESSION_SPAN_MS / 1000;

const WEEK_SECONDS = 7 * 86_400;

/** A run of billed seconds [from, to) all at one price per minute. */
export interface PricedRun {
  from: number;
  to: number;
  pricePerMinuteMicros: Micros;
}

/** The wall instant of a billable instant. */
export function wallAt(terms: Pick<SessionTerms, 'startedAt' | 'resumes'>, billableMs: number): number {
  let wall = terms.startedAt + billableMs;
  for (const resume of terms.resumes) if (resume.billableAtMs <= billableMs) wall = resume.wallAtMs + (billableMs - resume.billableAtMs);
  return wall;
}

/** The billable instant of a wall instant; during a pause, where billable time stopped. */
export function billableAt(terms: Pick<SessionTerms, 'startedAt' | 'resumes'>, wallMs: number): number {
  const pieces = [{ billableAtMs: 0, wallAtMs: terms.startedAt }, ...terms.resumes];
  let billable = 0;
  for (const [i, piece] of pieces.entries()) {
    if (piece.wallAtMs > wallMs) break;
    const next = pieces[i + 1];
    billable = piece.billableAtMs + (wallMs - piece.wallAtMs);
    if (next) billable = Math.min(billable, next.billableAtMs);
  }
  return Math.max(0, billable);
}

/**
 * The billed seconds, in runs of one price: second j is priced at the wall instant it starts.
 * A run ends where the tariff's price may change (a local hour) or billable time paused.
 */
export function* pricedRuns(terms: Pick<SessionTerms, 'tariff' | 'startedAt' | 'resumes' | 'priceShiftMs'>, start = 0): Generator<PricedRun> {
  let from = start;
  let current: PricedRun | null = null;
  /** The last run ended where billable time paused: the next starts a run of its own (its line is not drawn across the pause). */
  let paused = false;
  while (from < MAX_SPAN_SECONDS) {
    const resume = [...terms.resumes].reverse().find((r) => r.billableAtMs <= from * 1000);
    const piece = resume ?? { billableAtMs: 0, wallAtMs: terms.startedAt };
    const nextResume = terms.resumes.find((r) => r.billableAtMs > from * 1000);
    const shift = terms.priceShiftMs ?? 0;
    const { pricePerMinuteMicros, until } = priceAt(terms.tariff, piece.wallAtMs + shift + (from * 1000 - piece.billableAtMs));
    let to = until === Infinity ? Infinity : Math.ceil((until - shift - piece.wallAtMs + piece.billableAtMs) / 1000);
    const pauseAt = nextResume ? Math.ceil(nextResume.billableAtMs / 1000) : Infinity;
    to = Math.max(Math.min(to, pauseAt), from + 1);
    // Runs of one price are merged, but end after a week: a tariff free for ever (all its prices
    // zero) otherwise made one run of every hour up to the longest span, 876,000 look-ups for a
    // cutoff; a week lets spans() see a free week and stop.
    if (current && !paused && current.pricePerMinuteMicros === pricePerMinuteMicros && (to === Infinity || to - current.from <= WEEK_SECONDS)) current.to = to;
    else {
      if (current) yield current;
      current = { from, to, pricePerMinuteMicros };
    }
    if (to === Infinity) break;
    paused = to === pauseAt;
    from = to;
  }
  if (current) yield current;
}

/** Seconds billed once `completed` whole seconds have run: the first period at once, then whole increments. */
export function billedSeconds(billing: BillingSpec, completed: number): number {
  if (completed <= 0) return 0;
  const first = billing.firstPeriodSeconds;
  if (completed <= first) return first;
  return first + Math.ceil((completed - first) / billing.incrementSeconds) * billing.incrementSeconds;
}

/** The fewest whole seconds that must run for `billed` seconds to be billed. */
export function secondsToBill(billing: BillingSpec, billed: number): number {
  if (billed <= 0) return 0;
  const first = billing.firstPeriodSeconds;
  if (billed <= first) return 1;
  return first + (Math.ceil((billed - first) / billing.incrementSeconds) - 1) * billing.incrementSeconds + 1;
}

/** Billed seconds [from, to) and Σ of their prices per minute, with the runs they are made of. */
interface Span {
  from: number;
  to: number;
  /** Null for a run without end (one price for ever). */
  sixtieths: bigint | null;
  runs(): Iterable<PricedRun>;
}

function* runsWithin(terms: Pick<SessionTerms, 'tariff' | 'startedAt' | 'resumes' | 'priceShiftMs'>, from: number, to: number): Generator<PricedRun> {
  for (const run of pricedRuns(terms, from)) {
    if (run.from >= to) return;
    yield { ...run, to: Math.min(run.to, to) };
  }
}

/**
 * The billed seconds in spans, for sums over long stretches: a tariff repeats every week, so once
 * billable time runs on without pause, a week whose clocks do not change costs what any such week
 * costs, and is counted in one step (two look-ups of local time, not 168).
 */
function* spans(terms: Pick<SessionTerms, 'tariff' | 'startedAt' | 'resumes' | 'priceShiftMs'>): Generator<Span> {
  const lastResume = terms.resumes.at(-1);
  const steady = Math.ceil((lastResume?.billableAtMs ?? 0) / 1000);
  let week: bigint | null = null;
  for (const run of pricedRuns(terms)) {
    if (isFlat(terms.tariff) || run.from < steady || run.to === Infinity) {
      yield { from: run.from, to: run.to, sixtieths: run.to === Infinity ? null : run.pricePerMinuteMicros * BigInt(run.to - run.from), runs: () => [run] };
      continue;
    }
    // From here on, week by week; the first one is walked and its cost kept.
    for (let from = run.from; from < MAX_SPAN_SECONDS; from += WEEK_SECONDS) {
      const to = from + WEEK_SECONDS;
      const shift = terms.priceShiftMs ?? 0;
      const steadyClocks = sameLocalTime(terms.tariff.timeZone, wallAt(terms, from * 1000) + shift, wallAt(terms, to * 1000) + shift);
      if (week !== null && steadyClocks) {
        // Nothing is ever charged in a week where every hour is free: no later one charges either.
        if (week === 0n) return;
        yield { from, to, sixtieths: week, runs: () => runsWithin(terms, from, to) };
        continue;
      }
      // Walked run by run (a cutoff near the start is found without walking the whole week).
      let sum = 0n;
      for (const r of runsWithin(terms, from, to)) {
        const sixtieths = r.pricePerMinuteMicros * BigInt(r.to - r.from);
        sum += sixtieths;
        yield { from: r.from, to: r.to, sixtieths, runs: () => [r] };
      }
      if (steadyClocks) week = sum;
    }
    return;
  }
}

/** Σ over the first `billed` seconds of their price per minute: sixty times their cost in micro-units. */
function sixtiethsOf(terms: Pick<SessionTerms, 'tariff' | 'startedAt' | 'resumes' | 'priceShiftMs'>, billed: number): bigint {
  let sum = 0n;
  for (const span of spans(terms)) {
    if (span.from >= billed) break;
    if (span.to <= billed && span.sixtieths !== null) {
      sum += span.sixtieths;
      continue;
    }
    for (const run of span.runs()) {
      if (run.from >= billed) break;
      sum += run.pricePerMinuteMicros * BigInt(Math.min(run.to, billed) - run.from);
    }
  }
  return sum;
}

/** What `billableMs` of use costs by the clock (uses aside), before any cap or rounding. */
export function timeChargeMicros(terms: Pick<SessionTerms, 'tariff' | 'startedAt' | 'resumes' | 'priceShiftMs'>, billableMs: number): Micros {
  const billed = billedSeconds(terms.tariff.billing, Math.floor(Math.max(0, billableMs) / 1000));
  return sixtiethsOf(terms, billed) / 60n;
}

/**
 * The exact billable instant at which the session hits a limit, in closed form over the runs of
 * one price (never by stepping through seconds): the first whole second whose charge, with what
 * uses took, reaches maxCharge; or the time limit; or the longest span; whichever is first.
 */
export function cutoffOf(terms: SessionTerms, options: { /** False: the first second the charge reaches the limit (a warning's share), even inside an increment. */ wholeIncrement?: boolean } = {}): Cutoff {
  const budget = terms.maxChargeMicros - terms.usesMicros;
  // floor(sixtieths / 60) ≥ budget ⟺ sixtieths ≥ 60 × budget.
  const target = budget * 60n;
  const billed = budget <= 0n ? 0 : firstBilledReaching(terms, target);
  const reaching = billed === null ? null : secondsToBill(terms.tariff.billing, billed);
  const seconds = reaching === null || options.wholeIncrement === false ? reaching : runsWithinLimit(terms, reaching, budget);
  const chargeLimitMs = seconds === null || seconds > MAX_SPAN_SECONDS ? null : seconds * 1000;
  const timeLimitMs = Math.min(terms.maxMs ?? MAX_SESSION_SPAN_MS, MAX_SESSION_SPAN_MS);
  // A time limit that coincides with the charge limit is reported as the time limit the customer set.
  if (chargeLimitMs === null || timeLimitMs <= chargeLimitMs) return { afterMs: timeLimitMs, reason: 'time_limit' };
  return { afterMs: chargeLimitMs, reason: 'charge_limit' };
}

/**
 * Where the cut goes once `reaching` whole seconds bill a charge that reaches `budget`. Billed by
 * whole increments (or a first period), that second bills its whole increment: an increment whose
 * charge is exactly the budget is the customer's to its end (1.00 buys the minute it pays for,
 * not its first second: an outside probe's session, and a quote's promised minute, were cut one
 * second in and charged the minute). One that costs more than is left is cut as it begins, charged
 * the limit.
 */
function runsWithinLimit(terms: SessionTerms, reaching: number, budget: Micros | bigint): number {
  const end = billedSeconds(terms.tariff.billing, reaching);
  return end > reaching && sixtiethsOf(terms, end) / 60n <= budget ? end : reaching;
}

/** The fewest billed seconds whose prices sum to `target` sixtieths, or null when not within the longest span. */
function firstBilledReaching(terms: SessionTerms, target: bigint): number | null {
  let sum = 0n;
  for (const span of spans(terms)) {
    if (span.sixtieths !== null && sum + span.sixtieths < target) {
      sum += span.sixtieths;
      continue;
    }
    for (const run of span.runs()) {
      const price = run.pricePerMinuteMicros;
      const length = run.to === Infinity ? null : BigInt(run.to - run.from);
      if (price > 0n && (length === null || sum + price * length >= target)) {
        const more = (target - sum + price - 1n) / price;
        return more < BigInt(MAX_SPAN_SECONDS) ? run.from + Number(more) : null;
      }
      if (length !== null) sum += price * length;
    }
  }
  return null;
}

/** What a session that ran at all is charged at least (a limit below it is refused at the open). */
export function minimumChargeOf(tariff: TariffSpec): Micros {
  return BigInt(tariff.billing.minimumChargeMicros) as Micros;
}

/** Whether a session that ran `billableMs` with `usedMicros` of uses is charged its minimum. */
function ranAtAll(billableMs: number, usedMicros: Micros): boolean {
  return billableMs >= 1000 || usedMicros > 0n;
}

/**
 * What the card is charged after `billableMs` of use and `usedMicros` of committed uses: the time
 * charge (never past the cutoff), plus the uses, at most maxCharge, rounded down to whole cents
 * (the customer never pays a fraction of a cent; at the charge limit the limit is whole cents,
 * so the charge equals it), and at least the minimum charge of a session that ran at all.
 */
export function chargeFor(terms: SessionTerms, billableMs: number, usedMicros: Micros): Micros {
  const elapsed = Math.min(billableMs, cutoffOf(terms).afterMs);
  const charge = truncateToCents(minMicros(timeChargeMicros(terms, elapsed) + usedMicros, terms.maxChargeMicros));
  if (!ranAtAll(elapsed, usedMicros)) return charge;
  const minimum = minMicros(minimumChargeOf(terms.tariff), terms.maxChargeMicros);
  return charge < minimum ? minimum : charge;
}

/** One line of an itemized charge; the lines of a charge add up to it. */
export type ChargeLine =
  | { kind: 'time'; from: number; to: number; seconds: number; pricePerMinuteMicros: Micros; chargeMicros: Micros }
  | { kind: 'uses'; units: number; chargeMicros: Micros }
  | { kind: 'minimum'; chargeMicros: Micros };

/**
 * The charge of chargeFor, itemized: a line per run of one price (wall instants, seconds billed,
 * price, charge), one for the uses, one for a minimum charge's top-up. Each line is the
 * difference of the capped, rounded running total before and after it, so they add up exactly.
 */
export function itemize(terms: SessionTerms, billableMs: number, uses: { units: number; micros: Micros }): ChargeLine[] {
  const elapsed = Math.min(billableMs, cutoffOf(terms).afterMs);
  const billed = billedSeconds(terms.tariff.billing, Math.floor(Math.max(0, elapsed) / 1000));
  const settle = (micros: Micros) => truncateToCents(minMicros(micros, terms.maxChargeMicros));
  // At the limit it is the time that stops short, not the uses (each was let through whole): time
  // is itemized within what the uses leave of the limit, and the total is chargeFor's all the same.
  const timeCap = (terms.maxChargeMicros - minMicros(uses.micros, terms.maxChargeMicros)) as Micros;
  const settleTime = (micros: Micros) => truncateToCents(minMicros(micros, timeCap));
  const lines: ChargeLine[] = [];
  let sum = 0n;
  let before = 0n;
  for (const run of pricedRuns(terms)) {
    if (run.from >= billed) break;
    const to = Math.min(run.to, billed);
    sum += run.pricePerMinuteMicros * BigInt(to - run.from);
    const after = settleTime((sum / 60n) as Micros);
    lines.push({
      kind: 'time',
      from: wallAt(terms, run.from * 1000),
      to: wallAt(terms, to * 1000 - 1) + 1,
      seconds: to - run.from,
      pricePerMinuteMicros: run.pricePerMinuteMicros,
      chargeMicros: after - before,
    });
    before = after;
  }
  if (uses.units > 0) {
    const after = settle((minMicros((sum / 60n) as Micros, timeCap) + uses.micros) as Micros);
    lines.push({ kind: 'uses', units: uses.units, chargeMicros: after - before });
    before = after;
  }
  const charge = chargeFor(terms, billableMs, uses.micros);
  if (charge > before) lines.push({ kind: 'minimum', chargeMicros: charge - before });
  return lines;
}

/** What exactly `billableMs` of time is charged, no use and no limit: to the cent (truncated, as every charge), at least the minimum. */
export function chargeOfTime(terms: Omit<SessionTerms, 'maxChargeMicros' | 'usesMicros' | 'maxMs'>, billableMs: number): Micros {
  const charge = truncateToCents(timeChargeMicros(terms, billableMs));
  const minimum = minimumChargeOf(terms.tariff);
  return charge < minimum ? minimum : charge;
}

/**
 * A hold that pays for exactly `maxMs` of time, made one that lets the time bind. Rounded to
 * cents (a price with fractions of a cent a second), the charge can reach what the time costs
 * before the time is up, and the session would be cut there as at its charge limit. One cent more
 * lets the time limit bind; the charge still never passes the time's cost. (Whole increments no
 * longer need it: one that costs exactly what is left runs to its end, runsWithinLimit.)
 */
export function holdForTime(request: { tariff: TariffSpec; at: number; maxMs: number; holdMicros: Micros }): Micros {
  const { tariff, at, maxMs, holdMicros } = request;
  const cut = cutoffOf({ tariff, startedAt: at, resumes: [], maxChargeMicros: holdMicros, usesMicros: 0n as Micros, maxMs });
  return cut.reason === 'time_limit' ? holdMicros : ((holdMicros + MICROS_PER_CENT) as Micros);
}

/** What `billableMs` can cost at most, rounded up to a cent: the hold a time-limited session needs. */
export function costOfTime(terms: Omit<SessionTerms, 'maxChargeMicros' | 'usesMicros' | 'maxMs'>, billableMs: number): Micros {
  const rounded = ceilToCents(timeChargeMicros(terms, billableMs));
  const minimum = minimumChargeOf(terms.tariff);
  return rounded < minimum ? minimum : rounded;
}
