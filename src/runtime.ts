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
import { EventBus } from './events/event-bus.js';
import { EventConsumer } from './events/event-consumer.js';
import { mayBeDelivered, queueDeliveries } from './webhooks/webhook-fanout.js';
import { WebhookSender } from './webhooks/webhook-sender.js';
import { IdempotencyStore } from './http/idempotency-store.js';
import { SessionCommands } from './sessions/commands.js';
import { Journal } from './sessions/journal.js';
import { SessionQueries } from './sessions/queries.js';
import { releaseQuarantine } from './sessions/session-rows.js';
import { Supervisor } from './sessions/supervisor.js';
import { decoyHash } from './accounts/credentials.js';
import { purgeLoginFailures } from './accounts/login.js';
import { TokenResolver } from './accounts/token-resolver.js';
import { TopUps } from './accounts/top-ups.js';
import { BalanceRefunds } from './accounts/refunds.js';
import { StatementJob } from './statements/statement-job.js';
import { isRefusedCapture, suspendOnRefusedCaptures } from './accounts/capture-failures.js';
import { isDeclinedStatement, suspendOnDeclinedStatements } from './accounts/declined-statements.js';
import { BalanceHolds, withBalances } from './payments/balance-gateway.js';
import { AccountCommands } from './accounts/account-commands.js';
import { AccountStates } from './accounts/account-states.js';
import { purgeDeadTokens } from './accounts/tokens.js';
import { Bulkhead } from './auth/bulkhead.js';
import { HealthProbe } from './http/health-probe.js';
import { findOperatorByKey, Operators } from './operators/operators.js';
import { Admission } from './admission/admission.js';
import { createOccupancyStore, type OccupancyStore } from './admission/occupancy.js';
import { Catalogue } from './catalogue/catalogue-service.js';
import { AccessTokens, loadEdgeKey } from './edge/access-token.js';
import { Edge } from './edge/edge.js';
import { attachEdgeWebSockets } from './edge/edge-websocket.js';
import { refuseConnect } from './http/problem.js';
import { keepUsagePeaks } from './reports/usage-peaks.js';
import { clientAddressOf } from './edge/client-address.js';
import { LiveSessions } from './edge/live-sessions.js';
import { TrafficLedger } from './edge/traffic-ledger.js';
import { startDemoUpstreams } from './demo/demo-upstreams.js';
import { UpstreamHealth } from './edge/upstream-health.js';
import { loadChecks, saveChecks } from './edge/upstream-checks-sql.js';
import { LeaseManager } from './cluster/lease-manager.js';
import { RemoteOccupancy } from './cluster/remote-occupancy.js';
import { EventFollower } from './cluster/event-follower.js';
import { singleNode } from './cluster/ownership.js';

const MIGRATIONS_DIR = fileURLToPath(new URL('./db/migrations/', import.meta.url));
// Webhooks and suspensions need not follow a commit within milliseconds: each read of the
// events is a transaction of its own, so a tenth of a second's commits are read together.
const EVENT_CONSUMER_WAKE_DELAY_MS = 100;

export interface Tollgate {
  app: FastifyInstance;
  sql: Sql;
  supervisor: Supervisor;
  commands: SessionCommands;
  queries: SessionQueries;
  journal: Journal;
  /** Domain events, after commit. */
  events: EventBus;
  /** The edge's table of live sessions (src/edge/live-sessions.ts). */
  live: LiveSessions;
  /** Several nodes (CLUSTER_NODE_ID): this node's leases on servers; null when it runs alone. */
  leases: LeaseManager | null;
  admission: Admission;
  occupancy: OccupancyStore;
  gateway: CardGateway;
  /** A closed account's balance sent back to the card; `recover()` drives what is pending (the housekeeping does too). */
  refunds: BalanceRefunds;
  /** Prepaid balances' top-ups (src/accounts/top-ups.ts). */
  topUps: TopUps;
  /** The card-network sandbox's address, or null when the card company is Stripe. */
  cardNetworkUrl: string | null;
  /** TOLLGATE_ADMIN_TOKEN or the generated one: it only creates the first admin operator (POST /v1/ops/operators). */
  bootstrapToken: string;
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
  const timeouts = {
    statementTimeoutMs: config.database.statementTimeoutMs,
    idleInTransactionTimeoutMs: config.database.idleInTransactionTimeoutMs,
  };
  const sql = connect(databaseUrl, { max: config.databasePoolSize, ...timeouts, ...(config.cluster && { nodeId: config.cluster.nodeId }) });
  // Bearer tokens and operator keys are looked up on a pool of their own (see TokenResolver).
  const authSql = connect(databaseUrl, { max: config.database.authPoolSize, ...timeouts, applicationName: 'tollgate-auth', ...(config.cluster && { nodeId: config.cluster.nodeId }) });
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
  if (log && admin.file) log.info({ file: admin.file }, 'bootstrap token kept in the data folder');

