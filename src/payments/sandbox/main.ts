import { z } from 'zod';
import { systemClock } from '../../clock.js';
import { connect } from '../../db/sql.js';
import { survivePostgresTypeFetchEscapes } from '../../db/type-fetch-escape.js';
import { createLogger, REDACTED_PATHS } from '../../logger.js';
import { startCardNetwork, type RunningCardNetwork } from './start.js';

/**
 * The card-network sandbox as a service of its own (`npm run card-network`), so tollgate can
 * reach it over the network as it would a real processor (CARD_NETWORK_URL), and so it
 * outlives tollgate processes that fault tests kill.
 */
const envSchema = z.object({
  CARD_NETWORK_PORT: z.coerce.number().int().min(0).max(65535).default(4100),
  // Loopback unless told otherwise: the sandbox is a test double, not a service for the network.
  HOST: z.string().min(1).default('127.0.0.1'),
  // No embedded fallback here: tollgate owns the embedded server, and a sandbox that quietly
  // kept its holds somewhere else would disagree with it after a restart.
  DATABASE_URL: z.url({
    error: (issue) =>
      issue.input === undefined
        ? 'DATABASE_URL is required to run the card-network sandbox on its own (e.g. postgres://user:password@localhost:5432/tollgate)'
        : 'DATABASE_URL must be a URL',
  }),
  CARD_NETWORK_HOLD_VALIDITY_MS: z.coerce.number().int().positive().optional(),
  /** The fault API's bearer token; unset, the fault API is off. */
  CARD_NETWORK_FAULTS_TOKEN: z.string().min(16).optional(),
  /** Milliseconds added before every answer, to stand in for a card company far away (benchmarks). */
  CARD_NETWORK_LATENCY_MS: z.coerce.number().int().min(0).max(60_000).default(0),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

// An empty variable (as docker-compose passes `${X:-}`) means "not set", as in src/config.ts.
const present = Object.fromEntries(Object.entries(process.env).filter(([, value]) => value !== ''));
const parsed = envSchema.safeParse(present);
const log = createLogger(parsed.success ? parsed.data.LOG_LEVEL : 'info');
survivePostgresTypeFetchEscapes(log);
if (!parsed.success) {
  const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
  log.fatal(`invalid configuration: ${problems}`);
  process.exit(1);
}
const env = parsed.data;

const sql = connect(env.DATABASE_URL, { max: 10 });
let network: RunningCardNetwork;
try {
  network = await startCardNetwork({
    sql,
    clock: systemClock,
    port: env.CARD_NETWORK_PORT,
    host: env.HOST,
    ...(env.CARD_NETWORK_HOLD_VALIDITY_MS === undefined ? {} : { holdValidityMs: env.CARD_NETWORK_HOLD_VALIDITY_MS }),
    faultsToken: env.CARD_NETWORK_FAULTS_TOKEN,
    latencyMs: env.CARD_NETWORK_LATENCY_MS,
    // Request lines only (method, URL, status): the default serializers never log bodies or headers.
    logger: { level: env.LOG_LEVEL, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } },
  });
} catch (error) {
  log.fatal({ err: error }, 'card-network sandbox could not start');
  await sql.end({ timeout: 5 }).catch(() => {});
  process.exit(1);
}
log.info({ url: network.url }, 'card-network sandbox listening');

let closing = false;
const shutdown = async (signal: string) => {
  if (closing) return;
  closing = true;
  log.info({ signal }, 'card-network sandbox shutting down');
  try {
    await network.close();
    await sql.end({ timeout: 5 });
    process.exit(0);
  } catch (error) {
    log.error({ err: error }, 'card-network sandbox shutdown failed');
    process.exit(1);
  }
};
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
