import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { createService, VISA_OK } from '../helpers/customers.js';
import { WebClient } from '../helpers/web-client.js';
import { listen } from '../edge/edge-client.js';

let tollgate: TestTollgate;
let serviceId: string;
const clock = new ManualClock(Date.UTC(2026, 5, 1, 12));

beforeAll(async () => {
  tollgate = await startTestTollgate({ clock });
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60', maxUsers: 2 }));
});
afterAll(async () => {
  await tollgate?.stop();
});

const goodForm = () => ({
  name: 'Grace Hopper',
  email: `grace-${randomUUID()}@example.com`,
  password: 'cobol compiler',
  'card.number': VISA_OK,
  'card.expMonth': '12',
  'card.expYear': '2031',
  'card.cvc': '123',
  estimatedStorageGb: '20',
  estimatedProcessingHours: '3.5',
  outstandingLimit: '50.00',
});

describe('the customer portal over HTTP', () => {
  it('serves the catalogue as a page with its script and stylesheet from tollgate itself', async () => {
    const web = new WebClient(tollgate.app);
    const page = await web.get('/');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.body).toContain(`data-service="${serviceId}"`);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect((await web.get('/assets/portal.js')).statusCode).toBe(200);
    expect((await web.get('/assets/site.css')).statusCode).toBe(200);
  });

  it('shows each sign-up error next to its field and keeps what was typed, except the card number and the CVC', async () => {
    const web = new WebClient(tollgate.app);
    await web.get('/signup');
    const page = await web.post('/signup', { ...goodForm(), email: 'not an e-mail', 'card.expMonth': '13', 'card.expYear': '99999999999999999999', outstandingLimit: 'lots' });
    expect(page.statusCode).toBe(400);
    expect(page.body).toMatch(/id="f-email-error">E-mail must be an e-mail address/);
    expect(page.body).toMatch(/id="f-card-expMonth-error">Expiry month must be at most 12/);
    // The field's own bound, not the largest whole number a value may be.
    expect(page.body).toMatch(/id="f-card-expYear-error">Expiry year must be at most 2100/);
    expect(page.body).toMatch(/id="f-outstandingLimit-error">Outstanding limit must be a decimal string/);
    expect(page.body).toContain('value="Grace Hopper"');
    expect(page.body).toContain('value="not an e-mail"');
    expect(page.body).toContain('value="cobol compiler"');
    expect(page.body).not.toContain(VISA_OK);
    expect(page.body).not.toContain('value="123"');
    expect(tollgate.cardNetworkUrl).toBeTruthy();
  });

  it('shows what the card network says next to the card number, and a taken e-mail next to the e-mail', async () => {
    const web = new WebClient(tollgate.app);
    await web.get('/signup');
    const form = goodForm();
    // Digits that pass the form's check, and fail the card network's (Luhn).
    const invalid = await web.post('/signup', { ...form, 'card.number': '4242424242424241' });
    expect(invalid.statusCode).toBe(400);
    expect(invalid.body).toMatch(/id="f-card-number-error">Card number: the card number is not valid/);
    await web.post('/signup', form);
    const again = new WebClient(tollgate.app);
    await again.get('/signup');
    const taken = await again.post('/signup', form);
    expect(taken.statusCode).toBe(409);
    expect(taken.body).toContain('id="f-email-error">An account with this e-mail already exists');
  });

  it('answers a browser at an address with no page with the site\'s error page, and a client with problem+json', async () => {
    for (const url of ['/logout', '/ops/logout', '/ops/anything', '/account/close']) {
      const page = await tollgate.app.inject({ url, headers: { accept: 'text/html,application/xhtml+xml' } });
      expect(page.statusCode, url).toBe(404);
      expect(page.headers['content-type'], url).toContain('text/html');
      expect(page.body).toContain('<code>NOT_FOUND</code>');
    }
    const api = await tollgate.app.inject({ url: '/v1/nothing', headers: { accept: 'text/html' } });
    expect(api.headers['content-type']).toContain('application/problem+json');
    expect((await tollgate.app.inject({ url: '/logout' })).headers['content-type']).toContain('application/problem+json');
  });

  it('refuses a form without its CSRF token, with a stable code', async () => {
    const web = new WebClient(tollgate.app);
    await web.get('/signup');
    const page = await web.post('/signup', goodForm(), { csrf: false });
    expect(page.statusCode).toBe(403);
    expect(page.body).toContain('CSRF_TOKEN_INVALID');
  });

  it('answers a form too large with the code the API gives the same mistake', async () => {
    const web = new WebClient(tollgate.app);
    await web.get('/signup');
    const page = await web.post('/signup', { ...goodForm(), name: 'x'.repeat(3_000_000) });
    expect(page.statusCode).toBe(413);
    expect(page.body).toContain('<code>PAYLOAD_TOO_LARGE</code>');
  });

  it('signs up into an HttpOnly SameSite cookie session that the account page and log-out use', async () => {
    const web = new WebClient(tollgate.app);
    await web.get('/signup');
    const signedUp = await web.post('/signup', goodForm());
    expect(signedUp.statusCode).toBe(303);
    expect(signedUp.headers.location).toBe('/account');
    const cookie = signedUp.cookies.find((c) => c.name === 'tg_session')!;
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' });
    const account = await web.get('/account');
    expect(account.statusCode).toBe(200);
    expect(account.body).toContain('visa ending 4242');
    // The cookie holds the very token the JSON API takes as a bearer token.
    const api = await tollgate.app.inject({ method: 'GET', url: '/v1/account', headers: { authorization: `Bearer ${cookie.value}` } });
    expect(api.statusCode).toBe(200);
    expect((await web.post('/logout', {})).statusCode).toBe(303);
    const after = await tollgate.app.inject({ method: 'GET', url: '/v1/account', headers: { authorization: `Bearer ${cookie.value}` } });
    expect(after.statusCode).toBe(401);
    const again = await web.get('/account');
    expect(again.statusCode).toBe(303);
    expect(again.headers.location).toBe('/login?next=%2Faccount');
  });

  it('opens a session from the catalogue and logs off from its page, showing the charge slip', async () => {
    const web = new WebClient(tollgate.app);
    await web.get('/signup');
    await web.post('/signup', goodForm());
    await web.get(`/services/${serviceId}/open`);
    const opened = await web.post(`/services/${serviceId}/open`, { maxMinutes: '10', maxCharge: '', waitSeconds: '0' });
    expect(opened.statusCode, opened.body).toBe(303);
    const sessionUrl = opened.headers.location as string;
    const page = await web.get(sessionUrl);
    expect(page.body).toContain('data-field="state">active');
    // The service opens through the edge in a new tab, with the session's access token once.
    expect(page.body).toMatch(new RegExp(`href="http://localhost(:\\d+)?/edge/${sessionUrl.split('/').pop()}/\\?access_token=[^"]+" target="_blank"`));
    clock.advance(90_000);
    expect((await web.get(sessionUrl)).body).toContain('<output data-field="accrued">0.90</output>');
    const loggedOff = await web.post(`${sessionUrl}/logoff`, {});
    expect(loggedOff.statusCode).toBe(303);
    const after = await web.get(loggedOff.headers.location as string);
    expect(after.body).toMatch(/Charge slip [^:]+: [\d.]+ USD/);
    // The charge itemized as the slip has it: 90 s at 0.60 a minute.
    expect(after.body).toContain('<caption>Price breakdown</caption>');
    expect(after.body).toMatch(/<tr><th scope="row">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC to \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(90 s\)<\/th><td>0\.60 USD a minute<\/td><td>0\.90<\/td><\/tr>/);
  });

  it('opens one session, with one hold, for an open form sent twice at once (a double click), and nothing for the same form edited and sent again', async () => {
    const web = new WebClient(tollgate.app);
    await web.get('/signup');
    await web.post('/signup', goodForm());
    const api = async (url: string) => (await tollgate.app.inject({ url, headers: { authorization: `Bearer ${web.cookies.get('tg_session')}` } })).json();
    await web.get(`/services/${serviceId}/open`);
    const form = { maxMinutes: '10', maxCharge: '5.00', waitSeconds: '0' };
    const [first, second] = await Promise.all([web.post(`/services/${serviceId}/open`, form), web.post(`/services/${serviceId}/open`, form)]);
    expect([first.statusCode, second.statusCode], first.body.slice(0, 3000)).toEqual([303, 303]);
    expect(second.headers.location).toBe(first.headers.location);
    expect((await api('/v1/sessions')).sessions).toHaveLength(1);
    expect((await api('/v1/account')).account.reserved).toBe('5.00');
    // Gone back to, edited and sent again: the form opened its session already.
    const edited = await web.post(`/services/${serviceId}/open`, { ...form, maxCharge: '6.00' });
    expect(edited.statusCode).toBe(409);
    expect(edited.body).toContain('(OPEN_FORM_ALREADY_SENT)');
    expect(edited.body).toContain('value="6.00"');
    // A page from before forms had their id opens nothing either.
    const old = await web.post(`/services/${serviceId}/open`, { ...form, openId: '' });
    expect(old.statusCode).toBe(400);
    expect(old.body).toContain('(OPEN_FORM_OUT_OF_DATE)');
    expect((await api('/v1/sessions')).sessions).toHaveLength(1);
    // The fresh form each refusal came back with opens another.
    const another = await web.post(`/services/${serviceId}/open`, form);
    expect(another.statusCode).toBe(303);
    expect(another.headers.location).not.toBe(first.headers.location);
    expect((await api('/v1/account')).account.reserved).toBe('10.00');
    // The service has two seats, which the tests after this one need.
    for (const opened of [first, another]) await web.post(`${opened.headers.location}/logoff`, {});
  });

  it('opens nothing for an open form whose browser went away while the card was checked', async () => {
    const web = new WebClient(tollgate.app);
    await web.get('/signup');
    // The slow test card: the card company answers each call after two seconds.
    await web.post('/signup', { ...goodForm(), 'card.number': '4000000000000077' });
    const page = await web.get(`/services/${serviceId}/open`);
    const field = (name: string) => new RegExp(`name="${name}" value="([^"]+)"`).exec(page.body)![1]!;
    const body = new URLSearchParams({ _csrf: field('_csrf'), openId: field('openId'), maxMinutes: '10', maxCharge: '5.00', waitSeconds: '0' }).toString();
    const port = Number(new URL(await listen(tollgate)).port);
    const cookie = [...web.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    const socket = connect(port, '127.0.0.1', () =>
      socket.write(`POST /services/${serviceId}/open HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body}`),
    );
    socket.on('error', () => {});
    await sleep(400);
    socket.destroy();
    const api = async (url: string) => (await tollgate.app.inject({ url, headers: { authorization: `Bearer ${web.cookies.get('tg_session')}` } })).json();
    // The card's answer came, and the session it made was abandoned, its hold voided: nothing held.
    await expect.poll(async () => (await api('/v1/sessions')).sessions.map((s: { state: string }) => s.state), { timeout: 10_000 }).toEqual(['declined']);
    expect((await api('/v1/sessions')).sessions[0].declineReason).toBe('abandoned');
    expect((await api('/v1/account')).account.reserved).toBe('0.00');
  });

  /** A new customer signed up on the site, with a 10-minute session of `service` opened from its form. */
  async function tenMinutesOn(service: string) {
    const web = new WebClient(tollgate.app);
    await web.get('/signup');
    await web.post('/signup', goodForm());
    await web.get(`/services/${service}/open`);
    const opened = await web.post(`/services/${service}/open`, { maxMinutes: '10', maxCharge: '', waitSeconds: '0' });
    return { web, sessionUrl: opened.headers.location as string };
  }

  it('shows a refused extend with what was typed in its field', async () => {
    const { web, sessionUrl } = await tenMinutesOn(serviceId);
    const refused = await web.post(`${sessionUrl}/extend`, { maxCharge: 'abc' });
    expect(refused.statusCode).toBe(400);
    expect(refused.body).toContain('(VALIDATION_FAILED)');
    expect(refused.body).toMatch(/name="maxCharge"[^>]*value="abc"/);
    await web.post(`${sessionUrl}/logoff`, {});
  });

  it('warns on the session page once the cutoff nears, and not before', async () => {
    const { web, sessionUrl } = await tenMinutesOn(serviceId);
    clock.advance(8 * 60_000);
    expect((await web.get(sessionUrl)).body).toMatch(/data-field="warning" role="alert" hidden><\/p>/);
    // WARN_SECONDS_BEFORE (60 s by default): the warning is due at 9 minutes.
    clock.advance(90_000);
    const warned = (await web.get(sessionUrl)).body;
    expect(warned).toContain('data-field="warning" role="alert">Your session nears its limit: it will be interrupted in 0 min 30 s unless you extend it.</p>');
    await web.post(`${sessionUrl}/logoff`, {});
  });

  it('shows the accrued charge in whole cents, as it would be charged, where the exact amount has fractions of one', async () => {
    const { serviceId: fractional } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.50' });
    const { web, sessionUrl } = await tenMinutesOn(fractional);
    // 4 s at 0.50 a minute is 0.033333…; the customer would be charged 0.03.
    clock.advance(4_000);
    expect((await web.get(sessionUrl)).body).toContain('<output data-field="accrued">0.03</output>');
    const loggedOff = await web.post(`${sessionUrl}/logoff`, {});
    expect((await web.get(loggedOff.headers.location as string)).body).toMatch(/Charge slip [^:]+: 0\.03 USD/);
  });

  it('ends its open event streams when tollgate closes, so a page left open never holds the shutdown', async () => {
    const own = await startTestTollgate();
    const base = await own.app.listen({ port: 0, host: '127.0.0.1' });
    const response = await fetch(`${base}/catalogue/events`);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const reader = response.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toMatch(/^data: \{"services":\[/);
    const started = Date.now();
    await own.stop();
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await reader.read()).done).toBe(true);
  });
});
