import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/db/sql.js';
import { startTestTollgate, type TestTollgate } from '../helpers/tollgate.js';
import { call, customer, listen, serviceWithUpstream } from './edge-client.js';
import { startUpstream } from './upstream.js';

/**
 * HTTP_HANDLER_TIMEOUT_MS answers a hanging request 503 HANDLER_TIMEOUT on every route but the
 * edge's, whose requests last as long as their session allows (the cut ends them, not Fastify).
 * Here the timeout (700 ms) is shorter than the upstream's `/slow` answer (one second).
 */
let tollgate: TestTollgate;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
let base: string;

beforeAll(async () => {
  upstream = await startUpstream();
  tollgate = await startTestTollgate({ env: { ADMISSION_MAX_WAIT_SECONDS: '0', OPEN_WAIT_MS: '600', HTTP_HANDLER_TIMEOUT_MS: '700' } });
  base = await listen(tollgate);
});
afterAll(async () => {
  await tollgate?.stop();
  await upstream?.close();
});

/** The session's view once it is active (an open may answer 202 while the card company is slow). */
async function activeSession(token: string, serviceId: string) {
  const opened = await call(base, 'POST', '/v1/sessions', token, { serviceId, maxCharge: '5.00' });
  expect([201, 202]).toContain(opened.status);
  for (let i = 0; i < 100; i++) {
    const view = await call(base, 'GET', `/v1/sessions/${opened.body.id}`, token);
    if (view.body.access) return view.body as { id: string; access: { url: string; token: string } };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the session never became active');
}

describe('handler timeout', () => {
  it('answers 503 HANDLER_TIMEOUT to a request that hangs (the session log, locked by another transaction)', async () => {
    const other = connect(tollgate.db.url, { max: 1 });
    const locker = await other.reserve();
    try {
      await locker`begin`;
      await locker`lock table session_log in access exclusive mode`;
      const answer = await call(base, 'GET', '/v1/ops/session-log', tollgate.adminToken);
      expect(answer.status).toBe(503);
      expect(answer.body.code).toBe('HANDLER_TIMEOUT');
    } finally {
      await locker`rollback`;
      locker.release();
      await other.end();
    }
  });

  it('does not cut a request through the edge that its upstream answers later than that', async () => {
    const service = await serviceWithUpstream(base, tollgate.adminToken, `${upstream.url}/api`);
    upstream.setSecret(service.signingSecret);
    const ada = await customer(base);
    const session = await activeSession(ada.token, service.id);
    const answer = await fetch(`${session.access.url}/slow`, { headers: { authorization: `Bearer ${session.access.token}` } });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ slow: true });
  });
});
