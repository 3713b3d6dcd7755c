import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { startTollgate, type Tollgate } from '../../src/runtime.js';
import { createService, signUp, VISA_DECLINED } from '../helpers/customers.js';
import { bootstrapAdmin } from '../helpers/operators.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { startFakeStripe, type FakeStripe } from '../helpers/fake-stripe.js';

let fake: FakeStripe;
let db: TestDatabase;
let dataDir: string;
let tollgate: Tollgate;
let adminToken: string;

beforeAll(async () => {
  fake = await startFakeStripe();
  db = await createTestDatabase();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'tollgate-stripe-'));
  const config = loadConfig({
    DATABASE_URL: db.url,
    TOLLGATE_DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    TOLLGATE_CARD_GATEWAY: 'stripe',
    STRIPE_API_KEY: fake.apiKey,
    STRIPE_API_HOST: fake.host,
    STRIPE_API_PORT: String(fake.port),
    STRIPE_API_PROTOCOL: 'http',
  });
  tollgate = await startTollgate(config, { clock: systemClock, log: false });
  adminToken = await bootstrapAdmin(tollgate.app, tollgate.bootstrapToken);
});
afterAll(async () => {
  await tollgate.close();
  await db.drop();
  await fake.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('TOLLGATE_CARD_GATEWAY=stripe', () => {
  it('runs a whole session through PaymentIntents with manual capture', async () => {
    expect(tollgate.cardNetworkUrl).toBeNull();
    const customer = await signUp(tollgate.app);
    const { serviceId } = await createService(tollgate.app, adminToken, { pricePerMinute: '60.00' });
    const opened = await tollgate.app.inject({
      method: 'POST',
      url: '/v1/sessions',
      headers: customer.auth,
      payload: { serviceId, maxCharge: '5.00' },
    });
    expect(opened.statusCode).toBe(201);
    const session = opened.json();
    await sleep(1_100);
    const settled = (
      await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/logoff`, headers: customer.auth })
    ).json();
    expect(settled).toMatchObject({ state: 'settled', endReason: 'logoff' });
    const [hold] = await tollgate.sql<{ holdId: string }[]>`
      select snapshot #>> '{context,hold,holdId}' as "holdId" from sessions where id = ${session.id}`;
    const intent = fake.paymentIntent(hold!.holdId)!;
    expect(intent).toMatchObject({ capture_method: 'manual', status: 'succeeded', metadata: { reference: session.id } });
    // Stripe counts cents: "1.00" is 100.
    expect(intent.amount_received).toBe(Number(settled.charge.replace('.', '')));
  });

  it('answers a Stripe decline as CARD_DECLINED with its reason', async () => {
    const customer = await signUp(tollgate.app, { card: { number: VISA_DECLINED, expMonth: 12, expYear: 2031, cvc: '123' } });
    const { serviceId } = await createService(tollgate.app, adminToken, { pricePerMinute: '1.00' });
    const response = await tollgate.app.inject({
      method: 'POST',
      url: '/v1/sessions',
      headers: customer.auth,
      payload: { serviceId, maxCharge: '5.00' },
    });
    expect(response.statusCode).toBe(402);
    expect(response.json()).toMatchObject({ code: 'CARD_DECLINED', reason: 'generic_decline' });
  });
});
