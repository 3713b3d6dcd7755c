import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/db/sql.js';
import { type ServerProcess, serverProcessIn } from '../crash/server-process.js';
import { sandbox } from '../helpers/card-network.js';
import { expectChargeWithin } from '../helpers/charges.js';
import { signUpBody } from '../helpers/customers.js';
import { expectLedgerBalanced } from '../helpers/ledger.js';
import { startRestartablePostgres, type RestartablePostgres } from '../helpers/restartable-postgres.js';

/**
 * PostgreSQL restarts (an upgrade, a failover, a crash of its own) under a tollgate that keeps
 * running: the real server as a child process on DATABASE_URL, and a PostgreSQL of the test's
 * own that it stops and starts again on the same port.
 */
const ADMIN_TOKEN = 'postgres-restart-operator-token-0123456789';

let dataDir: string;
let pg: RestartablePostgres;
let server: ServerProcess;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'tollgate-pg-restart-'));
  pg = await startRestartablePostgres(path.join(dataDir, 'pgdata'), ['tollgate']);
  await mkdir(path.join(dataDir, 'tollgate'));
  server = await serverProcessIn(path.join(dataDir, 'tollgate'), {
    bootstrapToken: ADMIN_TOKEN,
    databaseUrl: pg.url('tollgate'),
    env: { LOG_LEVEL: 'warn', TOLLGATE_SEED_DEMO: 'false', RECONCILE_INTERVAL_MS: '0' },
  });
  await server.start();
});
afterAll(async () => {
  await server?.destroy();
  await pg?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

const api = (method: string, url: string, options: { token?: string; body?: unknown } = {}) => server.api(method, url, options);
async function must(method: string, url: string, options: { token?: string; body?: unknown } = {}, status = 200) {
  const answer = await api(method, url, options);
  if (answer.kind !== 'answer' || answer.status !== status) throw new Error(`${method} ${url}: ${JSON.stringify(answer)}`);
  return answer.body;
}

describe('PostgreSQL restarting under a running tollgate', () => {
  it('says the database is down while it is, answers again once it is back, and settles a session opened before at the right charge', async () => {
    const created = await must('POST', '/v1/servers', { token: server.operatorKey, body: { name: 'pg-restart', maxUsers: 10 } }, 201);
    // 60.00 a minute: 1.00 a second.
    const service = await must(
      'POST',
      '/v1/services',
      { token: server.operatorKey, body: { name: 'pg-restart-0', serverId: created.id, pricePerMinute: '60.00', maxUsers: 10 } },
      201,
    );
    const { token } = await must('POST', '/v1/accounts', { body: signUpBody({ outstandingLimit: '1000.00' }) }, 201);
    const openSentAt = Date.now();
    const before = await must('POST', '/v1/sessions', { token, body: { serviceId: service.id, maxCharge: '100.00' } }, 201);
    const openAnsweredAt = Date.now();
    expect(before.state).toBe('active');
    // A whole second of use before the outage: whatever else happens, there is a charge to capture.
    await sleep(1_100);

    await pg.stop();
    const down = await api('GET', '/health');
    expect(down).toMatchObject({ kind: 'answer', status: 503, body: { code: 'DATABASE_UNAVAILABLE' } });
    // An open cannot be written meanwhile: it is refused, and leaves nothing behind (checked below).
    const openWhileDown = await api('POST', '/v1/sessions', { token, body: { serviceId: service.id, maxCharge: '100.00' } });
    expect(openWhileDown.kind === 'answer' && openWhileDown.status >= 500, JSON.stringify(openWhileDown)).toBe(true);

    await pg.start();
    // Back: tollgate reconnects by itself (no restart of its own).
    let health = await api('GET', '/health');
    for (let i = 0; i < 300 && !(health.kind === 'answer' && health.status === 200); i++) {
      await sleep(100);
      health = await api('GET', '/health');
    }
    expect(health).toMatchObject({ kind: 'answer', status: 200 });
    expect(server.running).toBe(true);

    const after = await must('POST', '/v1/sessions', { token, body: { serviceId: service.id, maxCharge: '100.00' } }, 201);
    expect(after.state).toBe('active');
    // The open refused during the outage took no seat and left no session.
    const { sessions } = await must('GET', '/v1/sessions', { token });
    expect(sessions.map((s: { id: string }) => s.id).sort()).toEqual([before.id, after.id].sort());
    const { servers } = await must('GET', '/v1/ops/servers', { token: server.operatorKey });
    expect(servers.find((s: { id: string }) => s.id === created.id)).toMatchObject({ activeUsers: 2, queued: 0 });
    const logoffSentAt = Date.now();
    const settled = await must('POST', `/v1/sessions/${before.id}/logoff`, { token });
    const logoffAnsweredAt = Date.now();
    // Charged for all the time it ran, the outage included; the card network captured exactly that.
    expect(settled).toMatchObject({ state: 'settled', endReason: 'logoff', authorizationNumber: before.authorizationNumber });
    expectChargeWithin(settled.charge, { pricePerMinute: '60.00' }, { openSentAt, openAnsweredAt, logoffSentAt, logoffAnsweredAt });
    expect(settled.chargeSlip?.amount).toBe(settled.charge);
    const [hold] = await sandbox(server.cardNetworkUrl).holds(`?reference=${before.id}`);
    expect(hold).toMatchObject({ state: 'captured', capturedAmount: settled.charge });
    expect((await must('POST', `/v1/sessions/${after.id}/logoff`, { token })).state).toBe('settled');
    expect((await must('GET', '/v1/account', { token })).account.reserved).toBe('0.00');

    const sql = connect(pg.url('tollgate'), { max: 1 });
    try {
      await expectLedgerBalanced(sql, { settled: 2 });
    } finally {
      await sql.end();
    }
  }, 120_000);
});
