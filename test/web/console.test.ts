import { parse } from 'csv-parse/sync';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { createService, signUp } from '../helpers/customers.js';
import { createOperator } from '../helpers/operators.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { WebClient } from '../helpers/web-client.js';

let tollgate: TestTollgate;
let serviceId: string;
let serverId: string;
const clock = new ManualClock(Date.UTC(2026, 10, 30, 9));
const PASSWORD = 'correct horse battery staple';

beforeAll(async () => {
  tollgate = await startTestTollgate({ clock });
  await createOperator(tollgate.app, tollgate.adminToken, { name: 'web-admin', role: 'admin', password: PASSWORD });
  await createOperator(tollgate.app, tollgate.adminToken, { name: 'web-reader', role: 'read_only', password: PASSWORD });
  ({ serviceId, serverId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '6.00', maxUsers: 3 }));
  const customer = await signUp(tollgate.app);
  const session = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '20.00' } })).json();
  clock.advance(120_000);
  await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth });
});
afterAll(async () => {
  await tollgate?.stop();
});

async function operator(name: string) {
  const web = new WebClient(tollgate.app);
  await web.get('/ops/login');
  const answer = await web.post('/ops/login', { name, password: PASSWORD });
  expect(answer.statusCode).toBe(303);
  return web;
}

