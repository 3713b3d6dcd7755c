import { request as httpRequest } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseAmount } from '../../src/billing/money.js';
import { sandbox } from '../helpers/card-network.js';
import { chargeFor, expectChargeWithin } from '../helpers/charges.js';
import { signUpBody } from '../helpers/customers.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { type Answer, isPostgres, type ServerProcess, serverProcessIn } from './server-process.js';

/**
 * The real server as a child process, stopped as a deploy (SIGTERM) or a Ctrl-C (SIGINT) stops
 * it, then started again on the same data. What its users see: the request in flight is
 * answered, a new one is turned away, the process exits 0 and leaves no PostgreSQL behind, and
 * after the restart the sessions run on, still charging, in the seats they had.
 *
 * With no DATABASE_URL the server runs on its embedded PostgreSQL; with DATABASE_URL, on a fresh
 * database of that server.
 */
const ADMIN_TOKEN = 'shutdown-test-operator-token-0123456789';
/** The card network answers authorizations this late, so that an open is in flight at the signal. */
const SLOW_AUTHORIZE_MS = 2_000;


interface SessionView {
  id: string;
  state: string;
  authorizationNumber: string | null;
  accrued: string;
  charge: string | null;
  chargeSlip: { amount: string } | null;
}

const external = Boolean(process.env.DATABASE_URL);
let dataDir: string;
let logFile: string;
let db: TestDatabase | undefined;
let server: ServerProcess;
let serviceId: string;
let customerToken: string;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'tollgate-shutdown-'));
  logFile = path.join(dataDir, 'server.log');
  if (external) db = await createTestDatabase();
  server = await serverProcessIn(dataDir, {
    bootstrapToken: ADMIN_TOKEN,
    databaseUrl: db?.url,
    // info: the log says when the shutdown begins.
    env: { LOG_LEVEL: 'info', TOLLGATE_SEED_DEMO: 'false', RECONCILE_INTERVAL_MS: '0' },
  });
  await server.start();
  serviceId = (await addService('shutdown', { serverMaxUsers: 10, maxUsers: 10 })).serviceId;
  customerToken = (await must('POST', '/v1/accounts', { body: signUpBody({ outstandingLimit: '100000.00' }) }, 201)).token;
});

// Each test ends with the server running; after a failed one, the next starts it again.
beforeEach(async () => {
  if (!server.running) await server.start();
});

