import type { ChargeSlipInfo, EndReason, SessionContext } from './session.types.js';

/** A session as the journal sees it on each side of a transition. */
export interface SessionFacts {
  context: SessionContext;
  /** settled or declined: nothing more will happen to it. */
  final: boolean;
}

/**
 * What a transition books, beside the row itself. Each booking is idempotent by its key or by
 * its nature (a reservation is a target, not a delta), so a transition written twice (a commit
 * whose answer was lost, then retried) books once.
 */
export type Booking =
  | {
      kind: 'ledger';
      /** Unique per session: the same entry is never booked twice. */
      key: string;
      entry: 'hold' | 'capture' | 'release';
      debit: 'card_hold' | 'card_available' | 'receivable';
      credit: 'card_hold' | 'card_available';
      amountMicros: bigint;
      authorizationNumber: string;
    }
  /** The session's share of its account's outstanding limit becomes exactly this. */
  | { kind: 'reservation'; targetMicros: bigint }
  | { kind: 'charge_slip'; slip: ChargeSlipInfo }
  /** The marketing log row is completed with how the session ended. */
  | { kind: 'log_completed'; startedAt: number | null; endedAt: number | null; chargeMicros: bigint; endReason: EndReason | null };

/**
 * The session's share of the outstanding limit, as a function of its state: its charge limit
 * while it may still run (with a reserved extension, the limit asked for; after an increment that
 * went unanswered, at least what it may have raised the hold to), nothing once final.
 */
export function reservationOf(facts: SessionFacts): bigint {
  if (facts.final) return 0n;
  const extension = facts.context.extension;
  const limit = BigInt(extension?.outcome === 'pending' ? extension.toMicros : facts.context.maxChargeMicros);
  const unconfirmed = extension?.unconfirmedMicros === undefined ? 0n : BigInt(extension.unconfirmedMicros);
  return limit > unconfirmed ? limit : unconfirmed;
}

/**
 * Everything a transition from `previous` to `next` books, as a pure function of the two
 * (previous is null for a session's first row, written by the open). It does not depend on
 * which events led from one to the other, so transitions written late may be folded into one.
 */
export function bookingsOf(previous: SessionFacts | null, next: SessionFacts): Booking[] {
  const bookings: Booking[] = [...holdBookings(previous?.context.hold ?? null, next.context)];
  if (previous === null || reservationOf(previous) !== reservationOf(next)) {
    bookings.push({ kind: 'reservation', targetMicros: reservationOf(next) });
  }
  if (next.final && !previous?.final) bookings.push(...finalBookings(next.context));
  return bookings;
}

/**
 * Hold rows follow the hold in the context: a new hold books its amount (and a renewal
 * releases the one it replaced); an incremental authorization books the difference.
 */
function holdBookings(previous: SessionContext['hold'], c: SessionContext): Booking[] {
  const hold = c.hold;
  if (!hold) return [];
  const book = (amountMicros: bigint): Booking => ({
    kind: 'ledger',
    key: `hold:${hold.holdId}:${hold.amountMicros}`,
    entry: 'hold',
    debit: 'card_hold',
    credit: 'card_available',
    amountMicros,
    authorizationNumber: hold.authorizationNumber,
  });
  if (!previous || previous.holdId !== hold.holdId) {
    const bookings = [book(BigInt(hold.amountMicros))];
    if (previous) {
      bookings.push({
        kind: 'ledger',
        key: `release:${previous.holdId}`,
        entry: 'release',
        debit: 'card_available',
        credit: 'card_hold',
        amountMicros: BigInt(previous.amountMicros),
        authorizationNumber: previous.authorizationNumber,
      });
    }
    return bookings;
  }
  if (previous.amountMicros !== hold.amountMicros) return [book(BigInt(hold.amountMicros) - BigInt(previous.amountMicros))];
  return [];
}

/** A session that ends completes its log row and, settled, books its charge slip and releases the rest of its hold. */
function finalBookings(c: SessionContext): Booking[] {
  const charged = c.chargeSlip ? BigInt(c.chargeSlip.amountMicros) : 0n;
  const bookings: Booking[] = [
    { kind: 'log_completed', startedAt: c.startedAt, endedAt: c.endedAt, chargeMicros: c.chargeMicros === null ? 0n : BigInt(c.chargeMicros), endReason: c.endReason },
  ];
  if (!c.hold) return bookings;
  const { holdId, authorizationNumber } = c.hold;
  if (c.chargeSlip) {
    bookings.push(
      { kind: 'ledger', key: `capture:${holdId}`, entry: 'capture', debit: 'receivable', credit: 'card_hold', amountMicros: charged, authorizationNumber },
      { kind: 'charge_slip', slip: c.chargeSlip },
    );
  }
  bookings.push({
    kind: 'ledger',
    key: `release:${holdId}`,
    entry: 'release',
    debit: 'card_available',
    credit: 'card_hold',
    amountMicros: BigInt(c.hold.amountMicros) - charged,
    authorizationNumber,
  });
  return bookings;
}
