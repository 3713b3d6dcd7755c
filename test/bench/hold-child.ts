import { randomUUID } from 'node:crypto';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { startTollgate } from '../../src/runtime.js';
import { progress, serveParent } from './child.js';
import { benchCustomer } from './seed.js';
import { instrumentHandlers } from './instrument.js';
import { distribution, pool } from './util.js';

/**
 * Phase 3's process: a tollgate built by startTollgate (real PostgreSQL, the real card-network
 * sandbox over HTTP, the real Supervisor, WriteBatcher and DeadlineScheduler) that does not
 * listen: the parent has it sign customers up, open sessions through Supervisor.open (HTTP
 * bypassed, card network and persistence not), restore seeded ones through Supervisor.restore,
 * and report its memory, its event-loop delay, and when each watched session left `active`.
 */
const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent', TOLLGATE_SEED_DEMO: 'false' });
const startedAt = performance.now();
const tollgate = await startTollgate(config, { clock: systemClock, log: false });
const startSeconds = (performance.now() - startedAt) / 1000;
const { supervisor } = tollgate;

const wallNow = () => performance.timeOrigin + performance.now();

/**
 * The instant each watched session's machine leaves `active`, seen in-process from the
 * supervisor's transitions: what cutoff precision measures is the machine, not the commit that
 * follows (and a cold session's wake from its row counts, as it does in production).
 */
const leftActive = new Map<string, { cutoffAt: number | null; leftAt: number | null; to: string | null }>();

supervisor.observe((sessionId, snapshot) => {
  const entry = leftActive.get(sessionId);
  if (!entry) return;
  entry.cutoffAt = snapshot.context.cutoffAt;
  if (entry.leftAt !== null) return;
  const value = snapshot.value;
  const state = typeof value === 'string' ? value : Object.keys(value as object)[0]!;
  if (state !== 'active' && state !== 'authorizing') {
    entry.leftAt = wallNow();
    entry.to = state;
  }
});

function watch(sessionId: string): boolean {
  const snapshot = supervisor.snapshotOf(sessionId);
  if (!snapshot) return false;
  leftActive.set(sessionId, { cutoffAt: snapshot.context.cutoffAt, leftAt: null, to: null });
  return true;
}

serveParent(
  { startSeconds, restored: supervisor.liveCount },
  {
    ...instrumentHandlers,
    live: () => supervisor.liveCount,
    /** Customers through the real sign-up route (card tokenized at the sandbox). */
    signup: async ({ count }: { count: number }) =>
      pool(count, 8, async (i) => {
        const response = await tollgate.app.inject({
          method: 'POST',
          url: '/v1/accounts',
          payload: benchCustomer(i, randomUUID()),
        });
        if (response.statusCode !== 201) throw new Error(`sign-up: ${response.statusCode} ${response.body}`);
        return (response.json() as { account: { id: string } }).account.id;
      }),
    /** Opens `count` sessions through Supervisor.open, `concurrency` at a time, customers in turn. */
    open: async (payload: {
      count: number;
      concurrency: number;
      serviceId: string;
      accountIds: string[];
      maxCharges: string[];
      watch?: boolean;
      label: string;
    }) => {
      const latencies: number[] = [];
      const failures: Record<string, number> = {};
      const ids: string[] = [];
      let watched = 0;
      const started = performance.now();
      let lastReport = started;
      await pool(payload.count, payload.concurrency, async (i) => {
        const t = performance.now();
        try {
          const maxCharge = payload.maxCharges[i % payload.maxCharges.length]!;
          const { view } = await tollgate.commands.open({
            accountId: payload.accountIds[i % payload.accountIds.length]!,
            serviceId: payload.serviceId,
            maxMs: null,
            maxChargeMicros: BigInt(Math.round(Number(maxCharge) * 100)) * 10_000n,
            waitMs: 0,
          });
          latencies.push(performance.now() - t);
          ids.push(view.id);
          if (payload.watch && watch(view.id)) watched++;
        } catch (error) {
          const code = (error as { code?: string }).code ?? String(error).slice(0, 80);
          failures[code] = (failures[code] ?? 0) + 1;
        }
        const now = performance.now();
        if (now - lastReport > 5000) {
          lastReport = now;
          const done = latencies.length + Object.values(failures).reduce((a, b) => a + b, 0);
          progress(`${payload.label}: ${done} / ${payload.count} opened (${(done / ((now - started) / 1000)).toFixed(0)}/s)`);
        }
      });
      const seconds = (performance.now() - started) / 1000;
      return { ids, seconds, latency: distribution(latencies), failures, watched };
    },
    restore: async () => {
      const started = performance.now();
      const count = await supervisor.restore();
      return { count, seconds: (performance.now() - started) / 1000, live: supervisor.liveCount };
    },
    /** Watched sessions: how many have left `active`, and when each did. */
    cuts: ({ detail }: { detail?: boolean } = {}) => {
      const all = [...leftActive.entries()];
      const left = all.filter(([, e]) => e.leftAt !== null);
      return {
        watched: all.length,
        left: left.length,
        ...(detail
          ? { sessions: all.map(([id, e]) => ({ id, cutoffAt: e.cutoffAt, leftAt: e.leftAt, to: e.to })) }
          : {}),
      };
    },
    close: async () => {
      await tollgate.close();
      return true;
    },
  },
);
