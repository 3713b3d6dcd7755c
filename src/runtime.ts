import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { loadAdminToken } from './admin-token.js';
import { buildApp } from './app.js';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './db/embedded.js';
import { migrate } from './db/migrate.js';
import { seedDemoCatalogue } from './db/seed.js';
import { connect, type Sql } from './db/sql.js';
import { createLogger, type Logger } from './logger.js';
import type { CardGateway } from './payments/gateway.js';
import { startCardGateway } from './payments/card-gateway.js';
import { instrumentGateway } from './payments/instrumented-gateway.js';
import { createMetrics } from './observability/metrics.js';
import { voidOrphanHolds } from './payments/reconcile.js';
import { Supervisor } from './supervisor/supervisor.js';
import { TokenResolver } from './accounts/token-resolver.js';
import { Admission } from './admission/admission.js';
import { createOccupancyStore, type OccupancyStore } from './admission/occupancy.js';
import { Catalogue } from './catalogue/catalogue-service.js';

const MIGRATIONS_DIR = fileURLToPath(new URL('./db/migrations/', import.meta.url));

export interface Tollgate {
  app: FastifyInstance;
  sql: Sql;
  supervisor: Supervisor;
  admission: Admission;
  occupancy: OccupancyStore;
  gateway: CardGateway;
  /** The card-network sandbox's address, or null when the card company is Stripe. */
  cardNetworkUrl: string | null;
  adminToken: string;
  /** Stops in order: HTTP, actors (pending writes committed), card network, database. */
  close(): Promise<void>;
  /** Before a forced exit: the embedded PostgreSQL (if any) is asked to stop on its own. */
  abandon(): void;
}

export async function migrateTollgate(sql: Sql): Promise<string[]> {
  return migrate(sql, { dir: MIGRATIONS_DIR, table: 'migrations', schema: 'tollgate_meta' });
}

/** Starts everything tollgate needs around the HTTP app; the caller decides whether to listen. */
export async function startTollgate(config: Config, deps: { clock: Clock; log: Logger | false }): Promise<Tollgate> {
  const log = deps.log;
  let embedded: EmbeddedDatabase | null = null;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    embedded = await startEmbeddedPostgres({
      dataDir: config.pgDataDir,
      log: (message) => log && log.debug({ component: 'postgres' }, message),
      warn: (message) => log && log.warn({ component: 'postgres' }, message),
    });
    await embedded.ensureDatabase('tollgate');
    databaseUrl = embedded.url('tollgate');
    if (log) log.info({ dataDir: config.pgDataDir }, 'embedded PostgreSQL started');
  }
  const sql = connect(databaseUrl, { max: config.databasePoolSize });
  const applied = await migrateTollgate(sql);
  if (log && applied.length > 0) log.info({ applied }, 'migrations applied');

  const card = await startCardGateway(config, { sql, clock: deps.clock, log });
  const metrics = createMetrics();
  const gateway = instrumentGateway(card.gateway, metrics);
  // The inspector's WebSocket server is loaded only when asked for.
  const inspector = config.inspect
    ? (await import('./observability/inspector.js')).startInspector({ port: config.inspect.port, log: log || createLogger('silent') })
    : null;

  if (config.seedDemo && (await seedDemoCatalogue(sql, config.currency, deps.clock.now())) && log) {
    log.info('demo catalogue seeded');
  }
  const admin = await loadAdminToken(config.dataDir, config.adminToken);
  if (log && admin.file) log.info({ file: admin.file }, 'operator token kept in the data folder');

  const occupancy = createOccupancyStore();
  const admission = new Admission({
    clock: deps.clock,
    occupancy,
    log: log || createLogger('silent'),
    retryAfterSeconds: config.admissionRetryAfterSeconds,
    inspect: inspector?.inspect,
  });
  const catalogue = new Catalogue({ sql, clock: deps.clock, admission, currency: config.currency });
  await catalogue.load();
  const supervisor = new Supervisor({
    sql,
    admission,
    catalogue,
    clock: deps.clock,
    gateway,
    log: log || createLogger('silent'),
    retry: { baseMs: config.captureRetryBaseMs, maxMs: config.captureRetryMaxMs },
    policy: { graceMs: config.overLimitGraceMs, renewBeforeMs: config.holdRenewBeforeMs },
    openWaitMs: config.openWaitMs,
    logoffWaitMs: config.logoffWaitMs,
    stuck: config.stuck,
    metrics,
    inspect: inspector?.inspect,
  });
  const readiness = { restored: false };
  const restored = await supervisor.restore();
  readiness.restored = true;
  if (log && restored > 0) log.info({ restored }, 'unsettled sessions restored');
  // The card network may be down at start-up; tollgate starts anyway and reconciles later.
  const reconcile = () =>
    voidOrphanHolds({ sql, gateway, log: log || createLogger('silent') }).catch((error: unknown) => {
      if (log) log.warn({ err: String(error) }, 'could not reconcile holds with the card network');
    });
  await reconcile();
  const reconciling =
    config.reconcileIntervalMs > 0 ? setInterval(() => void reconcile(), config.reconcileIntervalMs).unref() : null;

  const app = await buildApp({
    sql,
    tokens: new TokenResolver(sql),
    clock: deps.clock,
    gateway,
    supervisor,
    catalogue,
    occupancy,
    adminToken: admin.token,
    currency: config.currency,
    admissionMaxWaitSeconds: config.admissionMaxWaitSeconds,
    metrics,
    readiness,
    logger: log,
  });

  return {
    app,
    sql,
    supervisor,
    admission,
    occupancy,
    gateway,
    cardNetworkUrl: card.cardNetworkUrl,
    adminToken: admin.token,
    abandon() {
      try {
        embedded?.abandon();
      } catch {
        // Already stopped, or its pid file gone: nothing to ask.
      }
    },
    async close() {
      if (reconciling) clearInterval(reconciling);
      supervisor.beginShutdown();
      await app.close();
      await supervisor.stop();
      inspector?.stop();
      admission.close();
      await card.close();
      await sql.end({ timeout: 5 });
      await embedded?.stop();
    },
  };
}