  const occupancy = createOccupancyStore();
  const admission = new Admission({
    clock: deps.clock,
    occupancy,
    log: log || createLogger('silent'),
    retryAfterSeconds: config.admissionRetryAfterSeconds,
    maxQueuePerGate: config.quotas.maxQueuePerGate,
    maxQueuedPerAccount: config.quotas.maxQueuedOpensPerAccount,
    inspect: inspector?.inspect,
  });
  const demo = config.demoUpstreams ? await startDemoUpstreams(sql) : null;
  if (log && demo && demo.started.length > 0) log.info({ services: demo.started }, 'demo upstreams listening');
  const catalogue = new Catalogue({ sql, clock: deps.clock, admission, currency: config.currency });
  await catalogue.load();
  const silent = log || createLogger('silent');
  const events = new EventBus(silent);
  // The edge follows the bus before anything is restored, so no event is missed between its
  // reading the active rows and its hearing of what comes next.
  const live = new LiveSessions({ clock: deps.clock, log: silent });
  const stopFollowing = events.subscribe((batch) => live.apply(batch));
  let supervisor: Supervisor | null = null;
  const journal = new Journal({
    sql,
    maxBatch: 256,
    ...config.journal,
    onCommitted: (committed) => events.publish(committed),
    onStuck: (sessionId, reason) => void supervisor?.onWriteStuck(sessionId, reason),
    onRecovering: (tx, sessionId) => releaseQuarantine(tx, sessionId),
    onRecovered: (sessionId) => silent.warn({ sessionId }, 'session writes recovered'),
    onFenced: (sessionId) => supervisor?.onFenced(sessionId),
    onBatch: (writes, seconds) => {
      metrics.persistBatchSize.observe(writes);
      metrics.persistLatency.observe(seconds);
    },
  });
  // Sessions of prepaid accounts hold on their balance; the rest at the card company.
  const sessionGateway = withBalances(gateway, new BalanceHolds({ sql, clock: deps.clock }));
  // Several nodes: this one runs the servers it holds leases on (src/cluster/lease-manager.ts).
  const leases = config.cluster
    ? new LeaseManager({
        sql,
        clock: deps.clock,
        log: silent.child({ component: 'leases', node: config.cluster.nodeId }),
        ...config.cluster,
        onAcquired: async (serverId) => {
          // The catalogue as it is now (another node may have added the server, or changed a cap),
          // so the gates that admit to it are current before its sessions take their seats.
          await catalogue.load();
          const restored = await supervisor!.restoreServer(serverId);
          if (restored > 0) silent.info({ serverId, restored }, 'sessions of an acquired server restored');
        },
        onLost: async (serverId, handingOver) => {
          await supervisor!.dropServer(serverId, handingOver);
        },
      })
    : null;
  supervisor = new Supervisor({
    sql,
    journal,
    admission,
    clock: deps.clock,
    gateway: sessionGateway,
    log: silent,
    inspect: inspector?.inspect,
    coldAfterMs: config.coldAfterMs,
    ownership: leases ?? singleNode,
  });
  const queries = new SessionQueries({ sql, supervisor, journal, clock: deps.clock, stuck: config.stuck });
  // Each service's upstream is checked to take connections; opens of one that does not are refused.
  // What each check found is kept by node (one node alone is 'single'), for its next run.
  const nodeName = config.cluster?.nodeId ?? 'single';
  const upstreamHealth = new UpstreamHealth({
    upstreams: () => catalogue.upstreamsByService(),
    upstreamOf: (serviceId) => catalogue.upstream(serviceId),
    now: () => deps.clock.now(),
    log: silent,
    intervalMs: config.edge.upstreamCheckMs,
    timeoutMs: config.edge.upstreamCheckTimeoutMs,
    lostAfterMs: config.edge.upstreamLostAfterMs,
    onLost: async (serviceId, since) => void (await commands.endServiceSessions(serviceId, since)),
    store: {
      load: () => loadChecks(sql, nodeName),
      save: (checks) => saveChecks(sql, nodeName, checks),
    },
  });
  const commands = new SessionCommands({
    sql,
    journal,
    supervisor,
    queries,
    admission,
    catalogue,
    clock: deps.clock,
    log: silent,
    metrics,
    retry: { baseMs: config.captureRetryBaseMs, maxMs: config.captureRetryMaxMs },
    policy: { graceMs: config.overLimitGraceMs, renewBeforeMs: config.holdRenewBeforeMs, warnings: config.warnings },
    openWaitMs: config.openWaitMs,
    logoffWaitMs: config.logoffWaitMs,
    orphanAfterMs: config.orphanAfterMs,
    maxOpenSessionsPerAccount: config.quotas.maxOpenSessionsPerAccount,
    postpaidCeilingMicros: config.limits.maxAmountMicros,
    unreachable: (serviceId) => {
      const state = upstreamHealth.stateOf(serviceId);
      return state && !state.reachable ? { detail: state.detail } : null;
    },
  });
  // Started once the commands that end a lost service's sessions exist.
  await upstreamHealth.start();
  const idempotency = new IdempotencyStore(sql, config.idempotencyKeyTtlMs);
  const readiness = { restored: false };
  // Alone, every unsettled session is restored here; in a cluster, those of the servers this node takes.
  const restored = leases ? 0 : await supervisor.restore();
  await leases?.start();
  // Other nodes' domain events reach this node's bus (the edge, live pages) through LISTEN/NOTIFY.
  const follower = leases ? new EventFollower({ sql, bus: events, log: silent }) : null;
  await follower?.start();
  // The seats taken on the servers other nodes run, for this node's catalogue and console.
  const remoteOccupancy = leases && config.cluster
    ? new RemoteOccupancy({ sql, occupancy, hosts: (serverId) => leases.hosts(serverId), intervalMs: config.cluster.renewMs, log: silent })
    : null;
  remoteOccupancy?.start();
  const stopFollowingCatalogue = leases ? await catalogue.followChanges((error) => silent.warn({ err: String(error) }, 'could not read the catalogue again after a change')) : null;
  readiness.restored = true;
  if (log && restored > 0) log.info({ restored }, 'unsettled sessions restored');
  const liveLoaded = await live.load(sql);
  if (log && liveLoaded > 0) log.info({ sessions: liveLoaded }, 'edge holds the active sessions');
  const traffic = new TrafficLedger({ sql, live, clock: deps.clock, log: silent, flushMs: config.edge.trafficFlushMs });
  const edge = new Edge({
    live,
    tokens: new AccessTokens(await loadEdgeKey(sql, deps.clock.now())),
    catalogue,
    sql,
    clock: deps.clock,
    meter: (sessionId, options) => commands.metering.reserveRequest(sessionId, options),
    chargesPerRequest: (sessionId) => commands.metering.chargesPerRequest(sessionId),
    settle: (sessionId, reservationId, used) => commands.metering.settleRequest(sessionId, reservationId, used),
    ...(leases && {
      ownerOf: (serviceId: string) => {
        const serverId = catalogue.service(serviceId)?.serverId;
        return serverId === undefined ? null : leases.ownerOf(serverId);
      },
      nodeId: config.cluster!.nodeId,
    }),
  });
  // The card network may be down at start-up; tollgate starts anyway and reconciles later.
  const reconcile = () =>
    voidOrphanHolds({ sql, gateway, log: log || createLogger('silent') }).catch((error: unknown) => {
      if (log) log.warn({ err: String(error) }, 'could not reconcile holds with the card network');
    });
  await reconcile();
  const reconciling =
    config.reconcileIntervalMs > 0 ? setInterval(() => void reconcile(), config.reconcileIntervalMs).unref() : null;
  // Orphaned opens are abandoned, and answers to Idempotency-Keys forgotten once they are old.
  // Top-ups whose card calls got no answer are driven again, with the same keys, now and with the housekeeping.
  // A closed account's balance goes back to the card (src/accounts/refunds.ts); refunds the card
  // company has not answered are driven again, with the same keys, now and with the housekeeping.
  const refunds = new BalanceRefunds({ sql, clock: deps.clock, gateway, log: silent, published: (committed) => events.publish(committed) });
  const recoverRefunds = () => refunds.recover().catch((error: unknown) => silent.warn({ err: String(error) }, 'could not drive pending refunds'));
  const topUps = new TopUps({ sql, clock: deps.clock, gateway, log: silent, closedMeanwhile: () => refunds.recover() });
  const recoverTopUps = () => topUps.recover().catch((error: unknown) => silent.warn({ err: String(error) }, 'could not drive pending top-ups'));
  await recoverTopUps();
  await recoverRefunds();
  const housekeeping = async () => {
    await recoverTopUps();
    await recoverRefunds();
    await commands.abandonOrphans().catch((error: unknown) => silent.warn({ err: String(error) }, 'orphan sweep failed'));
    await idempotency.purge(deps.clock.now()).catch((error: unknown) => silent.warn({ err: String(error) }, 'idempotency purge failed'));
    // Tokens dead (lapsed or revoked) for a day, and log-in failures nobody added to for an hour.
    await purgeDeadTokens(sql, deps.clock.now() - 86_400_000).catch((error: unknown) => silent.warn({ err: String(error) }, 'token purge failed'));
    await purgeLoginFailures(sql, deps.clock.now()).catch((error: unknown) => silent.warn({ err: String(error) }, 'log-in failure purge failed'));
    await keepPeaks();
  };
  // Usage reports' peaks of the quarters no session can change any more; the first run over a long history takes a while, so start-up does not wait for it.
  const keepPeaks = () => keepUsagePeaks(sql, new Date(deps.clock.now())).catch((error: unknown) => silent.warn({ err: String(error) }, 'could not keep usage peaks'));
  void keepPeaks();
  const sweeping =
    config.orphanSweepIntervalMs > 0 ? setInterval(() => void housekeeping(), config.orphanSweepIntervalMs).unref() : null;

