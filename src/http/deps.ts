import type { OccupancyStore } from '../admission/occupancy.js';
import type { AccountCommands } from '../accounts/account-commands.js';
import type { AccountStates } from '../accounts/account-states.js';
import type { LoginDeps } from '../accounts/login.js';
import type { BalanceRefunds } from '../accounts/refunds.js';
import type { TopUps } from '../accounts/top-ups.js';
import type { TokenResolver } from '../accounts/token-resolver.js';
import type { TokenPolicy } from '../accounts/tokens.js';
import type { AuthenticatedOperator, Operators } from '../operators/operators.js';
import type { HealthProbe } from './health-probe.js';
import type { RateLimits } from './rate-limits.js';
import type { Catalogue } from '../catalogue/catalogue-service.js';
import type { Metrics } from '../observability/metrics.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import type { CardGateway } from '../payments/gateway.js';
import type { SessionCommands } from '../sessions/commands.js';
import type { SessionQueries } from '../sessions/queries.js';
import type { IdempotencyStore } from './idempotency-store.js';
import type { Limits } from './schemas.js';
import type { Edge } from '../edge/edge.js';

/** What the HTTP plugins are given; built once by the runtime. */
export interface RouteDeps {
  sql: Sql;
  tokens: TokenResolver;
  clock: Clock;
  gateway: CardGateway;
  commands: SessionCommands;
  queries: SessionQueries;
  catalogue: Catalogue;
  occupancy: OccupancyStore;
  /** Whether a service's upstream took a connection at its last check (null: not checked, or no upstream). */
  reachable: (serviceId: string) => boolean | null;
  idempotency: IdempotencyStore;
  tokenPolicy: TokenPolicy;
  login: LoginDeps;
  operators: Operators;
  /** Accounts' states (the account machine's host) and the commands customers and operators send them. */
  accountStates: AccountStates;
  accountCommands: AccountCommands;
  topUps: TopUps;
  /** A closed account's balance sent back to the card (src/accounts/refunds.ts). */
  refunds: BalanceRefunds;
  /** Charges what statements owe now (a new card pays a declined one at once, not at the next sweep). */
  chargeStatements: () => void;
  /** The enabled operator an API key belongs to. */
  operatorFor: (apiKey: string) => Promise<AuthenticatedOperator | null>;
  /** TOLLGATE_ADMIN_TOKEN or the generated one: it only creates the first admin operator. */
  bootstrapToken: string;
  rateLimits: RateLimits;
  health: HealthProbe;
  currency: string;
  limits: Limits;
  /** How long a quote may be used to open a session. */
  quoteValidityMs: number;
  metrics: Metrics;
  /** Set once every unsettled session has been restored. */
  readiness: { restored: boolean };
  /** The edge: access tokens for session views, and the proxy routes. */
  edge: Edge;
  /** EDGE_PUBLIC_URL: where customers reach tollgate; null: the address each request came to. */
  edgePublicUrl: string | null;
}