describe('the operators console over HTTP', () => {
  it('refuses a wrong password with a stable code, and sends anyone without a console session to log in', async () => {
    const web = new WebClient(tollgate.app);
    expect((await web.get('/ops')).headers.location).toBe('/ops/login');
    await web.get('/ops/login');
    const wrong = await web.post('/ops/login', { name: 'web-admin', password: 'not it at all' });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.body).toContain('INVALID_CREDENTIALS');
    // An operator key is no console password, and the API's bearer key is no console cookie.
    expect((await tollgate.app.inject({ url: '/ops', headers: { authorization: `Bearer ${tollgate.adminToken}` } })).statusCode).toBe(303);
  });

  it('lets an admin change a cap and a price, audited like the API; a read-only operator gets a 403 page', async () => {
    const admin = await operator('web-admin');
    await admin.get('/ops');
    expect((await admin.post(`/ops/services/${serviceId}`, { maxUsers: '7', pricePerMinute: '7.50' })).headers.location).toBe('/ops?done=saved');
    expect((await admin.post(`/ops/servers/${serverId}`, { maxUsers: 'many' })).body).toContain('Cap must be a number');
    expect((await admin.post(`/ops/servers/${serverId}`, { maxUsers: '1.5' })).body).toContain('Cap must be a whole number');
    // A refused row keeps what was typed, with its error by the field, in that row; each row's fields have ids of their own.
    const badPrice = await admin.post(`/ops/services/${serviceId}`, { maxUsers: '7', pricePerMinute: '0.6x' });
    expect(badPrice.statusCode).toBe(400);
    expect(badPrice.body).toContain(`id="f-${serviceId}-pricePerMinute-error">Price per minute must be`);
    expect(badPrice.body).toContain(`id="f-${serviceId}-pricePerMinute" name="pricePerMinute"`);
    expect(badPrice.body).toMatch(/value="0\.6x"/);
    const ids = [...badPrice.body.matchAll(/ id="(f-[^"]+)"/g)].map((m) => m[1]);
    expect(new Set(ids).size).toBe(ids.length);
    // Nothing to change is refused, as the API's PATCH {} is, and nothing is audited.
    const auditedBefore = (await tollgate.app.inject({ url: `/v1/ops/audit?targetId=${serviceId}`, headers: { authorization: `Bearer ${tollgate.adminToken}` } })).json().entries.length;
    const empty = await admin.post(`/ops/services/${serviceId}`, { maxUsers: '', pricePerMinute: '' });
    expect(empty.statusCode).toBe(400);
    expect(empty.body).toContain('Give a cap, a price per minute, or both');
    expect((await tollgate.app.inject({ url: `/v1/ops/audit?targetId=${serviceId}`, headers: { authorization: `Bearer ${tollgate.adminToken}` } })).json().entries.length).toBe(auditedBefore);
    const services = (await tollgate.app.inject({ url: '/v1/services' })).json().services;
    expect(services.find((s: { id: string }) => s.id === serviceId)).toMatchObject({ maxUsers: 7, pricePerMinute: '7.50' });
    const audit = (await tollgate.app.inject({ url: `/v1/ops/audit?targetId=${serviceId}`, headers: { authorization: `Bearer ${tollgate.adminToken}` } })).json();
    expect(audit.entries[0]).toMatchObject({ operatorName: 'web-admin', action: 'service.update' });

    const reader = await operator('web-reader');
    const page = await reader.get('/ops');
    expect(page.body).not.toContain('Save cap');
    const refused = await reader.post(`/ops/servers/${serverId}`, { maxUsers: '1' });
    expect(refused.statusCode).toBe(403);
    expect(refused.body).toContain('FORBIDDEN');
    expect((await reader.post(`/ops/servers/${serverId}`, { maxUsers: '1' }, { csrf: false })).body).toContain('CSRF_TOKEN_INVALID');
  });

  it('filters the marketing log and exports it as CSV; draws the usage charts', async () => {
    const web = await operator('web-reader');
    const log = await web.get(`/ops/log?serviceId=${serviceId}&endReason=logoff`);
    expect(log.body).toContain('Ada Lovelace');
    expect((await web.get(`/ops/log?endReason=charge_limit`)).body).toContain('No session matches.');
    const csv = await web.get(`/ops/log.csv?serviceId=${serviceId}`);
    expect(csv.headers['content-type']).toContain('text/csv');
    expect(csv.body.split('\n')[1]).toContain('Ada Lovelace');
    const charts = await web.get('/ops/charts?period=hour');
    expect(charts.body).toMatch(/<svg role="img" aria-label="Revenue of service-[^:]+: total 12.00/);
    expect((await web.get('/ops/charts?period=day')).statusCode).toBe(200);
  });

  it('shows in the marketing log the minutes in the whole seconds billed, as statements do, not the wall time rounded', async () => {
    const { serviceId: other } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '6.00' });
    const customer = await signUp(tollgate.app);
    const session = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId: other, maxCharge: '20.00' } })).json();
    // 9.999 s: 9 whole seconds billed (0.90), 0.15 of a minute.
    clock.advance(9_999);
    const ended = (await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth })).json();
    expect(ended.charge).toBe('0.90');
    const web = await operator('web-reader');
    expect((await web.get(`/ops/log?serviceId=${other}`)).body).toMatch(/<td>0\.15<\/td><td>0\.90 USD<\/td>/);
    const [row] = parse((await web.get(`/ops/log.csv?serviceId=${other}`)).body, { columns: true }) as Record<string, string>[];
    expect([row!.minutes, row!.charge]).toEqual(['0.15', '0.90']);
  });

  it('lists sessions by state and service', async () => {
    const web = await operator('web-reader');
    const settled = await web.get(`/ops/sessions?state=settled&serviceId=${serviceId}`);
    expect(settled.body.match(/<a href="\/ops\/sessions\/[0-9a-f-]{36}">/g)).toHaveLength(1);
    expect(settled.body).toContain('<option value="settled" selected>');
    expect((await web.get(`/ops/sessions?state=active&serviceId=${serviceId}`)).body).toContain('No session matches.');
    const bad = await web.get('/ops/sessions?state=asleep');
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('VALIDATION_FAILED');
  });

  it('offers rescues for a session that can still take one, and none for a settled one', async () => {
    const customer = await signUp(tollgate.app);
    const session = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '20.00' } })).json();
    const web = await operator('web-admin');
    const running = (await web.get(`/ops/sessions/${session.id}`)).body;
    expect(running).toContain(`action="/ops/sessions/${session.id}/terminate"`);
    await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth });
    const settled = (await web.get(`/ops/sessions/${session.id}`)).body;
    expect(settled).toContain('Nothing to rescue: the session is settled');
    expect(settled).not.toContain(`action="/ops/sessions/${session.id}/`);
  });

  it('serves the API reference from the routes own schemas', async () => {
    const web = new WebClient(tollgate.app);
    const doc = (await web.get('/docs/openapi.json')).json();
    expect(Object.keys(doc.paths)).toContain('/v1/sessions');
    expect(Object.keys(doc.paths)).not.toContain('/signup');
    // The metering batch reads each operation on its own, and still describes their shape.
    expect(JSON.stringify(doc.paths['/v1/metering/batch'].post.requestBody)).toContain('reservationId');
    const page = await web.get('/docs');
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('POST /v1/sessions');
  });

  it('keeps every page script under 100 KB compressed', async () => {
    const web = new WebClient(tollgate.app);
    for (const name of ['portal.js', 'ops.js']) {
      const script = await web.get(`/assets/${name}`);
      expect(script.statusCode).toBe(200);
      expect(gzipSync(script.rawPayload).length).toBeLessThan(100 * 1024);
    }
  });
});
