import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { createService, signUp } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { WebClient } from '../helpers/web-client.js';

let tollgate: TestTollgate;
let serviceId: string;
// 2026-11-30 is a Monday, the last day of November: its statements are due at midnight.
const clock = new ManualClock(Date.UTC(2026, 10, 30, 9));

beforeAll(async () => {
  tollgate = await startTestTollgate({ clock, env: { QUOTE_VALIDITY_MINUTES: '10' } });
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' }));
});
afterAll(async () => {
  await tollgate?.stop();
});

/** A customer signed up through the API and logged in to the portal. */
async function customer() {
  const signed = await signUp(tollgate.app);
  const web = new WebClient(tollgate.app);
  await web.get('/login');
  await web.post('/login', { email: signed.account.email, password: 'analytical engine' });
  return { web, ...signed };
}

const accountOf = async (auth: Record<string, string>) => (await tollgate.app.inject({ url: '/v1/account', headers: auth })).json().account;

describe('quotes in the portal', () => {
  it('prices minutes, shows the breakdown and expiry, and opens a session holding the quote', async () => {
    const { web, auth } = await customer();
    const form = await web.get(`/quote?serviceId=${serviceId}`);
    expect(form.body).toMatch(new RegExp(`<option value="${serviceId}" selected>`));
    const asked = await web.post('/quote', { serviceId, maxMinutes: '10', maxCharge: '', startAt: '2026-11-30T10:00' });
    const quoteUrl = String(asked.headers.location);
    expect(quoteUrl).toMatch(/^\/quotes\/[0-9a-f-]{36}$/);
    const quote = await web.get(quoteUrl);
    expect(quote.body).toContain('<dd data-field="total">6.00 USD</dd>');
    expect(quote.body).toContain('2026-11-30 10:00 UTC');
    // It holds for its validity from its start, and opens nothing before it.
    expect(quote.body).toContain('2026-11-30 10:10:00 UTC');
    expect(quote.body).toMatch(/<th scope="row">2026-11-30 10:00:00 UTC to 2026-11-30 10:10:00 UTC \(600 s\)<\/th><td>0\.60 USD a minute<\/td><td>6\.00<\/td>/);
    expect(quote.body).toContain('(QUOTE_NOT_STARTED)');
    expect(quote.body).not.toContain('Open session with this quote');
    clock.set(Date.UTC(2026, 10, 30, 10));
    expect((await web.get(quoteUrl)).body).toContain('Open session with this quote');

    const quoteId = quoteUrl.split('/').pop()!;
    // A refused open from the quote comes back as that quote's open, not a plain one at list price.
    const refused = await web.post(`/services/${serviceId}/open`, { quoteId, waitSeconds: 'soon' });
    expect(refused.statusCode).toBe(400);
    expect(refused.body).toContain(`<input type="hidden" name="quoteId" value="${quoteId}">`);
    expect(refused.body).toContain('>Open session with this quote</button>');
    expect(refused.body).not.toContain('name="maxCharge"');
    const opened = await web.post(`/services/${serviceId}/open`, { quoteId, waitSeconds: '0' });
    expect(opened.headers.location).toMatch(/^\/sessions\/[0-9a-f-]{36}$/);
    const session = (await tollgate.app.inject({ url: `/v1${opened.headers.location}`, headers: auth })).json();
    expect(session.quote).toMatchObject({ total: '6.00' });
    expect(session.maxCharge).toBe('6.00');
    // The same form sent again (the back button) goes to the session it opened.
    const resent = await web.post(`/services/${serviceId}/open`, { quoteId, waitSeconds: '0' });
    expect(resent.statusCode).toBe(303);
    expect(resent.headers.location).toBe(opened.headers.location);
    // A quote that cannot open again is not offered again: the plain form comes back.
    const usedUp = await web.post(`/services/${serviceId}/open`, { quoteId, waitSeconds: '0', openId: randomUUID() });
    expect(usedUp.statusCode).toBe(409);
    expect(usedUp.body).toContain('(QUOTE_USED)');
    expect(usedUp.body).not.toContain('name="quoteId"');
    expect(usedUp.body).toContain('name="maxCharge"');
    // Used once: the quote's page now links to its session instead of opening another.
    const used = await web.get(quoteUrl);
    expect(used.body).not.toContain('Open session with this quote');
    expect(used.body).toContain(`<a href="${opened.headers.location}">its session</a>`);
  });

  it('shows bad quote input next to its field, and an expired quote as expired', async () => {
    const { web } = await customer();
    await web.get('/quote');
    const none = await web.post('/quote', { serviceId, maxMinutes: '', maxCharge: '' });
    expect(none.statusCode).toBe(400);
    expect(none.body).toContain('id="f-maxMinutes-error">Enter minutes, a maximum charge, or both');
    const bad = await web.post('/quote', { serviceId, maxMinutes: 'ten', maxCharge: '1.234', startAt: 'tomorrow' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('id="f-maxMinutes-error">Minutes must be a number');
    expect(bad.body).toContain('id="f-maxCharge-error">Maximum charge must be a decimal string with at most 2 decimals');
    expect(bad.body).toContain('id="f-startAt-error">Start (optional) must be a date and time');
    expect(bad.body).toContain('value="tomorrow"');

    const asked = await web.post('/quote', { serviceId, maxCharge: '3.00' });
    const quoteUrl = String(asked.headers.location);
    expect((await web.get(quoteUrl)).body).toContain('as long as the total buys');
    clock.advance(601_000);
    const expired = await web.get(quoteUrl);
    expect(expired.body).toContain('(QUOTE_EXPIRED)');
    expect(expired.body).not.toContain('Open session with this quote');
  });
});

describe('what a page reads from its address and its forms', () => {
  it('shows no message for a ?done= that names none, and reads numbers in decimal notation only', async () => {
    const { web } = await customer();
    for (const done of ['constructor', '__proto__', 'toString']) {
      const page = await web.get(`/account?done=${done}`);
      expect(page.statusCode).toBe(200);
      expect(page.body).not.toContain('[native code]');
      expect(page.body).not.toContain('[object Object]');
      expect(page.body).not.toContain('class="flash');
    }
    await web.get(`/services/${serviceId}/open`);
    for (const maxMinutes of ['0x10', '0b11', '0o7']) {
      const refused = await web.post(`/services/${serviceId}/open`, { maxMinutes, waitSeconds: '0' });
      expect(refused.statusCode, maxMinutes).toBe(400);
      expect(refused.body).toContain('id="f-maxMinutes-error">Max minutes');
    }
  });
});

describe('a live session page', () => {
  it('stops streaming once its customer logs out, and never keeps the log-in alive', async () => {
    const { web, auth, account } = await customer();
    const accountId = account.id;
    const opened = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: auth, payload: { serviceId, maxCharge: '10.00' } });
    const id = opened.json().id as string;
    await web.get(`/sessions/${id}`);
    // The stream ends only when the server ends it: its answer comes then.
    const lastUsed = async () => (await tollgate.db.sql<{ at: Date }[]>`select last_used_at as at from api_tokens where account_id = ${accountId} order by last_used_at desc limit 1`)[0]!.at.getTime();
    const stream = web.get(`/sessions/${id}/events`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const usedBefore = await lastUsed();
    // Its pushes ask whether the customer is still logged in without counting as a use: an open tab does not keep the log-in alive.
    clock.advance(120_000);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await lastUsed()).toBe(usedBefore);
    expect((await web.post('/logout', {})).statusCode).toBe(303);
    const ended = await Promise.race([stream, new Promise((resolve) => setTimeout(() => resolve(null), 5_000))]);
    expect(ended, 'the stream still runs after the log-out').not.toBeNull();
    expect((ended as { body: string }).body).toMatch(/^data: /);
    await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${id}/logoff`, headers: auth });
  });
});

describe('the account page', () => {
  it('switches to prepaid, tops up once however often the form is sent, and shows the balance', async () => {
    const { web, auth } = await customer();
    await web.get('/account');
    expect((await web.post('/account/payment', { paymentMode: 'prepaid', statementPeriod: 'week' })).headers.location).toBe('/account?done=payment');
    expect(await accountOf(auth)).toMatchObject({ paymentMode: 'prepaid', statementPeriod: 'week' });
    const page = await web.get('/account?done=payment');
    expect(page.body).toContain('Saved how you pay.');
    const topUpId = /name="topUpId" value="([^"]+)"/.exec(page.body)![1]!;
    const bad = await web.post('/account/top-up', { topUpId, amount: '-5' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('id="f-amount-error">Top-up amount must be a decimal string');
    expect((await web.post('/account/top-up', { topUpId, amount: '20.00' })).headers.location).toBe('/account?done=topup');
    // The same form sent again (a double click, a reload): one charge.
    await web.post('/account/top-up', { topUpId, amount: '20.00' });
    expect((await accountOf(auth)).balance).toBe('20.00');
    expect((await web.get('/account')).body).toContain('<dd data-field="balance">20.00 USD</dd>');
    // Sent again edited (back, another amount), or by another customer: refused with its code, nothing charged.
    const edited = await web.post('/account/top-up', { topUpId, amount: '50.00' });
    expect([edited.statusCode, edited.body]).toEqual([409, expect.stringContaining('TOP_UP_ALREADY_SENT')]);
    const other = await customer();
    await other.web.get('/account');
    await other.web.post('/account/payment', { paymentMode: 'prepaid', statementPeriod: 'week' });
    const taken = await other.web.post('/account/top-up', { topUpId, amount: '20.00' });
    expect([taken.statusCode, taken.body]).toEqual([409, expect.stringContaining('TOP_UP_ALREADY_SENT')]);
    expect([(await accountOf(auth)).balance, (await accountOf(other.auth)).balance]).toEqual(['20.00', '0.00']);
  });

  it('refuses a limit below what open sessions hold, next to the field, and keeps what was typed', async () => {
    const { web, auth } = await customer();
    await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: auth, payload: { serviceId, maxCharge: '30.00' } });
    await web.get('/account');
    const refused = await web.post('/account/limit', { outstandingLimit: '10.00' });
    expect(refused.statusCode).toBe(409);
    expect(refused.body).toMatch(/id="f-outstandingLimit-error">The open sessions hold 30.00; the outstanding limit cannot go below that now. \(LIMIT_BELOW_RESERVED\)/);
    expect(refused.body).toContain('value="10.00"');
    expect((await web.post('/account/limit', { outstandingLimit: '40.00' })).headers.location).toBe('/account?done=limit');
    expect((await accountOf(auth)).outstandingLimit).toBe('40.00');
  });

  it('changes the card, showing the card network’s refusal next to the card number and never echoing it', async () => {
    const { web, auth } = await customer();
    await web.get('/account');
    const card = { 'card.number': '5555555555554444', 'card.expMonth': '11', 'card.expYear': '2032', 'card.cvc': '321' };
    const bad = await web.post('/account/card', { ...card, 'card.expMonth': '13' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('id="f-card-expMonth-error">Expiry month must be at most 12');
    expect(bad.body).not.toContain('5555555555554444');
    expect(bad.body).toContain('value="2032"');
    // A number that fails the card network's check digit is refused by the card network, next to the field.
    const refused = await web.post('/account/card', { ...card, 'card.number': '4242424242424241' });
    expect(refused.statusCode).toBe(400);
    expect(refused.body).toMatch(/id="f-card-number-error">[^<]*\(CARD_INVALID\)/);
    expect(refused.body).not.toContain('4242424242424241');
    expect((await web.post('/account/card', card)).headers.location).toBe('/account?done=card');
    expect((await accountOf(auth)).card).toMatchObject({ brand: 'mastercard', last4: '4444', expMonth: 11, expYear: 2032 });
  });

  it('changes the password given the current one, logging out every other token', async () => {
    const { web, auth } = await customer();
    await web.get('/account');
    const wrong = await web.post('/account/password', { currentPassword: 'not my password', newPassword: 'difference engine' });
    expect(wrong.statusCode).toBe(403);
    expect(wrong.body).toContain('id="f-currentPassword-error">The current password is wrong; nothing was changed. (WRONG_PASSWORD)');
    const short = await web.post('/account/password', { currentPassword: 'analytical engine', newPassword: 'short' });
    expect(short.body).toContain('id="f-newPassword-error">New password must be at least 8 characters');
    expect((await web.post('/account/password', { currentPassword: 'analytical engine', newPassword: 'difference engine' })).headers.location).toBe('/account?done=password');
    // The API token from sign-up is another token: revoked; this page's stays.
    expect((await tollgate.app.inject({ url: '/v1/account', headers: auth })).statusCode).toBe(401);
    expect((await web.get('/account')).statusCode).toBe(200);
  });

  it('downloads a statement as JSON, CSV and PDF, and closes the account, logging out', async () => {
    const { web, auth } = await customer();
    const opened = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: auth, payload: { serviceId, maxCharge: '5.00' } })).json();
    clock.advance(30_000);
    await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${opened.id}/logoff`, headers: auth });
    clock.set(Date.UTC(2026, 11, 1, 0, 0, 1));
    const statements = async () => (await tollgate.app.inject({ url: '/v1/account/statements', headers: auth })).json().statements as { id: string }[];
    await expect.poll(statements, { timeout: 10_000 }).toHaveLength(1);
    const page = await web.get('/account');
    const link = /href="(\/account\/statements\/[0-9a-f-]{36})\?format=csv"/.exec(page.body)![1]!;
    expect((await web.get(`${link}?format=json`)).json().totals.charges).toBe('0.30');
    expect((await web.get(`${link}?format=csv`)).body).toContain('total_charges');
    expect((await web.get(`${link}?format=pdf`)).rawPayload.subarray(0, 5).toString()).toBe('%PDF-');
    const someoneElse = await customer();
    expect((await someoneElse.web.get(`${link}?format=json`)).statusCode).toBe(404);

    const closed = await web.post('/account/close', { reason: 'moving on' });
    expect(closed.statusCode).toBe(200);
    expect(closed.body).toContain('Your account is closed and you are logged out.');
    expect(web.cookies.has('tg_session')).toBe(false);
    expect((await tollgate.app.inject({ url: '/v1/account', headers: auth })).statusCode).toBe(401);
  });

  it('says the unused balance goes back to the card on closing, and shows its refund once closed', async () => {
    const { web, auth } = await customer();
    await tollgate.app.inject({ method: 'PATCH', url: '/v1/account', headers: auth, payload: { paymentMode: 'prepaid' } });
    await tollgate.app.inject({ method: 'POST', url: '/v1/account/top-ups', headers: auth, payload: { amount: '7.00' } });
    const page = await web.get('/account');
    expect(page.body).toContain(`Your unused balance, 7.00 USD, goes back to your card ending 4242 when the account closes.`);
    const closed = await web.post('/account/close', { reason: 'moving on' });
    expect(closed.statusCode).toBe(200);
    expect(closed.body).toContain(`7.00 USD refunded to your card ending 4242`);
  });
});
