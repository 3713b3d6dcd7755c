import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/db/sql.js';
import { createService, signUp } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/**
 * What every answer carries and what bounds every request (issue 15): security headers and a
 * content security policy, an explicit CORS policy, a statement timeout, and decline reasons
 * that tell a card tester nothing.
 */
let tollgate: TestTollgate;
let withOrigins: TestTollgate;

beforeAll(async () => {
  tollgate = await startTestTollgate();
  withOrigins = await startTestTollgate({ env: { CORS_ORIGINS: 'https://console.example.com' } });
});
afterAll(async () => {
  await tollgate?.stop();
  await withOrigins?.stop();
});

describe('security headers', () => {
  it('puts a content security policy for self-served pages, and the other helmet headers, on every answer', async () => {
    for (const url of ['/v1/services', '/no/such/page', '/v1/account']) {
      const answer = await tollgate.app.inject({ url });
      const csp = answer.headers['content-security-policy'];
      expect(csp, url).toContain("default-src 'self'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).toContain("object-src 'none'");
      expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|https?:/);
      expect(answer.headers['x-content-type-options']).toBe('nosniff');
      expect(answer.headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(answer.headers['strict-transport-security']).toContain('max-age=');
      expect(answer.headers['referrer-policy']).toBe('no-referrer');
    }
  });
});

describe('CORS', () => {
  it('allows no cross-origin call by default', async () => {
    const simple = await tollgate.app.inject({ url: '/v1/services', headers: { origin: 'https://evil.example.com' } });
    expect(simple.statusCode).toBe(200);
    expect(simple.headers['access-control-allow-origin']).toBeUndefined();
    const preflight = await tollgate.app.inject({
      method: 'OPTIONS',
      url: '/v1/sessions',
      headers: { origin: 'https://evil.example.com', 'access-control-request-method': 'POST' },
    });
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('allows the origins CORS_ORIGINS lists, without credentials, and no other', async () => {
    const preflight = await withOrigins.app.inject({
      method: 'OPTIONS',
      url: '/v1/sessions',
      headers: { origin: 'https://console.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('https://console.example.com');
    expect(preflight.headers['access-control-allow-headers']).toContain('authorization');
    expect(preflight.headers['access-control-allow-credentials']).toBeUndefined();
    const other = await withOrigins.app.inject({ url: '/v1/services', headers: { origin: 'https://evil.example.com' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('refuses an origin that is more than scheme, host and port', async () => {
    const { loadConfig } = await import('../../src/config.js');
    expect(() => loadConfig({ CORS_ORIGINS: 'https://console.example.com/path' })).toThrow(/CORS origin/);
    expect(() => loadConfig({ HTTP_CONNECTION_TIMEOUT_MS: '1000' })).toThrow(/must exceed/);
  });
});

describe('the database', () => {
  it('cancels a statement past DATABASE_STATEMENT_TIMEOUT_MS, and the connection serves the next one', async () => {
    const sql = connect(tollgate.db.url, { max: 1, statementTimeoutMs: 200 });
    try {
      await expect(sql`select pg_sleep(2)`).rejects.toMatchObject({ code: '57014' });
      expect(await sql`select 1 as one`).toEqual([{ one: 1 }]);
    } finally {
      await sql.end();
    }
    // tollgate's own pool runs with a timeout set.
    const [setting] = await tollgate.sql<{ value: string }[]>`select current_setting('statement_timeout') as value`;
    expect(setting!.value).toBe('30s');
  });

  it('answers /health from one probe however many ask at once', async () => {
    const answers = await Promise.all(Array.from({ length: 50 }, () => tollgate.app.inject({ url: '/health' })));
    expect(answers.every((a) => a.statusCode === 200)).toBe(true);
  });
});

describe('card testing', () => {
  it('tells the customer a lost or stolen card is a generic decline, and the operator the truth', async () => {
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '1.00' });
    for (const [number, reason] of [
      ['4000000000009987', 'lost_card'],
      ['4000000000009979', 'stolen_card'],
    ] as const) {
      const customer = await signUp(tollgate.app, { card: { number, expMonth: 12, expYear: 2031, cvc: '123' } });
      const opened = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '1.00' } });
      expect(opened.statusCode).toBe(402);
      expect(opened.json()).toMatchObject({ code: 'CARD_DECLINED', reason: 'generic_decline' });
      expect(opened.body).not.toContain(reason);
      const { sessions } = (await tollgate.app.inject({ url: '/v1/sessions', headers: customer.auth })).json();
      expect(sessions[0]).toMatchObject({ state: 'declined', declineReason: 'generic_decline' });
      const ops = await tollgate.app.inject({ url: `/v1/ops/sessions/${sessions[0].id}`, headers: { authorization: `Bearer ${tollgate.adminToken}` } });
      expect(ops.json().session).toMatchObject({ state: 'declined', declineReason: reason });
    }
    // Reasons a customer can act on are still told.
    const poor = await signUp(tollgate.app, { card: { number: '4000000000009995', expMonth: 12, expYear: 2031, cvc: '123' } });
    const refused = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: poor.auth, payload: { serviceId, maxCharge: '1.00' } });
    expect(refused.json()).toMatchObject({ code: 'CARD_DECLINED', reason: 'insufficient_funds' });
  });
});
