import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/** Prices by weekday and hour, billing increments, quotes: over HTTP, with time skipped on the test's clock. */
// Monday 30 November 2026, 09:59 UTC.
const clock = new ManualClock(Date.UTC(2026, 10, 30, 9, 59));
let tollgate: TestTollgate;
let ops: Record<string, string>;

beforeAll(async () => {
  tollgate = await startTestTollgate({ clock });
  ops = { authorization: `Bearer ${tollgate.adminToken}` };
});
afterAll(async () => {
  await tollgate.stop();
});

/** Moves the clock by `ms` and reads the session until it has settled (the cut and its capture run on their own). */
async function settledAfter(ms: number, sessionId: string, headers: Record<string, string>) {
  clock.advance(ms);
  let view = (await tollgate.app.inject({ url: `/v1/sessions/${sessionId}`, headers })).json();
  for (let i = 0; i < 100 && view.state !== 'settled'; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    view = (await tollgate.app.inject({ url: `/v1/sessions/${sessionId}`, headers })).json();
  }
  return view;
}

/** A service at 0.60 a minute, 1.20 on Mondays from 10 to 11 (UTC). */
async function peakService(extra: Record<string, unknown> = {}) {
  const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' });
  const patched = await tollgate.app.inject({
    method: 'PATCH',
    url: `/v1/services/${serviceId}`,
    headers: ops,
    payload: { tariff: { timeZone: 'UTC', rules: [{ days: [1], fromHour: 10, toHour: 11, pricePerMinute: '1.20' }], ...extra } },
  });
  expect(patched.statusCode, patched.body).toBe(200);
  return serviceId;
}

