import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { createService, signUp } from '../helpers/customers.js';
import { createOperator } from '../helpers/operators.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { WebClient } from '../helpers/web-client.js';

let tollgate: TestTollgate;
let serviceId: string;
let receiver: Server;
let receiverUrl: string;
const received: string[] = [];
// 2026-11-30 is the last day of November: its statements are due at midnight.
const clock = new ManualClock(Date.UTC(2026, 10, 30, 9));
const PASSWORD = 'correct horse battery staple';

beforeAll(async () => {
  tollgate = await startTestTollgate({ clock });
  await createOperator(tollgate.app, tollgate.adminToken, { name: 'acct-admin', role: 'admin', password: PASSWORD });
  await createOperator(tollgate.app, tollgate.adminToken, { name: 'acct-support', role: 'support', password: PASSWORD });
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' }));
  receiver = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk)).on('end', () => {
      received.push(body);
      response.end('ok');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/events`;
});
afterAll(async () => {
  await tollgate?.stop();
  receiver?.close();
});

async function operator(name: string) {
  const web = new WebClient(tollgate.app);
  await web.get('/ops/login');
  expect((await web.post('/ops/login', { name, password: PASSWORD })).statusCode).toBe(303);
  return web;
}

const accountOf = async (auth: Record<string, string>) => (await tollgate.app.inject({ url: '/v1/account', headers: auth })).json().account;

describe('accounts in the console', () => {
  it('finds an account by name, shows its balances, and suspends, resumes and closes it with a reason, as the history then says', async () => {
    const customer = await signUp(tollgate.app, { name: 'Grace Hopper' });
    await tollgate.app.inject({ method: 'PATCH', url: '/v1/account', headers: customer.auth, payload: { paymentMode: 'prepaid' } });
    await tollgate.app.inject({ method: 'POST', url: '/v1/account/top-ups', headers: customer.auth, payload: { amount: '12.00' } });
    const web = await operator('acct-support');
    const list = await web.get('/ops/accounts?search=grace');
    expect(list.body).toContain(`<a href="/ops/accounts/${customer.account.id}">Grace Hopper</a>`);
    expect(list.body).toContain('12.00 USD');
    expect((await web.get('/ops/accounts?search=nobody-by-this-name')).body).toContain('No account matches.');

    const page = await web.get(`/ops/accounts/${customer.account.id}`);
    expect(page.body).toContain('12.00 USD free');
    // The machine says what it would take: an active account can be suspended or closed, not resumed.
    expect(page.body).toContain('Suspend account');
    expect(page.body).not.toContain('Resume account');
    // Support may change states, not the payment mode.
    expect(page.body).not.toContain('Set payment mode');

    const noReason = await web.post(`/ops/accounts/${customer.account.id}/suspend`, { form: 'suspend', reason: '   ' });
    expect(noReason.statusCode).toBe(400);
    expect(noReason.body).toMatch(/<span class="error" id="f-suspend-reason-error">Enter reason<\/span>/);
    expect((await accountOf(customer.auth)).state).toBe('active');

    expect((await web.post(`/ops/accounts/${customer.account.id}/suspend`, { form: 'suspend', reason: 'chargeback under review' })).headers.location).toBe(
      `/ops/accounts/${customer.account.id}?done=suspend`,
    );
    const suspended = await web.get(`/ops/accounts/${customer.account.id}?done=suspend`);
    expect(suspended.body).toContain('Account suspended.');
    expect(suspended.body).toContain('Resume account');
    expect(suspended.body).toMatch(/active → suspended<\/td><td>acct-support \(operator\)<\/td><td>chargeback under review/);
    const refused = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '1.00' } });
    expect(refused.json().code).toBe('ACCOUNT_NOT_ACTIVE');

    await web.post(`/ops/accounts/${customer.account.id}/resume`, { form: 'resume', reason: 'all clear' });
    expect((await accountOf(customer.auth)).state).toBe('active');
    // A resume the machine would not take now is refused with its code on the page.
    const again = await web.post(`/ops/accounts/${customer.account.id}/resume`, { form: 'resume', reason: 'twice' });
    expect(again.statusCode).toBe(409);
    expect(again.body).toContain('ACCOUNT_NOT_SUSPENDED');

    await web.post(`/ops/accounts/${customer.account.id}/close`, { form: 'close', reason: 'asked by phone' });
    // The same list through the operator API: the page and the API read one query.
    const api = await tollgate.app.inject({ url: '/v1/ops/accounts?search=grace&state=closed', headers: { authorization: `Bearer ${tollgate.adminToken}` } });
    expect(api.json().accounts.map((a: { id: string }) => a.id)).toEqual([customer.account.id]);
    // A cursor this API never gave out (an impossible date looks like one) is refused, on the API and on the page.
    for (const cursor of ['garbage', `2026-13-45T00:00:00.000Z|${customer.account.id}`]) {
      const refused = await tollgate.app.inject({ url: `/v1/ops/accounts?cursor=${encodeURIComponent(cursor)}`, headers: { authorization: `Bearer ${tollgate.adminToken}` } });
      expect([refused.statusCode, refused.json().issues]).toEqual([400, [expect.objectContaining({ path: 'querystring.cursor' })]]);
      expect((await web.get(`/ops/accounts?cursor=${encodeURIComponent(cursor)}`)).statusCode).toBe(400);
    }
    await signUp(tollgate.app);
    const firstPage = (await tollgate.app.inject({ url: '/v1/ops/accounts?limit=1', headers: { authorization: `Bearer ${tollgate.adminToken}` } })).json();
    const secondPage = await tollgate.app.inject({ url: `/v1/ops/accounts?limit=1&cursor=${encodeURIComponent(firstPage.nextCursor)}`, headers: { authorization: `Bearer ${tollgate.adminToken}` } });
    expect(secondPage.statusCode, secondPage.body).toBe(200);
    expect(secondPage.json().accounts[0].id).not.toBe(firstPage.accounts[0].id);
    expect((await web.get(`/ops/accounts/${customer.account.id}`)).body).not.toContain('Suspend account');
  });

  it('lets an admin set the payment mode with a reason; a bad choice is an error on the page', async () => {
    const customer = await signUp(tollgate.app, { name: 'Trusted Customer' });
    const web = await operator('acct-admin');
    await web.get(`/ops/accounts/${customer.account.id}`);
    const bad = await web.post(`/ops/accounts/${customer.account.id}/payment-mode`, { form: 'payment-mode', paymentMode: 'barter', reason: 'trusted' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('Choose card, prepaid or postpaid. (VALIDATION_FAILED)');
    await web.post(`/ops/accounts/${customer.account.id}/payment-mode`, { form: 'payment-mode', paymentMode: 'postpaid', reason: 'trusted for years' });
    expect((await accountOf(customer.auth)).paymentMode).toBe('postpaid');
  });

  it('lists an account’s statements and downloads each as JSON, CSV and PDF', async () => {
    const customer = await signUp(tollgate.app, { name: 'Statement Reader' });
    const opened = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '5.00' } })).json();
    clock.advance(60_000);
    await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${opened.id}/logoff`, headers: customer.auth });
    clock.set(Date.UTC(2026, 11, 1, 0, 0, 1));
    const statements = async () => (await tollgate.app.inject({ url: '/v1/account/statements', headers: customer.auth })).json().statements as { id: string }[];
    await expect.poll(statements, { timeout: 10_000 }).toHaveLength(1);
    const [statement] = await statements();
    const web = await operator('acct-support');
    const page = await web.get(`/ops/accounts/${customer.account.id}`);
    expect(page.body).toContain('2026-11-01 to 2026-12-01 (month)');
    const base = `/ops/accounts/${customer.account.id}/statements/${statement!.id}`;
    expect((await web.get(`${base}?format=json`)).json().totals.charges).toBe('0.60');
    const csv = await web.get(`${base}?format=csv`);
    expect(csv.headers['content-disposition']).toBe('attachment; filename="statement-2026-11-01.csv"');
    expect(csv.body).toContain('total_charges');
    const pdf = await web.get(`${base}?format=pdf`);
    expect(pdf.headers['content-type']).toBe('application/pdf');
    expect(pdf.rawPayload.subarray(0, 5).toString()).toBe('%PDF-');
    // Another account's statement is not found under this one.
    const other = await signUp(tollgate.app);
    expect((await web.get(`/ops/accounts/${other.account.id}/statements/${statement!.id}`)).statusCode).toBe(404);
  });
});

