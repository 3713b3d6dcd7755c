import { Writable } from 'node:stream';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { startTollgate, type Tollgate } from '../../src/runtime.js';
import { createService, signUpBody } from '../helpers/customers.js';
import { bootstrapAdmin } from '../helpers/operators.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

/** Card numbers as customers type them, and what each must come to. */
const CARDS = [
  { number: '4242424242424242', cvc: '731', opens: 'approved' },
  { number: '5555555555554444', cvc: '864', opens: 'approved' },
  { number: '4000000000000002', cvc: '592', opens: 'declined' },
  // Spaces between the groups, as printed on the card: accepted, and stored as little as the others.
  { number: '4242 4242 4242 4242', cvc: '318', opens: 'approved' },
  { number: '5555 5555 5555 4444', cvc: '427', opens: 'approved' },
] as const;
/** Refused at sign-up: a bad check digit (by the card network), and too long a number (by the schema). */
const REFUSED = [
  { number: '4242424242424241', code: 'CARD_INVALID' },
  { number: '4242 4242 4242 4241', code: 'CARD_INVALID' },
  { number: '4242 4242 4242 4242 4242 42', code: 'VALIDATION_FAILED' },
] as const;

/** The number's digits in order, whatever stands between them (spaces, dashes, escapes): the number in any dress. */
const anyForm = (number: string) => new RegExp(number.replace(/\D/g, '').split('').join('\\D{0,2}'));

const clock = new ManualClock(Date.UTC(2026, 4, 4, 9, 0, 0));
let db: TestDatabase;
let dataDir: string;
let tollgate: Tollgate;
let adminToken: string;
let logText = '';

beforeAll(async () => {
  db = await createTestDatabase();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'tollgate-card-data-'));
  // Everything tollgate logs, at its most talkative level, as it would reach stdout.
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logText += chunk.toString();
      done();
    },
  });
  const config = loadConfig({ DATABASE_URL: db.url, TOLLGATE_DATA_DIR: dataDir, CARD_NETWORK_PORT: '0' });
  tollgate = await startTollgate(config, { clock, log: createLogger('trace', sink) });
  adminToken = await bootstrapAdmin(tollgate.app, tollgate.bootstrapToken);
});
afterAll(async () => {
  await tollgate.close();
  await db.drop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('card data never rests', () => {
  it('leaves no card number (with or without spaces) or CVC in the database, the logs or the answers', async () => {
    const { serviceId } = await createService(tollgate.app, adminToken, { pricePerMinute: '60.00' });
    let answers = '';
    for (const card of CARDS) {
      const body = signUpBody({ card: { number: card.number, expMonth: 12, expYear: 2031, cvc: card.cvc } });
      const signed = await tollgate.app.inject({ method: 'POST', url: '/v1/accounts', payload: body });
      expect(signed.statusCode, signed.body).toBe(201);
      expect(signed.json().account.card).toMatchObject({ last4: card.number.slice(-4), expMonth: 12, expYear: 2031 });
      answers += signed.body;
      const auth = { authorization: `Bearer ${signed.json().token}` };
      const opened = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: auth, payload: { serviceId, maxCharge: '5.00' } });
      answers += opened.body;
      if (card.opens === 'declined') {
        expect(opened.statusCode, opened.body).toBe(402);
        expect(opened.json()).toMatchObject({ code: 'CARD_DECLINED', reason: 'generic_decline' });
        continue;
      }
      // The whole path with the card's token: authorization, then a capture (2 s at 1.00 a second).
      expect(opened.statusCode, opened.body).toBe(201);
      expect(opened.json().state).toBe('active');
      clock.advance(2_000);
      const settled = await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${opened.json().id}/logoff`, headers: auth });
      answers += settled.body;
      expect(settled.json()).toMatchObject({ state: 'settled', charge: '2.00', chargeSlip: { amount: '2.00' } });
    }
    // Refused sign-ups travel the same paths with the number in them.
    for (const { number, code } of REFUSED) {
      const refused = await tollgate.app.inject({
        method: 'POST',
        url: '/v1/accounts',
        payload: signUpBody({ card: { number, expMonth: 12, expYear: 2031, cvc: '246' } }),
      });
      expect(refused.statusCode, refused.body).toBe(400);
      expect(refused.json().code).toBe(code);
      answers += refused.body;
    }

    // Every row of every table tollgate and the sandbox keep, as text.
    const tables = await tollgate.sql<{ schema: string; name: string }[]>`
      select table_schema as schema, table_name as name from information_schema.tables
      where table_schema in ('public', 'card_network', 'tollgate_meta') and table_type = 'BASE TABLE'`;
    expect(tables.length).toBeGreaterThan(5);
    let dump = '';
    for (const table of tables) {
      const rows = await tollgate.sql.unsafe(`select t::text as row from "${table.schema}"."${table.name}" t`);
      dump += rows.map((r) => r.row).join('\n');
    }
    const columns = await tollgate.sql<{ name: string }[]>`
      select column_name as name from information_schema.columns where table_schema in ('public', 'card_network')`;
    expect(columns.map((c) => c.name).filter((n) => /cvc|cvv|card_number|pan\b/i.test(n))).toEqual([]);
    // What was searched holds what the customers did: their accounts, sessions and requests.
    for (const card of CARDS) expect(dump).toContain(card.number.slice(-4));
    expect(logText).toContain('"url":"/v1/accounts"');
    expect(logText).toContain('/logoff');

    for (const number of [...CARDS.map((c) => c.number), ...REFUSED.map((r) => r.number)]) {
      expect(anyForm(number).test(dump), `card number ${number} in the database`).toBe(false);
      expect(anyForm(number).test(logText), `card number ${number} in the logs`).toBe(false);
      expect(anyForm(number).test(answers), `card number ${number} in an answer`).toBe(false);
    }
    for (const { cvc } of CARDS) {
      // A CVC is three digits, found by chance inside ids; it must not appear as a value of its own.
      expect(new RegExp(`cvc"?\\s*[:=]\\s*"?${cvc}`, 'i').test(dump + logText), `CVC ${cvc}`).toBe(false);
    }
    expect(/"cvc"/i.test(dump)).toBe(false);
  });
});