afterAll(async () => {
  await server?.destroy();
  await db?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

const api = (method: string, url: string, options: { token?: string; body?: unknown } = {}) => server.api(method, url, options);

async function must(method: string, url: string, options: { token?: string; body?: unknown } = {}, status = 200) {
  const answer = await api(method, url, options);
  if (answer.kind !== 'answer' || answer.status !== status) throw new Error(`${method} ${url}: ${JSON.stringify(answer)}`);
  return answer.body;
}

/**
 * A request on a connection of its own, as a client arriving after the signal makes it: fetch
 * might pick a pooled connection the server has just closed, and report that instead.
 */
function onNewConnection(method: string, url: string, options: { token: string; body: unknown }): Promise<Answer> {
  return new Promise((resolve) => {
    const body = JSON.stringify(options.body);
    const sent = httpRequest(
      `${server.url}${url}`,
      {
        method,
        agent: false,
        headers: { authorization: `Bearer ${options.token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: 20_000,
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => resolve({ kind: 'answer', status: response.statusCode ?? 0, body: text ? JSON.parse(text) : null }));
      },
    );
    sent.on('timeout', () => sent.destroy(new Error('timeout')));
    sent.on('error', (error: NodeJS.ErrnoException) =>
      resolve(error.code === 'ECONNREFUSED' ? { kind: 'refused' } : { kind: 'lost', error: String(error.code ?? error) }),
    );
    sent.end(body);
  });
}

/** A server and one service on it, at 60.00 a minute: a cent every 10 ms, so every session has a charge to capture. */
async function addService(name: string, caps: { serverMaxUsers: number; maxUsers: number }) {
  const created = await must('POST', '/v1/servers', { token: server.operatorKey, body: { name, maxUsers: caps.serverMaxUsers } }, 201);
  const service = await must(
    'POST',
    '/v1/services',
    { token: server.operatorKey, body: { name: `${name}-0`, serverId: created.id, pricePerMinute: '60.00', maxUsers: caps.maxUsers } },
    201,
  );
  return { serverId: created.id as string, serviceId: service.id as string };
}

/** When the client sent each open that was answered 201, and when the answer came. */
const opens = new Map<string, { openSentAt: number; openAnsweredAt: number }>();
const open = async (): Promise<Answer> => {
  const openSentAt = Date.now();
  const answer = await api('POST', '/v1/sessions', { token: customerToken, body: { serviceId, maxMinutes: 60 } });
  if (answer.kind === 'answer' && answer.status === 201) opens.set(answer.body.id, { openSentAt, openAnsweredAt: Date.now() });
  return answer;
};
const sessions = async (): Promise<SessionView[]> => (await must('GET', '/v1/sessions', { token: customerToken })).sessions;
const byId = (list: SessionView[]) => new Map(list.map((s) => [s.id, s]));
const micros = (amount: string | null | undefined) => (amount ? parseAmount(amount)! : 0n);

/** Seats taken and queued, per server and per service, as operators see them. */
async function seats() {
  const { servers } = await must('GET', '/v1/ops/servers', { token: server.operatorKey });
  return (servers as { id: string; activeUsers: number; queued: number; services: { id: string; activeUsers: number; queued: number }[] }[]).map(
    (s) => ({
      id: s.id,
      activeUsers: s.activeUsers,
      queued: s.queued,
      services: s.services.map((v) => ({ id: v.id, activeUsers: v.activeUsers, queued: v.queued })),
    }),
  );
}

async function shutdownsLogged(): Promise<number> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  return text.split('\n').filter((line) => line.includes('"msg":"shutting down"')).length;
}

/** Opens `count` sessions of an hour (60.00 each, on a limit of 100,000.00). */
async function openSessions(count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const answer = await open();
    if (answer.kind !== 'answer' || answer.status !== 201) throw new Error(`open: ${JSON.stringify(answer)}`);
  }
}

/**
 * After the restart: the sessions still run on the authorization they had, and logoff settles
 * them charged for all the time since they started, the restart included (60.00 a minute).
 */
async function expectCarriedOn(before: Map<string, SessionView>) {
  const after = byId(await sessions());
  for (const [id, earlier] of before) {
    const now = after.get(id);
    expect({ id, state: now?.state, authorizationNumber: now?.authorizationNumber }).toEqual({
      id,
      state: 'active',
      authorizationNumber: earlier.authorizationNumber,
    });
  }
  for (const id of before.keys()) {
    const logoffSentAt = Date.now();
    const settled = await must('POST', `/v1/sessions/${id}/logoff`, { token: customerToken });
    const logoffAnsweredAt = Date.now();
    expect(settled.state).toBe('settled');
    const opened = opens.get(id);
    expect(opened, `the client's open of ${id}`).toBeDefined();
    expectChargeWithin(settled.charge, { pricePerMinute: '60.00' }, { ...opened!, logoffSentAt, logoffAnsweredAt }, `charge of ${id}`);
    expect(settled.chargeSlip?.amount ?? '0.00').toBe(settled.charge);
  }
}

describe('graceful shutdown', () => {
  it(
    'on SIGTERM answers the request in flight, turns new ones away, exits 0 without leaving PostgreSQL running, and a restart carries on',
    async () => {
      await openSessions(2);
      const network = sandbox(server.cardNetworkUrl);
      await network.setFaults([{ phase: 'authorize', fault: 'slow', probability: 1, delayMs: SLOW_AUTHORIZE_MS }]);
      const authorizations = (await network.calls()).authorize ?? 0;
      const inFlight = open();
      // In flight: admitted (its seat taken) and its authorization waiting at the card network.
      while (((await network.calls()).authorize ?? 0) === authorizations) await sleep(20);
      const seatsBefore = await seats();
      expect(seatsBefore[0]!.services[0]!.activeUsers).toBe(3);
      const before = byId((await sessions()).filter((s) => s.state === 'active'));
      expect(before.size).toBe(2);
      const postmaster = await server.postmasterPid();
      const shutdowns = await shutdownsLogged();

      const exit = server.terminate('SIGTERM');
      while ((await shutdownsLogged()) === shutdowns) await sleep(20);
      const late = await onNewConnection('POST', '/v1/sessions', { token: customerToken, body: { serviceId, maxMinutes: 60 } });
      const answered = await inFlight;

      expect(await exit).toEqual({ code: 0, signal: null });
      expect(answered).toMatchObject({ kind: 'answer', status: 201, body: { state: 'active' } });
      // Turned away: the listener is closed (refused; or reset, when the connection was still in
      // the kernel's accept queue as the listener closed), or the open is answered 503 while
      // closing. That nothing was made of it is checked after the restart: the same seats.
      if (late.kind === 'answer') expect(late.status).toBe(503);
      else expect([{ kind: 'refused' }, { kind: 'lost', error: 'ECONNRESET' }]).toContainEqual(late);
      if (!external) {
        expect(postmaster).not.toBeNull();
        expect(await isPostgres(postmaster!)).toBe(false);
        // PostgreSQL removes its postmaster.pid on a clean stop only.
        expect(await server.postmasterPid()).toBeNull();
      }
      expect((await server.logLevels()).errors).toEqual([]);

      await server.start();
      expect(await seats()).toEqual(seatsBefore);
      const opened = (answered as { body: SessionView }).body;
      await expectCarriedOn(before.set(opened.id, opened));
      expect((await seats())[0]!.services[0]!.activeUsers).toBe(0);
    },
    120_000,
  );

  it(
    'on SIGTERM answers a request queued for a seat 503 SHUTTING_DOWN at once instead of holding the shutdown for its wait',
    async () => {
      const full = await addService('shutdown-queue', { serverMaxUsers: 5, maxUsers: 1 });
      const holder = await must('POST', '/v1/sessions', { token: customerToken, body: { serviceId: full.serviceId, maxMinutes: 60 } }, 201);
      const WAIT_SECONDS = 50;
      const waiting = api('POST', '/v1/sessions', { token: customerToken, body: { serviceId: full.serviceId, maxMinutes: 60, waitSeconds: WAIT_SECONDS } });
      const queuedAt = async () => (await seats()).find((s) => s.id === full.serverId)!.services[0]!;
      while ((await queuedAt()).queued === 0) await sleep(20);

      const order: string[] = [];
      const exit = server.terminate('SIGTERM').then((how) => (order.push('exited'), how));
      const answered = await waiting.then((answer) => (order.push('answered'), answer));
      // Turned away as the shutdown began (a wait that ran out would be a 409 at capacity), and
      // answered before the process exited, not held until its wait ended.
      expect(answered).toMatchObject({ kind: 'answer', status: 503, body: { code: 'SHUTTING_DOWN' } });
      expect(await exit).toEqual({ code: 0, signal: null });
      expect(order).toEqual(['answered', 'exited']);

      await server.start();
      expect(await queuedAt()).toEqual({ id: full.serviceId, activeUsers: 1, queued: 0 });
      const settled = await must('POST', `/v1/sessions/${holder.id}/logoff`, { token: customerToken });
      expect(settled.state).toBe('settled');
      expect(await queuedAt()).toEqual({ id: full.serviceId, activeUsers: 0, queued: 0 });
    },
    120_000,
  );

  it(
    'on SIGINT exits 0 without leaving PostgreSQL running, and a restart carries on',
    async () => {
      await openSessions(2);
      const seatsBefore = await seats();
      const before = byId((await sessions()).filter((s) => s.state === 'active'));
      expect(before.size).toBe(2);
      const postmaster = await server.postmasterPid();

      expect(await server.terminate('SIGINT')).toEqual({ code: 0, signal: null });
      if (!external) {
        expect(await isPostgres(postmaster!)).toBe(false);
        expect(await server.postmasterPid()).toBeNull();
      }

      await server.start();
      expect(await seats()).toEqual(seatsBefore);
      await expectCarriedOn(before);
      expect((await server.logLevels()).errors).toEqual([]);
    },
    120_000,
  );
});

/** Until PostgreSQL has removed its postmaster.pid, which it does on a clean stop only. */
async function postgresStopped(): Promise<boolean> {
  for (let i = 0; i < 600; i++) {
    if ((await server.postmasterPid()) === null) return true;
    await sleep(50);
  }
  return false;
}

/**
 * An open whose authorization the card network holds for a long while (it is committed, the
 * answer comes late): once it is in flight, a graceful close has a request to wait for.
 */
async function openHeldAtTheCardNetwork(): Promise<{ inFlight: Promise<Answer>; sentAt: number }> {
  const network = sandbox(server.cardNetworkUrl);
  await network.setFaults([{ phase: 'authorize', fault: 'slow', probability: 1, delayMs: 60_000 }]);
  const sentAt = Date.now();
  const inFlight = open();
  while (((await network.calls()).authorize ?? 0) === 0) await sleep(20);
  // Wrapped: an async function returning the promise itself would wait for its answer.
  return { inFlight, sentAt };
}

/**
 * After a forced exit: the restarted server has the session that was in flight, and it runs on
 * its hold. It started when its authorization was answered, after the restart: its charge is at
 * most what the time since its open was sent allows.
 */
async function expectInFlightSessionCarriesOn(before: Set<string>, openSentAt: number) {
  // Restored authorizing: its authorization is sent again with the same key, and answered.
  let created = (await sessions()).filter((s) => !before.has(s.id));
  for (let i = 0; i < 100 && created.some((s) => s.state === 'authorizing'); i++) {
    await sleep(100);
    created = (await sessions()).filter((s) => !before.has(s.id));
  }
  expect(created.map((s) => s.state)).toEqual(['active']);
  const [hold] = await sandbox(server.cardNetworkUrl).holds(`?reference=${created[0]!.id}`);
  expect(hold).toMatchObject({ state: 'open', authorizationNumber: created[0]!.authorizationNumber });
  const settled = await must('POST', `/v1/sessions/${created[0]!.id}/logoff`, { token: customerToken });
  const logoffAnsweredAt = Date.now();
  expect(settled).toMatchObject({ state: 'settled' });
  expect(micros(settled.charge) <= chargeFor({ pricePerMinute: '60.00' }, logoffAnsweredAt - openSentAt), `charge ${settled.charge}`).toBe(true);
  expect(settled.chargeSlip?.amount ?? '0.00').toBe(settled.charge);
}

describe('a shutdown that does not finish', () => {
  it(
    'exits 1 with a log line once SHUTDOWN_TIMEOUT_MS has passed while a request holds the close, stops PostgreSQL, and a restart carries on',
    async () => {
      // A start of its own, with a short shutdown timeout.
      expect(await server.terminate('SIGTERM')).toEqual({ code: 0, signal: null });
      await server.start(60_000, { SHUTDOWN_TIMEOUT_MS: '1000' });
      await openSessions(1);
      const before = byId(await sessions());
      const { inFlight, sentAt } = await openHeldAtTheCardNetwork();

      await server.signal('SIGTERM');
      expect(await server.exit()).toEqual({ code: 1, signal: null });
      // The process ended before the request it was waiting for could be answered.
      expect(await inFlight).toMatchObject({ kind: 'lost' });
      const log = await server.logOfLatestStart();
      const shutdown = log.findIndex((l) => l.msg === 'shutting down');
      const gaveUp = log.findIndex((l) => l.msg === 'shutdown did not finish in time: exiting');
      expect(shutdown).toBeGreaterThanOrEqual(0);
      expect(gaveUp).toBeGreaterThan(shutdown);
      expect(log[gaveUp]).toMatchObject({ level: 50, timeoutMs: 1000 });
      // It asked the embedded PostgreSQL to stop on its way out.
      if (!external) expect(await postgresStopped()).toBe(true);

      await server.start();
      await expectCarriedOn(new Map([...before].filter(([, s]) => s.state === 'active')));
      await expectInFlightSessionCarriesOn(new Set(before.keys()), sentAt);
    },
    120_000,
  );

  it(
    'exits 1 at once on a second signal while a request holds the close, stops PostgreSQL, and a restart carries on',
    async () => {
      // The default shutdown timeout (25 s): only the second signal can end this close early.
      await openSessions(1);
      const before = byId(await sessions());
      const { inFlight, sentAt } = await openHeldAtTheCardNetwork();
      const shutdowns = await shutdownsLogged();

      await server.signal('SIGTERM');
      while ((await shutdownsLogged()) === shutdowns) await sleep(20);
      await server.signal('SIGINT');
      expect(await server.exit()).toEqual({ code: 1, signal: null });
      expect(await inFlight).toMatchObject({ kind: 'lost' });
      const log = await server.logOfLatestStart();
      const shutdown = log.findIndex((l) => l.msg === 'shutting down');
      const second = log.findIndex((l) => l.msg === 'second signal while shutting down: exiting now');
      expect(shutdown).toBeGreaterThanOrEqual(0);
      expect(second).toBeGreaterThan(shutdown);
      expect(log[second]).toMatchObject({ level: 40, signal: 'SIGINT' });
      // Ended by the second signal, not by the timeout.
      expect(log.filter((l) => l.msg === 'shutdown did not finish in time: exiting')).toEqual([]);
      if (!external) expect(await postgresStopped()).toBe(true);

      await server.start();
      await expectCarriedOn(new Map([...before].filter(([, s]) => s.state === 'active')));
      await expectInFlightSessionCarriesOn(new Set(before.keys()), sentAt);
    },
    120_000,
  );
});