describe('a tariff by weekday and hour', () => {
  it('charges a session that crosses a boundary both prices, itemized on its view and captured as one', async () => {
    const serviceId = await peakService();
    const customer = await signUp(tollgate.app);
    clock.set(Date.UTC(2026, 10, 30, 9, 59));
    const opened = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '10.00' } })).json();
    expect(opened.pricePerMinute).toBe('0.60');
    clock.advance(2 * 60_000);
    const live = (await tollgate.app.inject({ url: `/v1/sessions/${opened.id}`, headers: customer.auth })).json();
    expect(live).toMatchObject({ pricePerMinute: '1.20', accrued: '1.80' });
    const ended = (await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${opened.id}/logoff`, headers: customer.auth })).json();
    expect(ended).toMatchObject({ state: 'settled', charge: '1.80' });
    expect(ended.lines).toEqual([
      { kind: 'time', from: '2026-11-30T09:59:00.000Z', to: '2026-11-30T10:00:00.000Z', seconds: 60, pricePerMinute: '0.60', charge: '0.60' },
      { kind: 'time', from: '2026-11-30T10:00:00.000Z', to: '2026-11-30T10:01:00.000Z', seconds: 60, pricePerMinute: '1.20', charge: '1.20' },
    ]);
    const captures = await sandbox(tollgate.cardNetworkUrl).captures();
    expect(captures.find((c) => c.id === ended.chargeSlip.id)?.amount).toBe('1.80');
  });

  it('bills by started increment after the first period, and at least the minimum', async () => {
    const serviceId = await peakService({ billing: { firstPeriodSeconds: 60, incrementSeconds: 60, minimumCharge: '1.00' } });
    const customer = await signUp(tollgate.app);
    clock.set(Date.UTC(2026, 10, 30, 9, 0));
    const short = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '10.00' } })).json();
    clock.advance(5_000);
    // 5 s: the first minute is billed (0.60), raised to the 1.00 minimum.
    const shortEnded = (await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${short.id}/logoff`, headers: customer.auth })).json();
    expect(shortEnded).toMatchObject({ charge: '1.00' });
    expect(shortEnded.lines.map((l: { kind: string; charge: string }) => [l.kind, l.charge])).toEqual([['time', '0.60'], ['minimum', '0.40']]);
    const long = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '10.00' } })).json();
    clock.advance(61_000);
    // 61 s: two minutes billed, 1.20.
    expect((await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${long.id}/logoff`, headers: customer.auth })).json()).toMatchObject({ charge: '1.20' });
  });

  it('refuses a charge limit below the minimum charge, named or left to the outstanding limit, and holds nothing for it', async () => {
    const serviceId = await peakService({ billing: { firstPeriodSeconds: 1, incrementSeconds: 1, minimumCharge: '1.00' } });
    const customer = await signUp(tollgate.app, { outstandingLimit: '0.50' });
    clock.set(Date.UTC(2026, 10, 30, 9, 0));
    const holdsBefore = (await sandbox(tollgate.cardNetworkUrl).holds()).length;
    const open = (payload: Record<string, unknown>) => tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, ...payload } });
    // 0.40 would be charged 1.00 the moment the session ran at all: no time fits under it.
    const named = await open({ maxCharge: '0.40' });
    expect([named.statusCode, named.json()]).toEqual([422, expect.objectContaining({ code: 'LIMIT_BELOW_MINIMUM_CHARGE', minimumCharge: '1.00' })]);
    // Left to the outstanding limit (0.50 free), or asked for 3 s (costing the 1.00 minimum): the minimum does not fit.
    for (const payload of [{}, { maxMinutes: 0.05 }]) {
      const derived = await open(payload);
      expect([derived.statusCode, derived.json()]).toEqual([402, expect.objectContaining({ code: 'OUTSTANDING_LIMIT_REACHED', available: '0.50' })]);
      expect(derived.json().detail).toContain('a hold of 1.00');
    }
    const quote = await tollgate.app.inject({ method: 'POST', url: '/v1/quotes', headers: customer.auth, payload: { serviceId, maxCharge: '0.40' } });
    expect([quote.statusCode, quote.json().code]).toEqual([422, 'LIMIT_BELOW_MINIMUM_CHARGE']);
    expect((await sandbox(tollgate.cardNetworkUrl).holds()).length).toBe(holdsBefore);
    // A limit at the minimum opens, and runs until its time's charge reaches it: 100 s at 0.60 a minute.
    const other = await signUp(tollgate.app);
    const atMinimum = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: other.auth, payload: { serviceId, maxCharge: '1.00' } })).json();
    expect(atMinimum).toMatchObject({ state: 'active', cutoffReason: 'charge_limit' });
    expect(Date.parse(atMinimum.cutoffAt) - Date.parse(atMinimum.startedAt)).toBe(100_000);
  });

  it('runs a session limited only by time, billed by the minute, until its time is up, charged what the time costs', async () => {
    const serviceId = await peakService({ billing: { firstPeriodSeconds: 60, incrementSeconds: 60, minimumCharge: '0.00' } });
    const customer = await signUp(tollgate.app);
    clock.set(Date.UTC(2026, 10, 30, 9, 0));
    // 90 s at 0.60 a minute, billed by whole minutes: 1.20, reached when the second minute starts.
    const opened = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxMinutes: 1.5 } })).json();
    expect(opened).toMatchObject({ state: 'active', cutoffReason: 'time_limit' });
    expect(Date.parse(opened.cutoffAt) - Date.parse(opened.startedAt)).toBe(90_000);
    const view = await settledAfter(90_000, opened.id, customer.auth);
    expect(view).toMatchObject({ state: 'settled', endReason: 'time_limit', charge: '1.20' });
  });

  it('refuses a tariff that is not one: an unknown time zone, an hour out of range, a price above the maximum', async () => {
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' });
    for (const tariff of [
      { timeZone: 'Moon/Tranquility' },
      { rules: [{ days: [1], fromHour: 24, toHour: 2, pricePerMinute: '1.00' }] },
      { rules: [{ days: [8], fromHour: 1, toHour: 2, pricePerMinute: '1.00' }] },
      { rules: [{ days: [1], fromHour: 1, toHour: 2, pricePerMinute: '10000.01' }] },
      { billing: { firstPeriodSeconds: 0, incrementSeconds: 1, minimumCharge: '0' } },
    ]) {
      const refused = await tollgate.app.inject({ method: 'PATCH', url: `/v1/services/${serviceId}`, headers: ops, payload: { tariff } });
      expect(refused.statusCode, JSON.stringify(tariff)).toBe(400);
    }
  });
});

describe('a quote', () => {
  it('holds its price after the list price changes, and the charge is checked against it', async () => {
    const serviceId = await peakService();
    const customer = await signUp(tollgate.app);
    clock.set(Date.UTC(2026, 10, 30, 9, 58));
    // Ten minutes from 09:58: two at 0.60 and eight at 1.20.
    const quote = (await tollgate.app.inject({ method: 'POST', url: '/v1/quotes', headers: customer.auth, payload: { serviceId, maxMinutes: 10 } })).json();
    expect(quote).toMatchObject({ total: '10.80', minutes: 10 });
    expect(quote.lines.map((l: { pricePerMinute: string; charge: string }) => [l.pricePerMinute, l.charge])).toEqual([['0.60', '1.20'], ['1.20', '9.60']]);
    // The list price doubles; the quote does not.
    await tollgate.app.inject({ method: 'PATCH', url: `/v1/services/${serviceId}`, headers: ops, payload: { pricePerMinute: '1.20', tariff: { rules: [] } } });
    const opened = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, quoteId: quote.id } })).json();
    expect(opened).toMatchObject({ state: 'active', maxCharge: '10.80', maxMinutes: 10, quote: { id: quote.id, total: '10.80', withinQuote: null } });
    clock.advance(10 * 60_000);
    const ended = await (async () => {
      for (;;) {
        const view = (await tollgate.app.inject({ url: `/v1/sessions/${opened.id}`, headers: customer.auth })).json();
        if (view.state === 'settled') return view;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    expect(ended).toMatchObject({ endReason: 'time_limit', charge: '10.80', quote: { withinQuote: true } });
    const again = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, quoteId: quote.id } });
    expect(again.statusCode).toBe(409);
    expect(again.json().code).toBe('QUOTE_USED');
  });

  it('opened after its start, as a dearer hour began, is priced as it was quoted: its time in full for its total', async () => {
    const serviceId = await peakService();
    const customer = await signUp(tollgate.app);
    clock.set(Date.UTC(2026, 10, 30, 9, 55));
    // From 09:55: ten minutes are five at 0.60 and five at 1.20; 3.00 buys five minutes at 0.60.
    const forTime = (await tollgate.app.inject({ method: 'POST', url: '/v1/quotes', headers: customer.auth, payload: { serviceId, maxMinutes: 10 } })).json();
    expect(forTime).toMatchObject({ total: '9.00' });
    const forCharge = (await tollgate.app.inject({ method: 'POST', url: '/v1/quotes', headers: customer.auth, payload: { serviceId, maxCharge: '3.00' } })).json();
    expect(forCharge.lines.map((l: { seconds: number; charge: string }) => [l.seconds, l.charge])).toEqual([[300, '3.00']]);
    // Opened ten minutes later, within their validity, in the hour at 1.20.
    clock.set(Date.UTC(2026, 10, 30, 10, 5));
    const open = async (quoteId: string) => (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, quoteId } })).json();
    const timed = await open(forTime.id);
    const charged = await open(forCharge.id);
    expect(timed).toMatchObject({ state: 'active', cutoffReason: 'time_limit', cutoffAt: '2026-11-30T10:15:00.000Z' });
    expect(charged).toMatchObject({ state: 'active', cutoffReason: 'charge_limit', cutoffAt: '2026-11-30T10:10:00.000Z' });
    const chargedEnded = await settledAfter(5 * 60_000, charged.id, customer.auth);
    expect(chargedEnded).toMatchObject({ endReason: 'charge_limit', charge: '3.00', quote: { withinQuote: true } });
    const timedEnded = await settledAfter(5 * 60_000, timed.id, customer.auth);
    expect(timedEnded).toMatchObject({ endReason: 'time_limit', charge: '9.00', quote: { withinQuote: true } });
    expect(timedEnded.lines.map((l: { pricePerMinute: string; charge: string }) => [l.pricePerMinute, l.charge])).toEqual(forTime.lines.map((l: { pricePerMinute: string; charge: string }) => [l.pricePerMinute, l.charge]));
  });

  it('for a time billed by the minute runs that time in full, charged the total', async () => {
    const serviceId = await peakService({ billing: { firstPeriodSeconds: 60, incrementSeconds: 60, minimumCharge: '0.00' } });
    const customer = await signUp(tollgate.app);
    clock.set(Date.UTC(2026, 10, 30, 9, 0));
    // 90 s at 0.60 a minute, billed by whole minutes: 1.20, reached when the second minute starts.
    const quote = (await tollgate.app.inject({ method: 'POST', url: '/v1/quotes', headers: customer.auth, payload: { serviceId, maxMinutes: 1.5 } })).json();
    expect(quote).toMatchObject({ total: '1.20', minutes: 1.5, runsForSeconds: 90 });
    const opened = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, quoteId: quote.id } })).json();
    expect(opened).toMatchObject({ state: 'active', cutoffReason: 'time_limit', quote: { id: quote.id, total: '1.20' } });
    expect(Date.parse(opened.cutoffAt) - Date.parse(opened.startedAt)).toBe(90_000);
    const view = await settledAfter(90_000, opened.id, customer.auth);
    expect(view).toMatchObject({ state: 'settled', endReason: 'time_limit', charge: '1.20', quote: { withinQuote: true } });

    // A charge buys less time than its lines bill: 1.00 is reached as the second minute starts, billed whole.
    const charge = (await tollgate.app.inject({ method: 'POST', url: '/v1/quotes', headers: customer.auth, payload: { serviceId, maxCharge: '1.00' } })).json();
    expect(charge).toMatchObject({ total: '1.00', minutes: null, runsForSeconds: 61, lines: [expect.objectContaining({ seconds: 120, charge: '1.00' })] });
    const onCharge = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, quoteId: charge.id } })).json();
    expect(Date.parse(onCharge.cutoffAt) - Date.parse(onCharge.startedAt)).toBe(61_000);
    await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${onCharge.id}/logoff`, headers: customer.auth });

    // A customer with just the total left of their limit still opens on it, holding the total.
    const tight = await signUp(tollgate.app, { outstandingLimit: '1.20' });
    const theirs = (await tollgate.app.inject({ method: 'POST', url: '/v1/quotes', headers: tight.auth, payload: { serviceId, maxMinutes: 1.5 } })).json();
    const held = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: tight.auth, payload: { serviceId, quoteId: theirs.id } });
    expect(held.statusCode, held.body).toBe(201);
    expect(held.json()).toMatchObject({ state: 'active', maxCharge: '1.20', quote: { total: '1.20' } });
  });

  it('is not used up by an open the card company declined: the agreed price opens the next session', async () => {
    const serviceId = await peakService();
    const customer = await signUp(tollgate.app);
    const quote = (await tollgate.app.inject({ method: 'POST', url: '/v1/quotes', headers: customer.auth, payload: { serviceId, maxCharge: '3.00' } })).json();
    const card = sandbox(tollgate.cardNetworkUrl);
    await card.setFaults([{ phase: 'authorize', fault: 'decline', times: 1 }]);
    try {
      const declined = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, quoteId: quote.id } });
      expect([declined.statusCode, declined.json().code]).toEqual([402, 'CARD_DECLINED']);
    } finally {
      await card.clearFaults();
    }
    const opened = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, quoteId: quote.id } });
    expect(opened.statusCode, opened.body).toBe(201);
    expect(opened.json()).toMatchObject({ state: 'active', maxCharge: '3.00', quote: { id: quote.id, total: '3.00' } });
  });

  it('totals what its lines add up to and what the session is charged, with a fraction of a cent in the price', async () => {
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.65' });
    const customer = await signUp(tollgate.app);
    // 30 s at 0.65 a minute is 0.325: charged 0.32, as every charge is truncated to the cent.
    const quote = (await tollgate.app.inject({ method: 'POST', url: '/v1/quotes', headers: customer.auth, payload: { serviceId, maxMinutes: 0.5 } })).json();
    expect(quote).toMatchObject({ total: '0.32', lines: [expect.objectContaining({ charge: '0.32' })] });
    expect(quote.lines).toHaveLength(1);
    const opened = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, quoteId: quote.id } })).json();
    expect(opened).toMatchObject({ state: 'active', cutoffReason: 'time_limit' });
    expect(Date.parse(opened.cutoffAt) - Date.parse(opened.startedAt)).toBe(30_000);
    const view = await settledAfter(30_000, opened.id, customer.auth);
    expect(view).toMatchObject({ state: 'settled', endReason: 'time_limit', charge: '0.32', quote: { total: '0.32', withinQuote: true } });
  });

  it('for a charge no span reaches (hours priced 0) totals what its lines add up to, and refuses one that costs nothing', async () => {
    const serviceId = await peakService();
    const customer = await signUp(tollgate.app);
    const setTariff = async (tariff: Record<string, unknown>) => {
      const patched = await tollgate.app.inject({ method: 'PATCH', url: `/v1/services/${serviceId}`, headers: ops, payload: { tariff: { timeZone: 'UTC', ...tariff } } });
      expect(patched.statusCode, patched.body).toBe(200);
    };
    const quote = (maxCharge: string) => tollgate.app.inject({ method: 'POST', url: '/v1/quotes', headers: customer.auth, payload: { serviceId, maxCharge } });
    const allFree = { days: [1, 2, 3, 4, 5, 6, 7], fromHour: 0, toHour: 24, pricePerMinute: '0' };

    await setTariff({ rules: [allFree] });
    const refused = await quote('5.00');
    expect(refused.statusCode).toBe(400);
    expect(refused.json()).toMatchObject({ code: 'VALIDATION_FAILED', detail: expect.stringContaining('costs nothing') });
    // Free hours and a minimum charge above the maximum asked: refused, never quoted above the maximum.
    await setTariff({ rules: [allFree], billing: { firstPeriodSeconds: 1, incrementSeconds: 1, minimumCharge: '2.00' } });
    const belowMinimum = await quote('1.00');
    expect(belowMinimum.statusCode).toBe(422);
    expect(belowMinimum.json().code).toBe('LIMIT_BELOW_MINIMUM_CHARGE');
    // Free but for one cheap hour a week: 5.00 is not reached within the longest span a session may run.
    await setTariff({ rules: [allFree, { days: [1], fromHour: 10, toHour: 11, pricePerMinute: '0.000001' }] });
    const cheap = (await quote('5.00')).json();
    const micros = (amount: string) => Math.round(Number(amount) * 1e6);
    const lines = (cheap.lines as { charge: string }[]).reduce((sum, line) => sum + micros(line.charge), 0);
    expect(micros(cheap.total)).toBeLessThan(micros('5.00'));
    expect(micros(cheap.total)).toBe(lines);
  });

  it('from a later start opens from that start, holds from then, and may not start in the past', async () => {
    const serviceId = await peakService();
    const customer = await signUp(tollgate.app);
    clock.set(Date.UTC(2026, 10, 30, 8, 0));
    const ask = (startAt: string) =>
      tollgate.app.inject({ method: 'POST', url: '/v1/quotes', headers: customer.auth, payload: { serviceId, maxMinutes: 10, startAt } });
    const past = await ask('2026-11-30T07:58:00Z');
    expect([past.statusCode, past.json().code]).toEqual([400, 'VALIDATION_FAILED']);
    const farAhead = await ask('2026-12-07T08:01:00Z');
    expect([farAhead.statusCode, farAhead.json().issues]).toEqual([400, [expect.objectContaining({ path: 'body.startAt' })]]);
    // Ten minutes in the peak hour, asked for at 08:00: 12.00, usable from 10:00 for 15 minutes.
    const quote = (await ask('2026-11-30T10:00:00Z')).json();
    expect(quote).toMatchObject({ total: '12.00', startAt: '2026-11-30T10:00:00.000Z', expiresAt: '2026-11-30T10:15:00.000Z' });
    const open = () => tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, quoteId: quote.id } });
    const early = await open();
    expect([early.statusCode, early.json()]).toEqual([409, expect.objectContaining({ code: 'QUOTE_NOT_STARTED', startAt: '2026-11-30T10:00:00.000Z' })]);
    clock.set(Date.UTC(2026, 10, 30, 10, 0));
    const opened = await open();
    expect(opened.statusCode, opened.body).toBe(201);
    expect(opened.json()).toMatchObject({ state: 'active', maxMinutes: 10, cutoffReason: 'time_limit', quote: { total: '12.00' } });
  });

  it('expires, and belongs to the customer who asked for it', async () => {
    const serviceId = await peakService();
    const customer = await signUp(tollgate.app);
    const other = await signUp(tollgate.app);
    const quote = (await tollgate.app.inject({ method: 'POST', url: '/v1/quotes', headers: customer.auth, payload: { serviceId, maxCharge: '3.00' } })).json();
    expect(quote.total).toBe('3.00');
    const theirs = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: other.auth, payload: { serviceId, quoteId: quote.id } });
    expect(theirs.json().code).toBe('QUOTE_NOT_FOUND');
    clock.advance(16 * 60_000);
    const late = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, quoteId: quote.id } });
    expect(late.json().code).toBe('QUOTE_EXPIRED');
  });
});
