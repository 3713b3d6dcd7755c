import { describe, expect, it } from 'vitest';
import { sessionEventSchema } from '../../machines/session/index.js';

/** Events from outside are parsed before they reach a session (DESIGN rule 9): what passes, what does not. */
const ok = (event: unknown) => sessionEventSchema.safeParse(event).success;

describe('session events from outside', () => {
  it.each(['LOGOFF', 'CUTOFF', 'TERMINATE', 'ABANDON', 'RETRY', 'RENEW_HOLD', 'GRACE_OVER', 'VOID', 'WARN'])('takes %s at an instant', (type) => {
    expect(ok({ type, at: 0 })).toBe(true);
    expect(ok({ type, at: 1_795_338_000_000 })).toBe(true);
    expect(ok({ type, at: -1 })).toBe(false);
    expect(ok({ type, at: 1.5 })).toBe(false);
    expect(ok({ type })).toBe(false);
  });

  it('takes the loss of a service with the instant it was last reached, not after now', () => {
    expect(ok({ type: 'SERVICE_LOST', at: 1_795_338_000_000, since: 1_795_337_995_000 })).toBe(true);
    expect(ok({ type: 'SERVICE_LOST', at: 1_795_338_000_000 })).toBe(false);
    expect(ok({ type: 'SERVICE_LOST', at: 1_795_338_000_000, since: -1 })).toBe(false);
  });

  it('refuses an event it does not know', () => {
    expect(ok({ type: 'SETTLE', at: 0 })).toBe(false);
  });

  it('takes an extension to a whole number of micro-units, up to 18 digits', () => {
    expect(ok({ type: 'EXTEND', at: 0, maxChargeMicros: '8000000' })).toBe(true);
    expect(ok({ type: 'EXTEND', at: 0, maxChargeMicros: '999999999999999999' })).toBe(true);
    for (const maxChargeMicros of ['1000000000000000000', '8.5', '-1', '', ' 1', '1 ', 8_000_000]) expect(ok({ type: 'EXTEND', at: 0, maxChargeMicros })).toBe(false);
  });

  it('takes uses of at least one unit and at most a million, committed ones of none', () => {
    for (const type of ['RESERVE_USE', 'USE']) {
      expect([1, 1_000_000].map((units) => ok({ type, at: 0, units }))).toEqual([true, true]);
      expect([0, 1_000_001, 1.5, -1].map((units) => ok({ type, at: 0, units }))).toEqual([false, false, false, false]);
    }
    expect([0, 1_000_000].map((units) => ok({ type: 'COMMIT_USE', at: 0, reservationId: 'r1', units }))).toEqual([true, true]);
    expect([-1, 1_000_001, 0.5].map((units) => ok({ type: 'COMMIT_USE', at: 0, reservationId: 'r1', units }))).toEqual([false, false, false]);
  });

  it('takes reservations by their own names only', () => {
    for (const type of ['COMMIT_USE', 'RELEASE_USE']) {
      expect(['r1', 'r999999999'].map((reservationId) => ok({ type, at: 0, reservationId, units: 1 }))).toEqual([true, true]);
      expect(['r', 'x1', 'r1x', 'r1234567890', ' r1'].map((reservationId) => ok({ type, at: 0, reservationId, units: 1 }))).toEqual([false, false, false, false, false]);
    }
  });
});
