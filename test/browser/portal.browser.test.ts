import { randomUUID } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { createService, signUp, VISA_OK } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { hasChromium, launch, pageErrors, screenshot } from './chromium.js';

let tollgate: TestTollgate;
let browser: Browser;
let base: string;
let serviceName: string;
let serviceId: string;
const clock = new ManualClock(Date.UTC(2026, 5, 1, 9));

beforeAll(async () => {
  if (!hasChromium) return;
  tollgate = await startTestTollgate({ clock });
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60', maxUsers: 5 }));
  serviceName = (await tollgate.app.inject({ url: '/v1/services' })).json().services.find((s: { id: string }) => s.id === serviceId).name;
  base = await tollgate.app.listen({ port: 0, host: '127.0.0.1' });
  browser = await launch();
});
afterAll(async () => {
  await browser?.close();
  await tollgate?.stop();
});

async function signUpInBrowser(page: Page) {
  await page.goto(`${base}/`);
  await page.getByRole('link', { name: 'Sign up' }).first().click();
  await page.getByLabel('Full name').fill('Ada Lovelace');
  await page.getByLabel('E-mail').fill(`ada-${randomUUID()}@example.com`);
  await page.getByLabel('Password').fill('analytical engine');
  await page.getByLabel('Card number').fill(VISA_OK);
  await page.getByLabel('Expiry month').fill('12');
  await page.getByLabel('Expiry year').fill('2031');
  await page.getByLabel('CVC').fill('123');
  await page.getByLabel('Estimated storage (GB)').fill('20');
  await page.getByLabel('Estimated processing (hours)').fill('3.5');
  await page.getByLabel('Outstanding limit').fill('50.00');
  await page.getByRole('button', { name: 'Sign up' }).click();
  await page.waitForURL(`${base}/account`);
}

async function openSession(page: Page, limits: { maxMinutes?: string; maxCharge?: string }) {
  await page.goto(`${base}/`);
  await page.getByRole('link', { name: `Open session on ${serviceName}` }).click();
  if (limits.maxMinutes) await page.getByLabel('Max minutes (optional)').fill(limits.maxMinutes);
  if (limits.maxCharge) await page.getByLabel('Max charge (optional)').fill(limits.maxCharge);
  await page.getByRole('button', { name: 'Open session' }).click();
  await page.waitForURL(/\/sessions\/[0-9a-f-]{36}$/);
  await expect.poll(() => page.locator('[data-field="state"]').textContent()).toBe('active');
}