  const lookups = new Bulkhead(config.database.authPoolSize, config.database.authMaxWaiting);
  const tokens = new TokenResolver({ sql: authSql, writes: sql, clock: deps.clock, policy: config.tokens, lookups, ...config.tokens });
  const decoy = await decoyHash();
  const accountStates = new AccountStates({
    sql,
    clock: deps.clock,
    log: silent,
    published: (committed) => events.publish(committed),
    tokensRevoked: (hashes) => hashes.forEach((hash) => tokens.forget(hash)),
    endSessions: (accountId) => commands.endAccountSessions(accountId),
    refundsPlanned: (accountId) => refunds.drive(accountId),
  });
  await accountStates.start();
  // Webhooks: a durable consumer queues each subscribed event once per endpoint; the sender delivers them.
  const webhookQueue = new EventConsumer(
    { sql, name: 'webhooks', log: silent, bus: events, from: 'now', pollMs: config.webhooks.pollMs, wakeDelayMs: EVENT_CONSUMER_WAKE_DELAY_MS, wakesOn: mayBeDelivered },
    queueDeliveries(() => deps.clock.now()),
  );
  const webhookSender = new WebhookSender({ sql, clock: deps.clock, log: silent, policy: config.webhooks });
  await webhookQueue.start();
  webhookSender.start();
  // Captures refused for good suspend their account (src/accounts/capture-failures.ts).
  const captureFailures = new EventConsumer(
    { sql, name: 'account-capture-failures', log: silent, bus: events, from: 'now', pollMs: config.webhooks.pollMs, wakeDelayMs: EVENT_CONSUMER_WAKE_DELAY_MS, wakesOn: isRefusedCapture },
    suspendOnRefusedCaptures({ states: accountStates, clock: deps.clock, sql, suspendAfter: config.suspendAfterRefusedCaptures }),
  );
  await captureFailures.start();
  // A declined statement charge suspends its account (src/accounts/declined-statements.ts).
  const declinedStatements = new EventConsumer(
    { sql, name: 'account-declined-statements', log: silent, bus: events, from: 'now', pollMs: config.webhooks.pollMs, wakeDelayMs: EVENT_CONSUMER_WAKE_DELAY_MS, wakesOn: isDeclinedStatement },
    suspendOnDeclinedStatements({ states: accountStates, clock: deps.clock }),
  );
  await declinedStatements.start();
  const statements = new StatementJob({ sql, clock: deps.clock, log: silent, gateway, published: (committed) => events.publish(committed), sweepMs: config.statementSweepMs });
  await statements.start();
  const app = await buildApp({
    sql,
    events,
    console: { sql, clock: deps.clock, lock: config.loginLock, decoy, maxAgeMs: config.consoleSessionMs },
    tokens,
    tokenPolicy: config.tokens,
    login: {
      sql,
      clock: deps.clock,
      tokens: config.tokens,
      lock: config.loginLock,
      decoy,
      onVerify: () => metrics.passwordVerifications.inc(),
      onRevoked: (hashes) => hashes.forEach((hash) => tokens.forget(hash)),
    },
    operators: new Operators({ sql, clock: deps.clock }),
    accountStates,
    accountCommands: new AccountCommands({ sql, clock: deps.clock, states: accountStates }),
    topUps,
    refunds,
    chargeStatements: () => void statements.run(),
    operatorFor: (apiKey) => lookups.run(() => findOperatorByKey(authSql, apiKey)),
    bootstrapToken: admin.token,
    rateLimits: config.rateLimits,
    health: new HealthProbe(sql),
    http: config.http,
    clock: deps.clock,
    gateway,
    commands,
    queries,
    catalogue,
    occupancy,
    reachable: (serviceId: string) => upstreamHealth.stateOf(serviceId)?.reachable ?? null,
    idempotency,
    currency: config.currency,
    limits: config.limits,
    quoteValidityMs: config.quoteValidityMs,
    metrics,
    readiness,
    edge,
    edgePublicUrl: config.edge.publicUrl,
    logger: log,
    cluster: leases && config.cluster
      ? {
          nodeId: config.cluster.nodeId,
          ownership: leases,
          sql,
          serverOfService: async (serviceId) => {
            const known = catalogue.service(serviceId)?.serverId;
            if (known) return known;
            // A service another node added since this one started.
            const [row] = await sql<{ serverId: string }[]>`select server_id as "serverId" from services where id = ${serviceId}`;
            return row?.serverId ?? null;
          },
          timeoutMs: config.http.handlerTimeoutMs,
        }
      : null,
  });
  const edgeSockets = attachEdgeWebSockets(app.server, edge, silent, clientAddressOf(config.http.trustProxy));
  app.server.on('connect', refuseConnect(app.supportedMethods));

