import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** tollgate's Prometheus metrics; one registry per process (tests build several apps). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tollgate_process_' });
  return {
    registry,
    sessions: new Gauge({
      name: 'tollgate_sessions',
      help: 'Sessions held by this process, by state',
      labelNames: ['state'] as const,
      registers: [registry],
    }),
    stuckSessions: new Gauge({
      name: 'tollgate_stuck_sessions',
      help: 'Sessions past the deadline of the state they wait in',
      registers: [registry],
    }),
    admissions: new Counter({ name: 'tollgate_admissions_total', help: 'Sessions admitted', registers: [registry] }),
    passwordVerifications: new Counter({
      name: 'tollgate_password_verifications_total',
      help: 'argon2 verifications of a log-in (one per attempt checked, known e-mail or not)',
      registers: [registry],
    }),
    rejections: new Counter({
      name: 'tollgate_open_rejections_total',
      help: 'Session opens refused, by problem code',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    cardNetworkLatency: new Histogram({
      name: 'tollgate_card_network_request_duration_seconds',
      help: 'Calls to the card company (retries included), by operation and outcome',
      labelNames: ['operation', 'outcome'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    persistLatency: new Histogram({
      name: 'tollgate_persist_commit_duration_seconds',
      help: 'Commits of batched session transitions',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    persistBatchSize: new Histogram({
      name: 'tollgate_persist_batch_transitions',
      help: 'Session transitions committed together',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
