import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { sandbox } from '../helpers/card-network.js';
import { createService, signUp } from '../helpers/customers.js';
import { createOperator } from '../helpers/operators.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { hasChromium, launch, pageErrors, screenshot } from './chromium.js';

let tollgate: TestTollgate;
let browser: Browser;
let page: Page;
let errors: string[];
let base: string;
let serviceId: string;
let customer: Awaited<ReturnType<typeof signUp>>;
const clock = new ManualClock(Date.UTC(2026, 10, 30, 9));
const PASSWORD = 'correct horse battery staple';

beforeAll(async () => {
  if (!hasChromium) return;
  tollgate = await startTestTollgate({
    clock,
    env: {
      // As test/http/ops.test.ts: one failed capture makes a session stuck; it retries by itself only 20 s later.
      CAPTURE_RETRY_BASE_MS: '20000',
      CAPTURE_RETRY_MAX_MS: '60000',
      STUCK_AFTER_ATTEMPTS: '1',
      CARD_NETWORK_MAX_ATTEMPTS: '2',
      CARD_NETWORK_BACKOFF_BASE_MS: '10',
      CARD_NETWORK_BACKOFF_MAX_MS: '20',
      LOGOFF_WAIT_MS: '2000',
    },
  });
  await createOperator(tollgate.app, tollgate.adminToken, { name: 'console-ada', role: 'support', password: PASSWORD });
  ({ serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '6.00', maxUsers: 3 }));
  customer = await signUp(tollgate.app, { outstandingLimit: '100.00' });
  base = await tollgate.app.listen({ port: 0, host: '127.0.0.1' });
  browser = await launch();
  page = await browser.newPage();
  errors = pageErrors(page);
});
afterAll(async () => {
  await browser?.close();
  await tollgate?.stop();
});

const open = async () =>
  (await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '5.00' } })).json() as { id: string };
const logoff = (id: string) => tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${id}/logoff`, headers: customer.auth });
const currentBox = () => page.locator('.machine [aria-current="true"]').getAttribute('data-path');

describe.skipIf(!hasChromium)('the operators console in Chromium', () => {
  it('logs an operator in and shows occupancy change live', async () => {
    await page.goto(`${base}/ops`);
    await page.waitForURL(`${base}/ops/login`);
    await page.getByLabel('Operator name').fill('console-ada');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(`${base}/ops`);
    const cell = page.locator(`[data-gate="service:${serviceId}"]`);
    expect(await cell.locator('[data-field="activeUsers"]').textContent()).toBe('0');
    const session = await open();
    await expect.poll(() => cell.locator('[data-field="activeUsers"]').textContent(), { timeout: 5000 }).toBe('1');
    expect(await cell.locator('meter').evaluate((m) => (m as unknown as { value: number }).value)).toBe(1);
    await screenshot(page, 'console-occupancy');
    clock.advance(1_100);
    await logoff(session.id);
    await expect.poll(() => cell.locator('[data-field="activeUsers"]').textContent(), { timeout: 5000 }).toBe('0');
  });

  it('draws the session machine from its definition and moves the highlight as the session moves', async () => {
    const session = await open();
    await page.goto(`${base}/ops/sessions/${session.id}`);
    expect(await currentBox()).toBe('active.running');
    // Every state of the definition has its box, final ones too.
    for (const path of ['authorizing.requesting', 'over_limit.grace', 'closing.capturing', 'settled', 'declined']) {
      expect(await page.locator(`.machine [data-path="${path}"]`).count()).toBe(1);
    }
    clock.advance(1_100);
    await logoff(session.id);
    await expect.poll(currentBox, { timeout: 5000 }).toBe('settled');
    await expect.poll(() => page.locator('[data-field="timeline"] li').count()).toBeGreaterThan(2);
    await screenshot(page, 'console-machine-settled');
  });

  it('lists a stuck session with its reason, and a retry rescues it', async () => {
    const session = await open();
    clock.advance(1_100);
    const network = sandbox(tollgate.cardNetworkUrl);
    await network.setFaults([{ phase: 'capture', fault: 'error' }]);
    expect((await logoff(session.id)).statusCode).toBe(202);
    await page.goto(`${base}/ops/sessions?stuck=true`);
    const row = page.locator('tr', { has: page.locator(`a[href="/ops/sessions/${session.id}"]`) });
    expect(await row.locator('.stuck').textContent()).toMatch(/^capture failing for \d+ seconds \(1 attempts\)/);
    await row.getByRole('link').click();
    await page.waitForURL(`${base}/ops/sessions/${session.id}`);
    expect(await currentBox()).toBe('closing.capturing.waiting');
    expect(await page.locator('[data-field="stuck"]').textContent()).toMatch(/^yes: capture failing/);
    await screenshot(page, 'console-stuck');
    await network.clearFaults();
    await page.getByRole('button', { name: 'Retry' }).click();
    await page.waitForURL(`${base}/ops/sessions/${session.id}?done=retry`);
    await expect.poll(currentBox, { timeout: 5000 }).toBe('settled');
    expect(await page.locator('[data-field="stuck"]').textContent()).toBe('no');
    await screenshot(page, 'console-rescued');
    await page.goto(`${base}/ops/sessions?stuck=true`);
    expect(await page.locator(`a[href="/ops/sessions/${session.id}"]`).count()).toBe(0);
  });

  it('draws sessions, minutes and revenue per service per hour and per day', async () => {
    await page.goto(`${base}/ops/charts?period=hour`);
    expect(await page.getByRole('img', { name: /^Revenue of service-/ }).count()).toBeGreaterThan(0);
    await screenshot(page, 'console-charts-hour');
    await page.getByRole('link', { name: 'Per day instead' }).click();
    await page.waitForURL(`${base}/ops/charts?period=day`);
    expect(await page.getByRole('img', { name: /^Sessions of service-/ }).count()).toBeGreaterThan(0);
    // Across the whole console: no script error, nothing the content security policy blocked.
    expect(errors).toEqual([]);
  });
});
