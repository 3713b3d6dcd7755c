import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { createService } from '../helpers/customers.js';
import { createOperator } from '../helpers/operators.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { WebClient } from '../helpers/web-client.js';

let tollgate: TestTollgate;
let serviceId: string;
const clock = new ManualClock(Date.UTC(2026, 10, 30, 9));
const PASSWORD = 'correct horse battery staple';

beforeAll(async () => {
  tollgate = await startTestTollgate({ clock });
  await createOperator(tollgate.app, tollgate.adminToken, { name: 'tariff-admin', role: 'admin', password: PASSWORD });
  await createOperator(tollgate.app, tollgate.adminToken, { name: 'tariff-reader', role: 'read_only', password: PASSWORD });
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' }));
});
afterAll(async () => {
  await tollgate?.stop();
});

async function operator(name: string) {
  const web = new WebClient(tollgate.app);
  await web.get('/ops/login');
  expect((await web.post('/ops/login', { name, password: PASSWORD })).statusCode).toBe(303);
  return web;
}

const tariffOf = async () => (await tollgate.app.inject({ url: '/v1/services' })).json().services.find((s: { id: string }) => s.id === serviceId).tariff;

/** The form as the page sends it with every field filled in the way an operator would. */
const goodForm = {
  pricePerMinute: '0.50',
  timeZone: 'Europe/Paris',
  'rules.0.days': ['1', '2', '3', '4', '5'],
  'rules.0.fromHour': '9',
  'rules.0.toHour': '17',
  'rules.0.pricePerMinute': '1.20',
  'rules.1.fromHour': '',
  'rules.1.toHour': '',
  'rules.1.pricePerMinute': '',
  'rules.2.days': ['6', '7'],
  'rules.2.fromHour': '22',
  'rules.2.toHour': '6',
  'rules.2.pricePerMinute': '0.30',
  'billing.firstPeriodSeconds': '60',
  'billing.incrementSeconds': '60',
  'billing.minimumCharge': '0.25',
  'perUse.unit': 'unit',
  'perUse.price': '0.002',
};

