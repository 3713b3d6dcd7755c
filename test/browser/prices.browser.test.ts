import { readFile } from 'node:fs/promises';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { createService, signUp } from '../helpers/customers.js';
import { createOperator } from '../helpers/operators.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { hasChromium, launch, pageErrors, screenshot } from './chromium.js';

let tollgate: TestTollgate;
let browser: Browser;
let base: string;
let serviceId: string;
let serviceName: string;
// Monday 30 November 2026, 09:00 UTC: a Monday rule from 9 to 17 is in force; November's statements are due at midnight.
const clock = new ManualClock(Date.UTC(2026, 10, 30, 9));
const PASSWORD = 'correct horse battery staple';

beforeAll(async () => {
  if (!hasChromium) return;
  tollgate = await startTestTollgate({ clock });
  await createOperator(tollgate.app, tollgate.adminToken, { name: 'prices-admin', role: 'admin', password: PASSWORD });
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60' }));
  serviceName = (await tollgate.app.inject({ url: '/v1/services' })).json().services.find((s: { id: string }) => s.id === serviceId).name;
  base = await tollgate.app.listen({ port: 0, host: '127.0.0.1' });
  browser = await launch();
});
afterAll(async () => {
  await browser?.close();
  await tollgate?.stop();
});

async function logIn(page: Page, email: string) {
  await page.goto(`${base}/login`);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill('analytical engine');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(`${base}/account`);
}

/** Asks the portal for a quote of `minutes` on the test's service now, and returns the total it shows. */
async function quote(page: Page, minutes: string) {
  await page.getByRole('link', { name: 'Get a quote' }).click();
  await page.getByLabel('Service').selectOption({ label: serviceName });
  await page.getByLabel('Minutes').fill(minutes);
  await page.getByRole('button', { name: 'Get quote' }).click();
  await page.waitForURL(/\/quotes\/[0-9a-f-]{36}$/);
  return page.locator('[data-field="total"]').textContent();
}

describe.skipIf(!hasChromium)('prices in Chromium: the console’s tariff, the portal’s quote, statements', () => {
  it('edits a tariff in the console, and the portal’s quote follows it; a bad field is shown next to itself', async () => {
    const customer = await signUp(tollgate.app);
    const portal = await browser.newPage();
    const portalErrors = pageErrors(portal);
    await logIn(portal, customer.account.email);
    expect(await quote(portal, '10')).toBe('6.00 USD');

    const ops = await browser.newPage();
    const opsErrors = pageErrors(ops);
    await ops.goto(`${base}/ops/login`);
    await ops.getByLabel('Operator name').fill('prices-admin');
    await ops.getByLabel('Password').fill(PASSWORD);
    await ops.getByRole('button', { name: 'Log in' }).click();
    await ops.waitForURL(`${base}/ops`);
    await ops.getByRole('link', { name: `Tariff of ${serviceName}` }).click();
    await ops.getByRole('group', { name: 'Days of rule 1' }).getByLabel('Monday').check();
    await ops.getByLabel('From hour of rule 1').fill('9');
    await ops.getByLabel('To hour of rule 1').fill('25');
    await ops.getByLabel('Price per minute of rule 1').fill('2.00');
    await ops.getByRole('button', { name: 'Save tariff' }).click();
    // Refused, next to the field, with everything typed still there.
    await ops.waitForSelector('.error-summary');
    expect(await ops.locator('#f-rules-0-toHour-error').textContent()).toBe('To hour of rule 1 must be at most 24');
    expect(await ops.getByLabel('Price per minute of rule 1').inputValue()).toBe('2.00');
    expect(await ops.getByRole('group', { name: 'Days of rule 1' }).getByLabel('Monday').isChecked()).toBe(true);
    await ops.getByLabel('To hour of rule 1').fill('17');
    await ops.getByLabel('Default price per minute', { exact: true }).fill('0.90');
    await ops.getByRole('button', { name: 'Save tariff' }).click();
    await expect.poll(() => ops.getByRole('status').first().textContent()).toBe('Tariff saved.');
    await screenshot(ops, 'console-tariff-saved');

    // Monday 09:00: the rule's price.
    await portal.goto(`${base}/account`);
    expect(await quote(portal, '10')).toBe('20.00 USD');
    expect(await portal.getByRole('listitem').filter({ hasText: 'Mon 09:00 to 17:00' }).textContent()).toBe('Mon 09:00 to 17:00: 2.00 USD a minute');
    await screenshot(portal, 'portal-quote-after-tariff');
    expect(portalErrors).toEqual([]);
    // The one error the console's page saw is the refused form's own answer (400); no script failed.
    expect(opsErrors).toEqual(['Failed to load resource: the server responded with a status of 400 (Bad Request)']);
    await ops.close();
    await portal.close();
  });

  it('gets a quote in the portal and opens a session with it, holding its price', async () => {
    const customer = await signUp(tollgate.app);
    const page = await browser.newPage();
    const errors = pageErrors(page);
    await logIn(page, customer.account.email);
    expect(await quote(page, '5')).toBe('10.00 USD');
    await page.getByRole('button', { name: 'Open session with this quote' }).click();
    await page.waitForURL(/\/sessions\/[0-9a-f-]{36}$/);
    await expect.poll(() => page.locator('[data-field="state"]').textContent()).toBe('active');
    expect(await page.locator('[data-field="maxCharge"]').textContent()).toBe('10.00');
    clock.advance(60_000);
    await expect.poll(() => page.locator('output[data-field="accrued"]').textContent(), { timeout: 5000 }).toBe('2.00');
    await screenshot(page, 'portal-session-from-quote');
    await page.getByRole('button', { name: 'Log off' }).click();
    await expect.poll(() => page.locator('[data-field="charge"]').textContent()).toBe('2.00 USD');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('downloads a statement from the account page as CSV and PDF', async () => {
    const customer = await signUp(tollgate.app);
    const opened = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '5.00' } })).json();
    clock.advance(30_000);
    await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${opened.id}/logoff`, headers: customer.auth });
    clock.set(Date.UTC(2026, 11, 1, 0, 0, 1));
    const statements = async () => (await tollgate.app.inject({ url: '/v1/account/statements', headers: customer.auth })).json().statements as unknown[];
    await expect.poll(statements, { timeout: 10_000 }).toHaveLength(1);

    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    await logIn(page, customer.account.email);
    const period = '2026-11-01 to 2026-12-01';
    expect(await page.getByRole('row', { name: new RegExp(period) }).getByRole('cell').first().textContent()).toBe('1.00 USD');
    const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: `CSV of ${period}` }).click()]);
    expect(csv.suggestedFilename()).toBe('statement-2026-11-01.csv');
    const rows = (await readFile((await csv.path())!, 'utf8')).trim().split('\n');
    expect(rows[0]).toBe('kind,id,service,startedAt,endedAt,minutes,uses,amount,paidFrom,at,state');
    expect(rows.find((row) => row.startsWith('total_charges'))).toContain('1.00');
    // A card account owes nothing with its statement: nothing to charge.
    expect(rows.at(-1)).toMatch(/^due_charge,.*,none$/);
    const [pdf] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: `PDF of ${period}` }).click()]);
    expect(pdf.suggestedFilename()).toBe('statement-2026-11-01.pdf');
    expect((await readFile((await pdf.path())!)).subarray(0, 5).toString()).toBe('%PDF-');
    await screenshot(page, 'portal-statements');
    await context.close();
  });
});
