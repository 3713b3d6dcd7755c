import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/db/sql.js';
import { loadUnsettled } from '../../src/sessions/session-rows.js';
import { createService, signUp } from '../helpers/customers.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';

/** What a restore reads: every unsettled session once, in batches, whatever the batch size. */
let tollgate: TestTollgate;
const open: string[] = [];
const ended: string[] = [];

beforeAll(async () => {
  tollgate = await startTestTollgate();
  const customer = await signUp(tollgate.app, { outstandingLimit: '500.00' });
  const { serviceId } = await createService(tollgate.app, tollgate.adminToken, { pricePerMinute: '0.60', maxUsers: 20, serverMaxUsers: 20 });
  for (let i = 0; i < 9; i++) {
    const response = await tollgate.app.inject({ method: 'POST', url: '/v1/sessions', headers: customer.auth, payload: { serviceId, maxCharge: '1.00' } });
    expect(response.statusCode).toBe(201);
    open.push(response.json().id as string);
  }
  for (const id of open.splice(0, 3)) {
    const response = await tollgate.app.inject({ method: 'POST', url: `/v1/sessions/${id}/logoff`, headers: customer.auth });
    expect(response.statusCode).toBe(200);
    ended.push(id);
  }
});
afterAll(async () => {
  await tollgate.stop();
});

async function read(options: Parameters<typeof loadUnsettled>[1]) {
  const batches: string[][] = [];
  for await (const rows of loadUnsettled(tollgate.sql, options)) batches.push(rows.map((r) => r.id));
  return batches;
}

describe('loadUnsettled', () => {
  it.each([1, 2, 4, 6, 2000])('reads each unsettled session once and no settled one, %i rows a batch', async (batch) => {
    const batches = await read({ batch });
    const ids = batches.flat();
    expect(ids.toSorted()).toEqual(open.toSorted());
    expect(batches.every((b) => b.length > 0 && b.length <= batch)).toBe(true);
    expect(batches).toHaveLength(Math.ceil(open.length / batch));
  });

  it('reads only the sessions asked for, across batches', async () => {
    const asked = [open[0]!, open[3]!, open[5]!, ended[0]!];
    const ids = (await read({ ids: asked, batch: 2 })).flat();
    expect(ids.toSorted()).toEqual([open[0]!, open[3]!, open[5]!].toSorted());
  });

  it('takes as long as the host needs between batches: no statement stays open across them', async () => {
    // A restore of a million rows takes longer than statement_timeout; here the timeout is 100 ms
    // and the host spends 250 ms on each batch (a cursor kept open across batches is cancelled).
    const sql = connect(tollgate.db.url, { max: 1, statementTimeoutMs: 100 });
    try {
      const ids: string[] = [];
      for await (const rows of loadUnsettled(sql, { batch: 2 })) {
        ids.push(...rows.map((r) => r.id));
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      expect(ids.toSorted()).toEqual(open.toSorted());
    } finally {
      await sql.end();
    }
  });
});