describe('tariff editing in the console', () => {
  it('saves rules, time zone, increments, minimum and the price per use, as the API then shows them; a blank row is no rule', async () => {
    const admin = await operator('tariff-admin');
    const form = await admin.get(`/ops/services/${serviceId}/tariff`);
    expect(form.body).toContain('Save tariff');
    const saved = await admin.post(`/ops/services/${serviceId}/tariff`, goodForm);
    expect(saved.headers.location).toBe(`/ops/services/${serviceId}/tariff?done=saved`);
    expect(await tariffOf()).toEqual({
      timeZone: 'Europe/Paris',
      pricePerMinute: '0.50',
      rules: [
        { days: [1, 2, 3, 4, 5], fromHour: 9, toHour: 17, pricePerMinute: '1.20' },
        { days: [6, 7], fromHour: 22, toHour: 6, pricePerMinute: '0.30' },
      ],
      billing: { firstPeriodSeconds: 60, incrementSeconds: 60, minimumCharge: '0.25' },
      perUse: { unit: 'unit', price: '0.002' },
    });
    const again = await admin.get(`/ops/services/${serviceId}/tariff?done=saved`);
    expect(again.body).toContain('Tariff saved.');
    expect(again.body).toContain('value="Europe/Paris"');
    expect(again.body).toMatch(/name="rules.1.days" value="6" checked/);
  });

  it('shows each bad field next to itself, keeps what was typed, and changes nothing', async () => {
    const admin = await operator('tariff-admin');
    await admin.get(`/ops/services/${serviceId}/tariff`);
    const before = await tariffOf();
    const bad = await admin.post(`/ops/services/${serviceId}/tariff`, {
      ...goodForm,
      timeZone: 'Mars/Olympus',
      'rules.2.toHour': '25',
      'rules.2.pricePerMinute': 'cheap',
      'rules.0.days': [],
      'billing.incrementSeconds': '0',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('There is a problem');
    // The error sits in the field's own block, named in the words of its label, on the row it was typed in.
    expect(bad.body).toMatch(/<label for="f-timeZone">Time zone<\/label>[\s\S]{0,200}<span class="error" id="f-timeZone-error">Time zone must be an IANA time zone, like Europe\/Paris<\/span>/);
    expect(bad.body).toContain('To hour of rule 3 must be at most 24');
    expect(bad.body).toMatch(/Price per minute of rule 3 must be a decimal string/);
    expect(bad.body).toContain('Choose days of rule 1');
    expect(bad.body).toContain('Increment (seconds) must be at least 1');
    expect(bad.body).toContain('value="cheap"');
    expect(await tariffOf()).toEqual(before);

    const perUse = await admin.post(`/ops/services/${serviceId}/tariff`, { ...goodForm, 'perUse.unit': '', 'perUse.price': '0.01' });
    expect(perUse.statusCode).toBe(400);
    expect(perUse.body).toContain('Choose what counts as a use, or clear the price per use');
    const noPrice = await admin.post(`/ops/services/${serviceId}/tariff`, { ...goodForm, pricePerMinute: '' });
    expect(noPrice.body).toContain('Enter default price per minute');
    // A rule row no page of this form has is refused, not dropped with the rest saved.
    const craftedForms: Record<string, string>[] = [
      { 'rules.99999999.days': '3' },
      { 'rules.50.days': '3', 'rules.50.fromHour': '1', 'rules.50.toHour': '2', 'rules.50.pricePerMinute': '1.00' },
      { 'rules.01.days': '3' },
    ];
    for (const crafted of craftedForms) {
      const refused = await admin.post(`/ops/services/${serviceId}/tariff`, { ...goodForm, ...crafted });
      expect(refused.statusCode, JSON.stringify(crafted)).toBe(400);
      expect(refused.body).toContain('A tariff has at most 50 rules');
    }
    expect(await tariffOf()).toEqual(before);
  });

  it('offers no more rule rows than a tariff may have, so a tariff of 49 rules is saved again as shown', async () => {
    const admin = await operator('tariff-admin');
    const { serviceId: full } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' });
    const rules = Array.from({ length: 49 }, (_, i) => ({ days: [(i % 7) + 1], fromHour: i % 24, toHour: (i % 24) + 1, pricePerMinute: '1.00' }));
    const patched = await tollgate.app.inject({ method: 'PATCH', url: `/v1/services/${full}`, headers: { authorization: `Bearer ${tollgate.adminToken}` }, payload: { tariff: { rules } } });
    expect(patched.statusCode, patched.body).toBe(200);
    const page = (await admin.get(`/ops/services/${full}/tariff`)).body;
    expect(page).toContain('name="rules.49.fromHour"');
    expect(page).not.toContain('name="rules.50.fromHour"');
    // The form as the page sends it: 49 rules and one blank row.
    const form: Record<string, string | string[]> = { pricePerMinute: '0.60', timeZone: 'UTC', 'billing.firstPeriodSeconds': '1', 'billing.incrementSeconds': '1', 'billing.minimumCharge': '0' };
    rules.forEach((rule, row) => Object.assign(form, { [`rules.${row}.days`]: rule.days.map(String), [`rules.${row}.fromHour`]: String(rule.fromHour), [`rules.${row}.toHour`]: String(rule.toHour), [`rules.${row}.pricePerMinute`]: '1.00' }));
    Object.assign(form, { 'rules.49.fromHour': '', 'rules.49.toHour': '', 'rules.49.pricePerMinute': '' });
    const saved = await admin.post(`/ops/services/${full}/tariff`, form);
    expect(saved.statusCode, saved.body.slice(0, 2000)).toBe(303);
  });

  it('shows a read-only operator the tariff without a way to change it', async () => {
    const reader = await operator('tariff-reader');
    const page = await reader.get(`/ops/services/${serviceId}/tariff`);
    expect(page.statusCode).toBe(200);
    expect(page.body).not.toContain('Save tariff');
    expect((await reader.post(`/ops/services/${serviceId}/tariff`, goodForm)).statusCode).toBe(403);
  });
});
