import path from 'node:path';
import type { AutocannonRequest } from 'autocannon';
import type { BenchChild } from './child.js';
import { connect } from '../../src/db/sql.js';
import { summarizeProfile, type ProfileSummary } from './cpu-profile.js';
import { load, type LoadResult } from './load.js';
import { cpuWindow, type CpuShares } from './procstat.js';
import { signUpBenchCustomers } from './seed.js';
import { distribution, round, say } from './util.js';
import type { Distribution } from './util.js';

/**
 * Phase 1: session opens over HTTP (POST /v1/sessions: admission, the account's headroom and
 * the session row committed, the authorization at the card-network sandbox, the transition to
 * `active` committed), then open+logoff cycles (the logoff waits for the capture and `settled`).
 * Customers sign up beforehand; each request goes to the next customer in turn, so no two
 * requests in flight share an account row lock.
 */
export interface OpenRun extends LoadResult {
  cpu: CpuShares;
  /** Server-side durations seen by tollgate and by the sandbox (diagnostics channels). */
  tollgateServedMs: Distribution | null;
  cardCallFromTollgateMs: Distribution | null;
  sandboxServedMs: Distribution | null;
  /** tollgate's event-loop delay and GC pauses over the run. */
  tollgateLoop: LoopWindow | null;
  /** pg_stat_database counters of the run's database over the run (tollgate and the sandbox share it). */
  databaseDelta: Record<string, number> | null;
}

export interface LoopWindow {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  windowMs: number;
  gc: { count: number; totalMs: number; maxMs: number; byKind: Record<string, { count: number; totalMs: number }> };
}

export interface CycleRun extends OpenRun {
  cycles: number;
  cyclesPerSecond: number;
  cycleP50Ms: number;
  cycleP99Ms: number;
  logoffServedMs: Distribution | null;
}

export interface OpensPhase {
  accounts: number;
  signUpSeconds: number;
  opens: OpenRun[];
  cycles: CycleRun[];
  liveSessionsAfter: number;
  profile: (ProfileSummary & { concurrency: number; seconds: number; file: string }) | null;
}

interface Timings {
  served: Record<string, Distribution>;
  sent: Record<string, Distribution>;
}

