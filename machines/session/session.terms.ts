import { billableAt, chargeFor, cutoffOf, timeChargeMicros, wallAt, type Cutoff, type SessionTerms } from '../../src/billing/charge.js';
import { MICROS_PER_CENT } from '../../src/billing/money.js';
import type { EndReason, SessionContext } from './session.types.js';

/**
 * The session's arithmetic over its context: what it has cost, when it must stop, when to warn.
 * Pure: the machine's actions and guards, and the views, read the same answers.
 */

type TermsContext = Pick<SessionContext, 'tariff' | 'maxChargeMicros' | 'maxMs' | 'startedAt' | 'createdAt' | 'resumes' | 'uses'> &
  Partial<Pick<SessionContext, 'quote'>>;

/** What uses hold back from what time may spend: the committed and the reserved. */
export function usesHeld(context: Pick<SessionContext, 'uses'>): bigint {
  return BigInt(context.uses.usedMicros) + BigInt(context.uses.reservedMicros);
}

/**
 * The charge limit with `usesMicros` of uses held. A quote for a time holds a cent more than its
 * total (agreedHold, `holdsCent`) so that its time binds, not its last increment's start; a use
 * may not spend that cent: once the session has uses, the agreed total is the limit (until an
 * extension raises the limit past it).
 */
export function limitWith(context: Pick<TermsContext, 'maxChargeMicros' | 'quote'>, usesMicros: bigint): bigint {
  const limit = BigInt(context.maxChargeMicros);
  const quote = context.quote;
  // Left out by a session opened before it was kept: such a hold of exactly a cent more is taken to be it.
  if (!quote || quote.holdsCent === false || usesMicros <= 0n) return limit;
  const total = BigInt(quote.totalMicros);
  return limit - total === MICROS_PER_CENT ? total : limit;
}

export function termsOf(context: TermsContext, overrides: Partial<SessionTerms> = {}): SessionTerms {
  const startedAt = context.startedAt ?? context.createdAt;
  // Opened on a quote after its start: priced as the quote priced it (an outside probe's quote for
  // two minutes at 1.00, opened as a 2.00 hour began, ran one minute for the whole total).
  const quotedAt = context.quote?.startAt;
  const usesMicros = overrides.usesMicros ?? usesHeld(context);
  return {
    tariff: context.tariff,
    maxChargeMicros: limitWith(context, usesMicros),
    maxMs: context.maxMs,
    startedAt,
    resumes: context.resumes,
    usesMicros,
    ...(quotedAt !== undefined && quotedAt !== startedAt && { priceShiftMs: quotedAt - startedAt }),
    ...overrides,
  };
}

/** Billable time between the start and `at`: time paused over the limit is not billed. */
export function billableMs(context: TermsContext, at: number): number {
  return context.startedAt === null ? 0 : billableAt(termsOf(context), at);
}

/** The wall instant the session must stop, and why, from its context. */
export function cutoffInstant(context: TermsContext, overrides: Partial<SessionTerms> = {}): { at: number; reason: Cutoff['reason'] } {
  const terms = termsOf(context, overrides);
  const cutoff = cutoffOf(terms);
  return { at: wallAt(terms, cutoff.afterMs), reason: cutoff.reason };
}

/**
 * When to warn the customer that the cutoff nears: the earlier of the instant its charge reaches
 * the share of the limit and `secondsBefore` the cutoff; never before `now`; null when no
 * warning is configured or it would come at the cutoff itself.
 */
export function warnAtOf(context: TermsContext & Pick<SessionContext, 'warnings'>, cutoffAt: number, now: number): number | null {
  const { shareBasisPoints, secondsBefore } = context.warnings;
  const candidates: number[] = [];
  if (secondsBefore !== null) candidates.push(cutoffAt - secondsBefore * 1000);
  if (shareBasisPoints !== null) {
    const share = (BigInt(context.maxChargeMicros) * BigInt(shareBasisPoints)) / 10_000n;
    // When the charge reaches the share, not the end of the increment that reaches it.
    const partial = cutoffOf(termsOf(context, { maxChargeMicros: share }), { wholeIncrement: false });
    if (partial.reason === 'charge_limit') candidates.push(wallAt(termsOf(context), partial.afterMs));
  }
  if (candidates.length === 0) return null;
  const at = Math.max(now, Math.min(...candidates));
  return at < cutoffAt ? at : null;
}

/** Where a session whose service was lost `since` ends: not after `at` (when the loss was told), never before its start. */
export function lostAt(context: Pick<SessionContext, 'startedAt'>, event: { at: number; since: number }): number {
  return Math.min(event.at, Math.max(event.since, context.startedAt ?? event.since));
}

/** The charge for a session that ends at `at` (never past its cutoff), uses committed included. */
export function endedAt(context: SessionContext, at: number, reason: EndReason): Partial<SessionContext> {
  const ended = Math.min(at, context.cutoffAt ?? at);
  // Reservations not committed by the end are released, not charged.
  const terms = termsOf(context, { usesMicros: BigInt(context.uses.usedMicros) });
  return {
    endedAt: ended,
    endReason: reason,
    chargeMicros: chargeFor(terms, billableMs(context, ended), BigInt(context.uses.usedMicros)).toString(),
    renewAt: null,
    warnAt: null,
  };
}

/** What the limit leaves at `at` once `units` more uses are held (negative: they do not fit); null when the session takes no uses. */
export function usesLeave(context: SessionContext, at: number, units: number): bigint | null {
  const price = context.tariff.perUse ? BigInt(context.tariff.perUse.priceMicros) : null;
  if (price === null || context.startedAt === null) return null;
  const spent = timeChargeMicros(termsOf(context), billableMs(context, at));
  const held = usesHeld(context) + price * BigInt(units);
  return limitWith(context, held) - spent - held;
}

/** Whether `units` more uses at the tariff's price fit what the limit leaves at `at`. */
export function useFits(context: SessionContext, at: number, units: number): boolean {
  const left = usesLeave(context, at, units);
  return left !== null && left >= 0n;
}

/**
 * Why a new charge limit would change nothing, or null when it raises the limit: it must be
 * above the current one, and the time limit must not end the session before the new limit could.
 */
export function extensionRefusal(context: TermsContext, maxChargeMicros: string): 'not_higher' | 'time_limit_binds' | null {
  if (BigInt(maxChargeMicros) <= BigInt(context.maxChargeMicros)) return 'not_higher';
  const terms = termsOf(context);
  if (cutoffOf({ ...terms, maxChargeMicros: BigInt(maxChargeMicros) }).afterMs <= cutoffOf(terms).afterMs) return 'time_limit_binds';
  return null;
}
