import path from 'node:path';
import { z } from 'zod';
import { parseAmount } from './billing/money.js';

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const decimal = z.string().regex(/^\d{1,9}(\.\d{1,6})?$/, 'must be a decimal amount like 100000.00');
const count = z.coerce.number().int().min(0);
/** Fastify's trustProxy: false, true, a number of hops, or a comma-separated list of addresses/CIDRs. */
const trustProxy = z
  .string()
  .default('false')
  .transform((value): boolean | number | string[] => {
    if (value === 'false') return false;
    if (value === 'true') return true;
    if (/^\d+$/.test(value)) return Number(value);
    return value.split(',').map((part) => part.trim()).filter(Boolean);
  });
const origins = z
  .string()
  .default('')
  .transform((value) => value.split(',').map((part) => part.trim()).filter(Boolean))
  .pipe(z.array(z.url().refine((url) => new URL(url).origin === url, 'each CORS origin must be scheme://host[:port], nothing more')));

/** The one place that reads process.env; everything else receives a Config. */
const envSchema = z
  .object({
    PORT: port.default(3000),
    HOST: z.string().default('127.0.0.1'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    DATABASE_URL: z.url().optional(),
    DATABASE_POOL_SIZE: positiveInt.default(20),
    TOLLGATE_DATA_DIR: z.string().default('./.tollgate'),
    /** Which card company: the card-network sandbox (in-process or at CARD_NETWORK_URL), or Stripe. */
    TOLLGATE_CARD_GATEWAY: z.enum(['sandbox', 'stripe']).default('sandbox'),
    STRIPE_API_KEY: z.string().min(1).optional(),
    STRIPE_API_HOST: z.string().optional(),
    STRIPE_API_PORT: port.optional(),
    STRIPE_API_PROTOCOL: z.enum(['http', 'https']).optional(),
    /** How often open holds at the card company are checked against sessions (0: at start-up only). */
    RECONCILE_INTERVAL_MS: z.coerce.number().int().min(0).default(600_000),
    CARD_NETWORK_URL: z.url().optional(),
    CARD_NETWORK_PORT: port.default(4100),
    TOLLGATE_ADMIN_TOKEN: z.string().min(16).optional(),
    TOLLGATE_CURRENCY: z.string().regex(/^[A-Z]{3}$/).default('USD'),
    TOLLGATE_SEED_DEMO: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
    /** How long a logoff waits for the charge slip before answering 202 closing. */
    LOGOFF_WAIT_MS: positiveInt.default(5000),
    SHUTDOWN_TIMEOUT_MS: positiveInt.default(25_000),
    /** How long an open waits for the card company before giving up. */
    OPEN_WAIT_MS: positiveInt.default(15000),
    CARD_NETWORK_TIMEOUT_MS: positiveInt.default(3000),
    /** Attempts per call to the card network (same idempotency key), with exponential backoff and jitter. */
    CARD_NETWORK_MAX_ATTEMPTS: positiveInt.default(4),
    CARD_NETWORK_BACKOFF_BASE_MS: positiveInt.default(100),
    CARD_NETWORK_BACKOFF_MAX_MS: positiveInt.default(2000),
    /** Validity of holds placed by the in-process sandbox (real cards: about 7 days). */
    CARD_NETWORK_HOLD_VALIDITY_MS: positiveInt.default(7 * 86_400_000),
    /** The longest a POST /v1/sessions may queue for a seat (its waitSeconds). */
    ADMISSION_MAX_WAIT_SECONDS: z.coerce.number().min(0).max(3600).default(60),
    /** The Retry-After hint of a 409 at capacity. */
    ADMISSION_RETRY_AFTER_SECONDS: positiveInt.default(5),
    /** How long a session over its charge limit may still be extended (0: it closes at once). */
    OVER_LIMIT_GRACE_MS: z.coerce.number().int().min(0).default(0),
    /** How long before a card hold lapses a running session asks for a new one. */
    HOLD_RENEW_BEFORE_MS: positiveInt.default(86_400_000),
    /** A session still authorizing after this long, or closing after this long or this many failed attempts, is stuck. */
    STUCK_AUTHORIZING_MS: positiveInt.default(60_000),
    STUCK_CLOSING_MS: positiveInt.default(300_000),
    STUCK_AFTER_ATTEMPTS: positiveInt.default(5),
    /** 1: wire every actor to the XState inspector (a local WebSocket server on TOLLGATE_INSPECT_PORT). */
    TOLLGATE_INSPECT: z.enum(['0', '1']).default('0').transform((v) => v === '1'),
    TOLLGATE_INSPECT_PORT: port.default(8080),
    CAPTURE_RETRY_BASE_MS: positiveInt.default(1000),
    CAPTURE_RETRY_MAX_MS: positiveInt.default(60000),
    /** The largest amount a request may name: an outstanding limit, a session's maxCharge. */
    MAX_AMOUNT: decimal.default('100000.00'),
    /** The largest price per minute an operator may set. */
    MAX_PRICE_PER_MINUTE: decimal.default('10000.00'),
    /** The largest estimated storage (GB) or processing (hours) a customer may state. */
    MAX_ESTIMATE: z.coerce.number().positive().max(999_999_999).default(1_000_000),
    /** The longest time limit a session may ask for (a week: longer sessions renew their hold). */
    MAX_SESSION_MINUTES: positiveInt.max(525_600).default(10_080),
    /** A transition whose write fails this many times makes its session stuck; writes are retried with backoff. */
    JOURNAL_ATTEMPTS_BEFORE_STUCK: positiveInt.default(5),
    JOURNAL_RETRY_BASE_MS: positiveInt.default(100),
    JOURNAL_RETRY_MAX_MS: positiveInt.default(30_000),
    /** Journal transactions in flight at once, sessions spread over them by account (docs/benchmarks.md). */
    JOURNAL_LANES: positiveInt.max(16).default(1),
    /** An authorizing session nobody hosts, untouched this long, is an orphan; the sweep runs this often. */
    ORPHAN_AFTER_MS: positiveInt.default(60_000),
    ORPHAN_SWEEP_INTERVAL_MS: z.coerce.number().int().min(0).default(30_000),
    /** A session resting this long with nothing asked of it keeps only its row, deadline and seat (0: never). */
    COLD_AFTER_MS: z.coerce.number().int().min(0).default(10_000),
    /** How long the answer to an Idempotency-Key is kept. */
    IDEMPOTENCY_KEY_TTL_HOURS: positiveInt.default(24),
    /** Warn the customer when the charge reaches this share of the limit (0: never), or this many seconds before the cutoff (0: never). */
    WARN_AT_SHARE: z.coerce.number().min(0).max(1).default(0.9),
    WARN_SECONDS_BEFORE: z.coerce.number().int().min(0).max(86_400).default(60),
    /** How long a quote may be used to open a session. */
    QUOTE_VALIDITY_MINUTES: positiveInt.max(10_080).default(15),
    /** Receiving one whole request (headers and body) may take this long (Node's requestTimeout). */
    HTTP_REQUEST_TIMEOUT_MS: positiveInt.default(30_000),
    /** A connection with no bytes either way for this long is closed; derived from the longest open by default. */
    HTTP_CONNECTION_TIMEOUT_MS: positiveInt.optional(),
    /** A request not answered within this long is answered 503 HANDLER_TIMEOUT; derived from the longest open by default. */
    HTTP_HANDLER_TIMEOUT_MS: positiveInt.optional(),
    /** An idle keep-alive connection is closed after this long (above a load balancer's idle timeout). */
    HTTP_KEEP_ALIVE_TIMEOUT_MS: positiveInt.default(72_000),
    /** The largest request body. */
    HTTP_BODY_LIMIT_BYTES: positiveInt.max(10_485_760).default(65_536),
    /** Who may set X-Forwarded-For: false (nobody: the peer address is the client's), true, a hop count, or addresses. */
    TRUST_PROXY: trustProxy,
    /** Origins (scheme://host[:port], comma-separated) whose pages may call the API; none by default. */
    CORS_ORIGINS: origins,
    /** Any one SQL statement is cancelled after this long (PostgreSQL statement_timeout). */
    DATABASE_STATEMENT_TIMEOUT_MS: positiveInt.default(30_000),
    /** A connection left idle inside a transaction this long is closed (idle_in_transaction_session_timeout). */
    DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: positiveInt.default(60_000),
    /** Connections of the separate pool that resolves bearer tokens and operator keys. */
    AUTH_POOL_SIZE: positiveInt.max(50).default(2),
    /** Token look-ups waiting for that pool beyond this many are answered 503 at once. */
    AUTH_MAX_WAITING: positiveInt.default(200),
    /** A customer token lapses after this long unused (each use moves it, at most once a minute). */
    TOKEN_IDLE_HOURS: positiveInt.max(8760).default(168),
    /** ... and in any case this long after it was issued. */
    TOKEN_MAX_AGE_HOURS: positiveInt.max(87_600).default(720),
    /** An operator's web console session lasts this long from its log-in (a working day, by default). */
    CONSOLE_SESSION_HOURS: positiveInt.max(720).default(12),
    /** How long this process trusts a token it resolved without asking the database again. */
    TOKEN_CACHE_TTL_MS: count.max(300_000).default(10_000),
    TOKEN_CACHE_SIZE: positiveInt.max(1_000_000).default(10_000),
    /** Log-ins per client address per minute, and per e-mail per minute. */
    LOGIN_LIMIT_PER_ADDRESS: positiveInt.default(60),
    LOGIN_LIMIT_PER_EMAIL: positiveInt.default(10),
    /** After this many wrong passwords in a row for one e-mail, log-ins for it wait, doubling each time. */
    LOGIN_LOCK_AFTER_FAILURES: positiveInt.default(5),
    LOGIN_LOCK_BASE_SECONDS: positiveInt.default(30),
    LOGIN_LOCK_MAX_SECONDS: positiveInt.default(900),
    /** Sign-ups per client address per hour, and per e-mail per hour (card testing). */
    SIGNUP_LIMIT_PER_ADDRESS: positiveInt.default(10),
    SIGNUP_LIMIT_PER_EMAIL: positiveInt.default(3),
    /** Session opens per account per minute. */
    OPEN_LIMIT_PER_ACCOUNT: positiveInt.default(60),
    /** Unsettled sessions one account may have at once. */
    MAX_OPEN_SESSIONS_PER_ACCOUNT: positiveInt.max(1_000_000).default(20),
    /** Opens of one account that may wait for a seat at once. */
    MAX_QUEUED_OPENS_PER_ACCOUNT: count.max(1_000_000).default(3),
    /** Requests one admission gate (a server or a service) may hold in its queue. */
    ADMISSION_MAX_QUEUE: count.max(1_000_000).default(1000),
    /** Where customers reach tollgate (scheme://host[:port]), for sessions' access URLs; unset: the address each request came to. */
    EDGE_PUBLIC_URL: z.url().refine((url) => /^https?:\/\/[^/]+$/.test(url), 'must be scheme://host[:port], nothing more').optional(),
    /** Start the demo catalogue's small upstreams on loopback ports (default: when embedded with the demo catalogue). */
    TOLLGATE_DEMO_UPSTREAMS: z.enum(['true', 'false']).optional(),
    /** How often the edge adds sessions' traffic counts to their rows. */
    EDGE_TRAFFIC_FLUSH_MS: positiveInt.max(600_000).default(5000),
    /** How often each service's upstream is checked to take connections (opens of an unreachable one are refused); 0: never. */
    EDGE_UPSTREAM_CHECK_MS: count.max(600_000).default(5000),
    EDGE_UPSTREAM_CHECK_TIMEOUT_MS: positiveInt.max(60_000).default(2000),
    /** A service whose checks have all failed for this long is lost: its running sessions end, charged up to the last check that connected; 0: never. */
    EDGE_UPSTREAM_LOST_AFTER_MS: count.max(3_600_000).default(15_000),
    /** Webhook deliveries: one attempt may take this long; failed ones are retried from RETRY_BASE doubling to RETRY_MAX, at most MAX_ATTEMPTS times. */
    WEBHOOK_TIMEOUT_MS: positiveInt.max(60_000).default(5000),
    WEBHOOK_RETRY_BASE_MS: positiveInt.default(10_000),
    WEBHOOK_RETRY_MAX_MS: positiveInt.default(3_600_000),
    WEBHOOK_MAX_ATTEMPTS: positiveInt.max(100).default(12),
    /** How often due deliveries are looked for. */
    WEBHOOK_POLL_MS: positiveInt.default(1000),
    /** An account is suspended by tollgate once this many of its sessions' captures were refused for good since it was last resumed. */
    SUSPEND_AFTER_REFUSED_CAPTURES: positiveInt.max(100).default(2),
    /** Statements are produced when a period ends (a scheduled deadline), and by a sweep this often (0: no sweep). */
    STATEMENT_SWEEP_MS: count.default(60_000),
    /** The card-network sandbox's fault API answers only with this bearer token (unset: the fault API is off). */
    CARD_NETWORK_FAULTS_TOKEN: z.string().min(16).optional(),
    /** Set: this process is one node of several on one PostgreSQL (README "Running several nodes"). */
    // At most 48: it is part of the connections' application_name (63 bytes at most).
    CLUSTER_NODE_ID: z.string().regex(/^[A-Za-z0-9._-]{1,48}$/, 'letters, digits, dot, dash and underscore, at most 48').optional(),
    /** Where the other nodes reach this one (scheme://host:port); default http://HOST:PORT. */
    CLUSTER_NODE_URL: z.url().refine((url) => /^https?:\/\/[^/]+$/.test(url), 'must be scheme://host[:port], nothing more').optional(),
    /** A node that has not renewed its heartbeat for this long loses its servers to the others. */
    CLUSTER_LEASE_MS: positiveInt.min(500).max(600_000).default(10_000),
  })
  .refine((env) => env.TOLLGATE_CARD_GATEWAY !== 'stripe' || env.STRIPE_API_KEY, {
    message: 'STRIPE_API_KEY is required when TOLLGATE_CARD_GATEWAY=stripe',
    path: ['STRIPE_API_KEY'],
  })
  .superRefine((env, ctx) => {
    // An open may wait for a seat, then for the card company, without a byte sent either way.
    const longestOpenMs = env.ADMISSION_MAX_WAIT_SECONDS * 1000 + env.OPEN_WAIT_MS;
    for (const name of ['HTTP_CONNECTION_TIMEOUT_MS', 'HTTP_HANDLER_TIMEOUT_MS'] as const) {
      const value = env[name];
      if (value !== undefined && value <= longestOpenMs) {
        ctx.addIssue({ code: 'custom', path: [name], message: `must exceed ADMISSION_MAX_WAIT_SECONDS + OPEN_WAIT_MS (${longestOpenMs} ms): an open may wait that long` });
      }
    }
  })
  .transform((env) => {
    const dataDir = path.resolve(env.TOLLGATE_DATA_DIR);
    return {
      port: env.PORT,
      host: env.HOST,
      logLevel: env.LOG_LEVEL,
      databaseUrl: env.DATABASE_URL,
      databasePoolSize: env.DATABASE_POOL_SIZE,
      dataDir,
      pgDataDir: path.join(dataDir, 'pgdata'),
      cardGateway: env.TOLLGATE_CARD_GATEWAY,
      stripe: env.STRIPE_API_KEY
        ? { apiKey: env.STRIPE_API_KEY, host: env.STRIPE_API_HOST, port: env.STRIPE_API_PORT, protocol: env.STRIPE_API_PROTOCOL }
        : null,
      reconcileIntervalMs: env.RECONCILE_INTERVAL_MS,
      cardNetworkUrl: env.CARD_NETWORK_URL,
      cardNetworkPort: env.CARD_NETWORK_PORT,
      adminToken: env.TOLLGATE_ADMIN_TOKEN,
      currency: env.TOLLGATE_CURRENCY,
      seedDemo: env.TOLLGATE_SEED_DEMO,
      logoffWaitMs: env.LOGOFF_WAIT_MS,
      shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
      openWaitMs: env.OPEN_WAIT_MS,
      cardNetworkTimeoutMs: env.CARD_NETWORK_TIMEOUT_MS,
      cardNetworkMaxAttempts: env.CARD_NETWORK_MAX_ATTEMPTS,
      cardNetworkBackoffBaseMs: env.CARD_NETWORK_BACKOFF_BASE_MS,
      cardNetworkBackoffMaxMs: env.CARD_NETWORK_BACKOFF_MAX_MS,
      cardNetworkHoldValidityMs: env.CARD_NETWORK_HOLD_VALIDITY_MS,
      admissionMaxWaitSeconds: env.ADMISSION_MAX_WAIT_SECONDS,
      admissionRetryAfterSeconds: env.ADMISSION_RETRY_AFTER_SECONDS,
      overLimitGraceMs: env.OVER_LIMIT_GRACE_MS,
      holdRenewBeforeMs: env.HOLD_RENEW_BEFORE_MS,
      stuck: {
        authorizingMs: env.STUCK_AUTHORIZING_MS,
        closingMs: env.STUCK_CLOSING_MS,
        closeAttempts: env.STUCK_AFTER_ATTEMPTS,
      },
      inspect: env.TOLLGATE_INSPECT ? { port: env.TOLLGATE_INSPECT_PORT } : null,
      captureRetryBaseMs: env.CAPTURE_RETRY_BASE_MS,
      captureRetryMaxMs: env.CAPTURE_RETRY_MAX_MS,
      limits: {
        maxAmountMicros: parseAmount(env.MAX_AMOUNT)!,
        maxPricePerMinuteMicros: parseAmount(env.MAX_PRICE_PER_MINUTE)!,
        maxEstimate: env.MAX_ESTIMATE,
        maxSessionMinutes: env.MAX_SESSION_MINUTES,
        maxWaitSeconds: env.ADMISSION_MAX_WAIT_SECONDS,
      },
      journal: {
        attemptsBeforeStuck: env.JOURNAL_ATTEMPTS_BEFORE_STUCK,
        retryBaseMs: env.JOURNAL_RETRY_BASE_MS,
        retryMaxMs: env.JOURNAL_RETRY_MAX_MS,
        lanes: env.JOURNAL_LANES,
      },
      coldAfterMs: env.COLD_AFTER_MS,
      cluster: env.CLUSTER_NODE_ID
        ? {
            nodeId: env.CLUSTER_NODE_ID,
            url: env.CLUSTER_NODE_URL ?? `http://${env.HOST.includes(':') ? `[${env.HOST}]` : env.HOST}:${env.PORT}`,
            leaseMs: env.CLUSTER_LEASE_MS,
            // Three renewals per lease: one lost round trip does not cost a node its servers.
            renewMs: Math.max(100, Math.floor(env.CLUSTER_LEASE_MS / 3)),
          }
        : null,
      orphanAfterMs: env.ORPHAN_AFTER_MS,
      orphanSweepIntervalMs: env.ORPHAN_SWEEP_INTERVAL_MS,
      idempotencyKeyTtlMs: env.IDEMPOTENCY_KEY_TTL_HOURS * 3_600_000,
      quoteValidityMs: env.QUOTE_VALIDITY_MINUTES * 60_000,
      warnings: {
        shareBasisPoints: env.WARN_AT_SHARE > 0 ? Math.round(env.WARN_AT_SHARE * 10_000) : null,
        secondsBefore: env.WARN_SECONDS_BEFORE > 0 ? env.WARN_SECONDS_BEFORE : null,
      },
      http: {
        requestTimeoutMs: env.HTTP_REQUEST_TIMEOUT_MS,
        // The longest silence a well-behaved request sees: an open queued for a seat, then waiting
        // for the card company, plus a margin.
        connectionTimeoutMs: env.HTTP_CONNECTION_TIMEOUT_MS ?? env.ADMISSION_MAX_WAIT_SECONDS * 1000 + env.OPEN_WAIT_MS + 15_000,
        handlerTimeoutMs: env.HTTP_HANDLER_TIMEOUT_MS ?? env.ADMISSION_MAX_WAIT_SECONDS * 1000 + env.OPEN_WAIT_MS + 15_000,
        keepAliveTimeoutMs: env.HTTP_KEEP_ALIVE_TIMEOUT_MS,
        bodyLimitBytes: env.HTTP_BODY_LIMIT_BYTES,
        trustProxy: env.TRUST_PROXY,
        corsOrigins: env.CORS_ORIGINS,
      },
      database: {
        statementTimeoutMs: env.DATABASE_STATEMENT_TIMEOUT_MS,
        idleInTransactionTimeoutMs: env.DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS,
        authPoolSize: env.AUTH_POOL_SIZE,
        authMaxWaiting: env.AUTH_MAX_WAITING,
      },
      tokens: {
        idleMs: env.TOKEN_IDLE_HOURS * 3_600_000,
        maxAgeMs: env.TOKEN_MAX_AGE_HOURS * 3_600_000,
        cacheTtlMs: env.TOKEN_CACHE_TTL_MS,
        cacheSize: env.TOKEN_CACHE_SIZE,
      },
      rateLimits: {
        loginPerAddress: env.LOGIN_LIMIT_PER_ADDRESS,
        loginPerEmail: env.LOGIN_LIMIT_PER_EMAIL,
        signUpPerAddress: env.SIGNUP_LIMIT_PER_ADDRESS,
        signUpPerEmail: env.SIGNUP_LIMIT_PER_EMAIL,
        opensPerAccount: env.OPEN_LIMIT_PER_ACCOUNT,
      },
      consoleSessionMs: env.CONSOLE_SESSION_HOURS * 3_600_000,
      loginLock: {
        afterFailures: env.LOGIN_LOCK_AFTER_FAILURES,
        baseMs: env.LOGIN_LOCK_BASE_SECONDS * 1000,
        maxMs: env.LOGIN_LOCK_MAX_SECONDS * 1000,
      },
      quotas: {
        maxOpenSessionsPerAccount: env.MAX_OPEN_SESSIONS_PER_ACCOUNT,
        maxQueuedOpensPerAccount: env.MAX_QUEUED_OPENS_PER_ACCOUNT,
        maxQueuePerGate: env.ADMISSION_MAX_QUEUE,
      },
      cardNetworkFaultsToken: env.CARD_NETWORK_FAULTS_TOKEN,
      edge: {
        publicUrl: env.EDGE_PUBLIC_URL ?? null,
        trafficFlushMs: env.EDGE_TRAFFIC_FLUSH_MS,
        upstreamCheckMs: env.EDGE_UPSTREAM_CHECK_MS,
        upstreamCheckTimeoutMs: env.EDGE_UPSTREAM_CHECK_TIMEOUT_MS,
        upstreamLostAfterMs: env.EDGE_UPSTREAM_LOST_AFTER_MS,
      },
      demoUpstreams: env.TOLLGATE_DEMO_UPSTREAMS === undefined ? env.TOLLGATE_SEED_DEMO && !env.DATABASE_URL : env.TOLLGATE_DEMO_UPSTREAMS === 'true',
      webhooks: {
        timeoutMs: env.WEBHOOK_TIMEOUT_MS,
        retryBaseMs: env.WEBHOOK_RETRY_BASE_MS,
        retryMaxMs: env.WEBHOOK_RETRY_MAX_MS,
        maxAttempts: env.WEBHOOK_MAX_ATTEMPTS,
        pollMs: env.WEBHOOK_POLL_MS,
      },
      statementSweepMs: env.STATEMENT_SWEEP_MS,
      suspendAfterRefusedCaptures: env.SUSPEND_AFTER_REFUSED_CAPTURES,
    };
  });

export type Config = z.infer<typeof envSchema>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable (as docker-compose passes `${X:-}`) means "not set".
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`invalid configuration: ${problems}`);
  }
  return parsed.data;
}