  return {
    app,
    sql,
    supervisor,
    commands,
    queries,
    journal,
    events,
    live,
    leases,
    admission,
    occupancy,
    gateway,
    refunds,
    topUps,
    cardNetworkUrl: card.cardNetworkUrl,
    bootstrapToken: admin.token,
    abandon() {
      try {
        embedded?.abandon();
      } catch {
        // Already stopped, or its pid file gone: nothing to ask.
      }
    },
    async close() {
      if (reconciling) clearInterval(reconciling);
      if (sweeping) clearInterval(sweeping);
      commands.beginShutdown();
      // Streams and WebSockets through the edge would hold Fastify's close until the timeout.
      stopFollowing();
      edgeSockets.close();
      live.close();
      accountStates.stop();
      await app.close();
      await traffic.close();
      await upstreamHealth.stop();
      await demo?.close();
      await Promise.all([webhookQueue.stop(), webhookSender.stop(), statements.stop(), captureFailures.stop(), declinedStatements.stop(), follower?.stop(), remoteOccupancy?.stop(), stopFollowingCatalogue?.()]);
      // Servers handed back with their writes committed: the other nodes take them at once.
      await leases?.stop();
      await supervisor.stop();
      inspector?.stop();
      admission.close();
      await card.close();
      await Promise.all([sql.end({ timeout: 5 }), authSql.end({ timeout: 5 })]);
      await embedded?.stop();
    },
  };
}
