import { Writable } from 'node:stream';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { startTollgate, type Tollgate } from '../../src/runtime.js';
import { createService, signUpBody } from '../helpers/customers.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const CARDS = [
  { number: '4242424242424242', cvc: '731' },
  { number: '5555555555554444', cvc: '864' },
  { number: '4000000000000002', cvc: '592' },
];
const BAD_NUMBER = '4242424242424241';

let db: TestDatabase;
let dataDir: string;
let tollgate: Tollgate;
let logText = '';

beforeAll(async () => {
  db = await createTestDatabase();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'tollgate-card-data-'));
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logText += chunk.toString();
      done();
    },
  });
  const config = loadConfig({ DATABASE_URL: db.url, TOLLGATE_DATA_DIR: dataDir, CARD_NETWORK_PORT: '0' });
  tollgate = await startTollgate(config, { clock: systemClock, log: createLogger('trace', sink) });
});
afterAll(async () => {
  await tollgate.close();
  await db.drop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('card data never rests', () => {
  it('leaves no card number or CVC in the database or the logs after sign-ups, sessions and refusals', async () => {
    const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '60.00' });
    for (const card of CARDS) {
      const body = signUpBody({ card: { number: card.number, expMonth: 12, expYear: 2031, cvc: card.cvc } });
      const signed = await tollgate.app.inject({ method: 'POST', url: '/v1/accounts', payload: body });
      expect(signed.statusCode).toBe(201);
      const auth = { authorization: `Bearer ${signed.json().token}` };
      const opened = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: auth, payload: { serviceId, maxCharge: '1.00' } });
      if (opened.statusCode === 201) {
        await sleep(1_100);
        await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${opened.json().id}/logoff`, headers: auth });
      }
    }
    // Refused sign-ups travel the same paths with the number in them.
    const refused = await tollgate.app.inject({
      method: 'POST',
      url: '/v1/accounts',
      payload: signUpBody({ card: { number: BAD_NUMBER, expMonth: 12, expYear: 2031, cvc: '246' } }),
    });
    expect(refused.statusCode).toBe(400);
    expect(refused.body).not.toContain(BAD_NUMBER);

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
    expect(dump.length).toBeGreaterThan(1000);
    expect(logText.length).toBeGreaterThan(1000);

    for (const number of [...CARDS.map((c) => c.number), BAD_NUMBER]) {
      expect(dump.includes(number), `card number ${number} in the database`).toBe(false);
      expect(logText.includes(number), `card number ${number} in the logs`).toBe(false);
    }
    for (const { cvc } of CARDS) {
      // A CVC is three digits, found by chance inside ids; it must not appear as a value of its own.
      expect(new RegExp(`cvc"?\\s*[:=]\\s*"?${cvc}`, 'i').test(dump + logText), `CVC ${cvc}`).toBe(false);
    }
    expect(/"cvc"/i.test(dump)).toBe(false);
  });
});