describe('a live console page', () => {
  it('stops streaming once its operator is disabled', async () => {
    const created = await createOperator(tollgate.app, tollgate.adminToken, { name: 'stream-reader', role: 'read_only', password: PASSWORD });
    const web = await operator('stream-reader');
    const customer = await signUp(tollgate.app);
    const id = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '1.00' } })).json().id as string;
    const stream = web.get(`/ops/sessions/${id}/events`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const disabled = await tollgate.app.inject({ method: 'PATCH', url: `/v1/ops/operators/${created.operator.id}`, headers: { authorization: `Bearer ${tollgate.adminToken}` }, payload: { disabled: true } });
    expect(disabled.statusCode).toBe(200);
    const ended = await Promise.race([stream, new Promise((resolve) => setTimeout(() => resolve(null), 5_000))]);
    expect(ended, 'the stream still runs for a disabled operator').not.toBeNull();
    expect((ended as { body: string }).body).toMatch(/^data: /);
    await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${id}/logoff`, headers: customer.auth });
  });
});

describe('refunds in the console', () => {
  it('shows a closed account’s balance refunds, with their state and attempts', async () => {
    const customer = await signUp(tollgate.app, { name: 'Prepaid Leaver' });
    await tollgate.app.inject({ method: 'PATCH', url: '/v1/account', headers: customer.auth, payload: { paymentMode: 'prepaid' } });
    await tollgate.app.inject({ method: 'POST', url: '/v1/account/top-ups', headers: customer.auth, payload: { amount: '9.00' } });
    const web = await operator('acct-admin');
    await web.get(`/ops/accounts/${customer.account.id}`);
    await web.post(`/ops/accounts/${customer.account.id}/close`, { form: 'close', reason: 'asked by phone' });
    const page = (await web.get(`/ops/accounts/${customer.account.id}`)).body;
    expect(page).toContain('Refunds of the balance');
    expect(page).toMatch(/<td>9\.00 USD<\/td><td>ch_[0-9a-f]+<\/td><td>refunded \(re_[0-9a-f]+\)<\/td><td>1<\/td>/);
  });
});

describe('webhook endpoints in the console', () => {
  it('registers an endpoint, shows its secret once, and lists its deliveries', async () => {
    const web = await operator('acct-admin');
    await web.get('/ops/webhooks');
    const bad = await web.post('/ops/webhooks', { url: 'ftp://example.com/x' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('Endpoint URL must be an http or https URL');
    expect(bad.body).toContain('Choose events to send');
    expect(bad.body).toContain('value="ftp://example.com/x"');

    const created = await web.post('/ops/webhooks', { url: receiverUrl, eventTypes: ['account.suspended'] });
    expect(created.statusCode).toBe(201);
    const secret = /data-field="secret">(whsec_[^<]+)</.exec(created.body)?.[1];
    expect(secret).toBeDefined();
    const listed = await web.get('/ops/webhooks');
    expect(listed.body).toContain(receiverUrl);
    expect(listed.body).not.toContain(secret!);

    const customer = await signUp(tollgate.app);
    await web.get(`/ops/accounts/${customer.account.id}`);
    await web.post(`/ops/accounts/${customer.account.id}/suspend`, { form: 'suspend', reason: 'webhook check' });
    await expect.poll(() => received.some((body) => body.includes(customer.account.id)), { timeout: 10_000 }).toBe(true);
    const endpointId = /href="\/ops\/webhooks\/([0-9a-f-]{36})"/.exec(listed.body)![1]!;
    await expect.poll(async () => (await web.get(`/ops/webhooks/${endpointId}?state=delivered`)).body, { timeout: 10_000 }).toContain('account.suspended');
    expect((await web.get(`/ops/webhooks/${endpointId}`)).body).toContain('HTTP 200');

    await web.get('/ops/webhooks');
    expect((await web.post(`/ops/webhooks/${endpointId}/disable`, {})).headers.location).toBe('/ops/webhooks');
    expect((await web.get('/ops/webhooks')).body).not.toContain('>Disable<');
  });

  it('registers one endpoint for a form sent twice, showing its secret both times', async () => {
    const web = await operator('acct-admin');
    const formId = (page: string) => /name="endpointId" value="([0-9a-f-]{36})"/.exec(page)?.[1];
    const id = formId((await web.get('/ops/webhooks')).body)!;
    expect(id).toBeDefined();
    const url = `${receiverUrl}?twice`;
    const bad = await web.post('/ops/webhooks', { url, endpointId: id });
    // A form sent back with an error keeps its id.
    expect(formId(bad.body)).toBe(id);
    const first = await web.post('/ops/webhooks', { url, eventTypes: ['account.suspended'], endpointId: id });
    const second = await web.post('/ops/webhooks', { url, eventTypes: ['account.suspended'], endpointId: id });
    expect([first.statusCode, second.statusCode]).toEqual([201, 201]);
    const secret = (page: string) => /data-field="secret">(whsec_[^<]+)</.exec(page)?.[1];
    expect(secret(second.body)).toBe(secret(first.body));
    // The page after a registration carries a fresh form.
    expect(formId(first.body)).not.toBe(id);
    const listed = (await web.get('/ops/webhooks')).body;
    expect(listed.split(`>${url.replace('?', '?')}<`).length - 1).toBe(1);
    const audited = await tollgate.sql<{ n: number }[]>`select count(*)::int as n from audit_log where action = 'webhook.create' and target_id = ${id}`;
    expect(audited[0]!.n).toBe(1);
    // The same form sent for another endpoint registers nothing.
    const other = await web.post('/ops/webhooks', { url: `${receiverUrl}?other`, eventTypes: ['account.suspended'], endpointId: id });
    expect(other.statusCode).toBe(409);
    expect(other.body).toContain('WEBHOOK_ALREADY_SENT');
    expect((await web.get('/ops/webhooks')).body).not.toContain('?other');
    // Nor does the secret come back later: sent again after ten minutes, or once disabled, it is refused.
    clock.advance(10 * 60_000 + 1);
    const later = await web.post('/ops/webhooks', { url, eventTypes: ['account.suspended'], endpointId: id });
    expect([later.statusCode, later.body.includes('WEBHOOK_ALREADY_SENT'), secret(later.body)]).toEqual([409, true, undefined]);
  });

  it('shows the support role the endpoints without the form to register one', async () => {
    const web = await operator('acct-support');
    const page = await web.get('/ops/webhooks');
    expect(page.statusCode).toBe(200);
    expect(page.body).not.toContain('Register endpoint');
  });
});