export async function measureOpens(ctx: {
  server: BenchChild<{ url: string }>;
  sandbox: BenchChild<{ url: string }>;
  serviceId: string;
  concurrencies: number[];
  seconds: number;
  maxRequests: number;
  profileSeconds: number;
  profileDir: string;
  cpuGroups: { name: string; pids: () => number[] }[];
  accounts: number;
  databaseUrl: string;
  /** Open+logoff cycles after the opens (default true). */
  cycles?: boolean;
}): Promise<OpensPhase> {
  const url = ctx.server.ready.url;
  const stats = connect(ctx.databaseUrl, { max: 1 });
  const databaseCounters = async () => {
    const [row] = await stats<Record<string, string>[]>`
      select xact_commit::text, xact_rollback::text, tup_inserted::text, tup_updated::text, tup_deleted::text,
        tup_fetched::text, tup_returned::text
      from pg_stat_database where datname = current_database()`;
    return Object.fromEntries(Object.entries(row ?? {}).map(([k, v]) => [k, Number(v)]));
  };

  say(`signing up ${ctx.accounts} customers over HTTP (card tokenized at the sandbox)`);
  const signUpStarted = performance.now();
  const tokens = await signUpBenchCustomers(url, ctx.accounts);
  const signUpSeconds = (performance.now() - signUpStarted) / 1000;
  say(`signed up ${tokens.length} customers in ${signUpSeconds.toFixed(1)} s`);

  let nextAccount = 0;
  const openBody = JSON.stringify({ serviceId: ctx.serviceId, maxCharge: '5.00' });
  const openRequest: AutocannonRequest = {
    method: 'POST',
    path: '/v1/sessions',
    headers: { 'content-type': 'application/json' },
    body: openBody,
    setupRequest: (request) => ({
      ...request,
      headers: { ...request.headers, authorization: tokens[nextAccount++ % tokens.length]! },
    }),
  };

  const measured = async <T extends LoadResult>(run: () => Promise<T>) => {
    await Promise.all([ctx.server.request('timings-reset'), ctx.sandbox.request('timings-reset'), ctx.server.request('eld-start')]);
    const countersBefore = await databaseCounters();
    const window = cpuWindow(ctx.cpuGroups);
    const result = await run();
    const cpu = window.stop();
    // Backends flush their statistics about once a second.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const countersAfter = await databaseCounters();
    const databaseDelta = Object.fromEntries(Object.entries(countersAfter).map(([k, v]) => [k, v - (countersBefore[k] ?? 0)]));
    const [tollgate, sandbox, loop] = await Promise.all([
      ctx.server.request<Timings>('timings'),
      ctx.sandbox.request<Timings>('timings'),
      ctx.server.request<LoopWindow | null>('eld-stop'),
    ]);
    return { result, cpu, tollgate, sandbox, loop, databaseDelta };
  };

  say('warm-up: 3 s of opens at concurrency 16');
  await load({ label: 'warm-up', url, concurrency: 16, seconds: 3, maxRequests: 20_000, requests: [openRequest], quiet: true });

  const opens: OpenRun[] = [];
  for (const concurrency of ctx.concurrencies) {
    const { result, cpu, tollgate, sandbox, loop, databaseDelta } = await measured(() =>
      load({ label: `opens c=${concurrency}`, url, concurrency, seconds: ctx.seconds, maxRequests: ctx.maxRequests, requests: [openRequest] }),
    );
    opens.push({
      ...result,
      cpu,
      tollgateServedMs: tollgate.served['POST /v1/sessions'] ?? null,
      cardCallFromTollgateMs: tollgate.sent['POST /v1/holds'] ?? null,
      sandboxServedMs: sandbox.served['POST /v1/holds'] ?? null,
      tollgateLoop: loop,
      databaseDelta,
    });
    say(
      `opens c=${concurrency}: ${result.perSecond}/s, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms` +
        ` (${result.non2xx} non-2xx, ${result.errors} errors); cores: ${describeCpu(cpu)}`,
    );
  }

  // Open, then log off the session just opened: a whole session's life but for the minutes between.
  const cycleLatencies: number[] = [];
  const cycleRequests: AutocannonRequest[] = [
    {
      method: 'POST',
      path: '/v1/sessions',
      headers: { 'content-type': 'application/json' },
      body: openBody,
      setupRequest: (request, context) => {
        context.auth = tokens[nextAccount++ % tokens.length]!;
        context.started = performance.now();
        return { ...request, headers: { ...request.headers, authorization: context.auth as string } };
      },
      onResponse: (status, body, context) => {
        context.sessionId = status === 201 ? (JSON.parse(body) as { id: string }).id : null;
      },
    },
    {
      method: 'POST',
      path: '/v1/sessions/x/logoff',
      setupRequest: (request, context): AutocannonRequest =>
        context.sessionId
          ? { ...request, path: `/v1/sessions/${context.sessionId}/logoff`, headers: { authorization: context.auth as string } }
          : // The open failed: spend the turn on something harmless rather than a bogus logoff.
            { ...request, method: 'GET', path: '/health', headers: {} },
      onResponse: (status, _body, context) => {
        if (context.sessionId && status === 200) cycleLatencies.push(performance.now() - (context.started as number));
      },
    },
  ];
  const cycles: CycleRun[] = [];
  for (const concurrency of ctx.cycles === false ? [] : ctx.concurrencies) {
    cycleLatencies.length = 0;
    const { result, cpu, tollgate, sandbox, loop, databaseDelta } = await measured(() =>
      load({
        label: `open+logoff c=${concurrency}`,
        url,
        concurrency,
        seconds: ctx.seconds,
        maxRequests: ctx.maxRequests * 2,
        requests: cycleRequests,
      }),
    );
    const d = distribution(cycleLatencies);
    const perSecond = round(cycleLatencies.length / result.seconds, 1);
    cycles.push({
      ...result,
      cpu,
      cycles: cycleLatencies.length,
      cyclesPerSecond: perSecond,
      cycleP50Ms: round(d.p50, 2),
      cycleP99Ms: round(d.p99, 2),
      tollgateServedMs: tollgate.served['POST /v1/sessions'] ?? null,
      logoffServedMs: tollgate.served['POST /v1/sessions/:id/logoff'] ?? null,
      cardCallFromTollgateMs: tollgate.sent['POST /v1/holds'] ?? null,
      sandboxServedMs: sandbox.served['POST /v1/holds'] ?? null,
      tollgateLoop: loop,
      databaseDelta,
    });
    say(
      `open+logoff c=${concurrency}: ${perSecond} cycles/s, cycle p50 ${round(d.p50, 1)} ms, p99 ${round(d.p99, 1)} ms` +
        ` (${result.non2xx} non-2xx); cores: ${describeCpu(cpu)}`,
    );
  }

  let profile: OpensPhase['profile'] = null;
  if (ctx.profileSeconds > 0) {
    const concurrency = Math.max(...ctx.concurrencies);
    const file = path.join(ctx.profileDir, `opens-c${concurrency}.cpuprofile`);
    say(`profiling tollgate for ${ctx.profileSeconds} s of opens at c=${concurrency} (inspector sampling profiler, 1 ms)`);
    await ctx.server.request('profile-start', { intervalUs: 1000 });
    await load({
      label: `profiled opens c=${concurrency}`,
      url,
      concurrency,
      seconds: ctx.profileSeconds,
      maxRequests: ctx.maxRequests,
      requests: [openRequest],
      quiet: true,
    });
    await ctx.server.request('profile-stop', { file });
    profile = { ...(await summarizeProfile(file)), concurrency, seconds: ctx.profileSeconds, file };
  }

  await stats.end({ timeout: 5 });
  return {
    accounts: tokens.length,
    signUpSeconds: round(signUpSeconds, 2),
    opens,
    cycles,
    liveSessionsAfter: await ctx.server.request<number>('live'),
    profile,
  };
}

export function describeCpu(cpu: CpuShares): string {
  return Object.entries(cpu.cores)
    .filter(([, cores]) => cores >= 0.01)
    .map(([name, cores]) => `${name} ${cores}`)
    .join(', ');
}