describe.skipIf(!hasChromium)('the customer portal in Chromium', () => {
  it('signs up, opens a session, watches the charge rise, logs off and sees the charge slip', async () => {
    const page = await browser.newPage();
    const errors = pageErrors(page);
    await signUpInBrowser(page);
    await expect.poll(() => page.getByText('visa ending 4242').count()).toBe(1);
    await openSession(page, { maxCharge: '5.00' });
    const accrued = page.locator('output[data-field="accrued"]');
    expect(await accrued.textContent()).toBe('0.00');
    // The server's clock moves; the page hears of it by server-sent events, with no reload.
    await page.evaluate(() => ((globalThis as unknown as { marker: number }).marker = 1));
    clock.advance(60_000);
    await expect.poll(() => accrued.textContent(), { timeout: 5000 }).toBe('0.60');
    clock.advance(30_000);
    await expect.poll(() => accrued.textContent(), { timeout: 5000 }).toBe('0.90');
    expect(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker)).toBe(1);
    await page.getByLabel('New charge limit').fill('6.00');
    await page.getByRole('button', { name: 'Extend' }).click();
    await expect.poll(() => page.getByRole('status').first().textContent()).toBe('The charge limit was raised.');
    expect(await page.locator('[data-field="maxCharge"]').textContent()).toBe('6.00');
    await screenshot(page, 'portal-session-running');
    await page.getByRole('button', { name: 'Log off' }).click();
    await expect.poll(() => page.locator('[data-field="slip"]').textContent()).toMatch(/^Charge slip \S+: 0\.90 USD, authorization \S+$/);
    await expect.poll(() => page.getByRole('button', { name: 'Extend' }).isVisible()).toBe(false);
    await screenshot(page, 'portal-charge-slip');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('shows a session that reaches its limit as ended, without a reload', async () => {
    const page = await browser.newPage();
    await signUpInBrowser(page);
    await openSession(page, { maxMinutes: '1' });
    await page.evaluate(() => ((globalThis as unknown as { marker: number }).marker = 1));
    expect(await page.locator('[data-field="endedText"]').isVisible()).toBe(false);
    clock.advance(61_000);
    const ended = page.locator('[data-field="endedText"]');
    await expect.poll(() => ended.isVisible(), { timeout: 5000 }).toBe(true);
    expect(await ended.textContent()).toBe('The session reached its time limit and was interrupted.');
    expect(await page.getByRole('button', { name: 'Log off' }).isVisible()).toBe(false);
    expect(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker)).toBe(1);
    await screenshot(page, 'portal-limit-reached');
    await page.close();
  });

  it('shows sign-up errors next to their fields, keeping all but the card number and CVC', async () => {
    const page = await browser.newPage();
    await page.goto(`${base}/signup`);
    await page.getByLabel('Full name').fill('Ada Lovelace');
    await page.getByLabel('E-mail').fill('ada at example');
    await page.getByLabel('Card number').fill('4242 4242');
    await page.getByLabel('CVC').fill('123');
    await page.getByLabel('Outstanding limit').fill('-3');
    await page.getByRole('button', { name: 'Sign up' }).click();
    await page.waitForSelector('.error-summary');
    expect(await page.getByLabel('Full name').inputValue()).toBe('Ada Lovelace');
    expect(await page.getByLabel('E-mail').inputValue()).toBe('ada at example');
    expect(await page.getByLabel('Card number').inputValue()).toBe('');
    expect(await page.getByLabel('CVC').inputValue()).toBe('');
    expect(await page.locator('#f-email-error').textContent()).toContain('E-mail must be an e-mail address');
    expect(await page.locator('#f-card-number-error').textContent()).toContain('Card number');
    expect(await page.locator('#f-outstandingLimit-error').textContent()).toContain('Outstanding limit');
    await screenshot(page, 'portal-sign-up-errors');
    await page.close();
  });

  it('updates the seats free on the catalogue live, and its forms work from the keyboard', async () => {
    const page = await browser.newPage();
    await page.goto(`${base}/`);
    const seats = page.locator(`tr[data-service="${serviceId}"] [data-field="seatsFree"]`);
    const before = Number(await seats.textContent());
    const customer = await signUp(tollgate.app);
    const session = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxMinutes: 5 } })).json();
    await expect.poll(() => seats.textContent(), { timeout: 5000 }).toBe(String(before - 1));
    await screenshot(page, 'portal-catalogue-live');
    await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth });
    await expect.poll(() => seats.textContent(), { timeout: 5000 }).toBe(String(before));

    // Keyboard only: Tab moves from field to field, Enter sends the form.
    await page.goto(`${base}/login`);
    await page.getByLabel('E-mail').focus();
    await page.keyboard.type(customer.account.email);
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (globalThis as unknown as { document: { activeElement: { id: string } } }).document.activeElement.id)).toBe('f-password');
    await page.keyboard.type('analytical engine');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${base}/account`);
    await page.close();
  });

  it('shows the queue live while a customer waits for a seat, and opens the session once one frees', async () => {
    const { serviceId: oneSeat } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60', maxUsers: 1 });
    const occupant = await signUp(tollgate.app);
    const taken = (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: occupant.auth, payload: { serviceId: oneSeat, maxMinutes: 5 } })).json();
    const page = await browser.newPage();
    await signUpInBrowser(page);
    await page.goto(`${base}/services/${oneSeat}/open`);
    expect(await page.locator('[data-field="seatsFree"]').textContent()).toBe('0');
    expect(await page.getByLabel('Wait for a seat (seconds)').inputValue()).toBe('30');
    // Sent as the button sends it, without waiting for the answer (it comes once a seat frees).
    // While its page waits for that answer, another tab's catalogue shows the queue, live.
    await page.locator('form[data-open-form]').evaluate((form) => (form as unknown as { requestSubmit(): void }).requestSubmit());
    const catalogue = await browser.newPage();
    await catalogue.goto(`${base}/`);
    const row = catalogue.locator(`tr[data-service="${oneSeat}"]`);
    await expect.poll(() => row.locator('[data-field="queued"]').textContent(), { timeout: 5000 }).toBe('1');
    expect(await row.locator('[data-field="seatsFree"]').textContent()).toBe('0');
    await screenshot(catalogue, 'portal-queue-while-waiting');
    clock.advance(1_000);
    await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${taken.id}/logoff`, headers: occupant.auth });
    await page.waitForURL(/\/sessions\/[0-9a-f-]{36}$/);
    await expect.poll(() => page.locator('[data-field="state"]').textContent()).toBe('active');
    await expect.poll(() => row.locator('[data-field="queued"]').textContent(), { timeout: 5000 }).toBe('0');
    await catalogue.close();
    await page.close();
  });
});
