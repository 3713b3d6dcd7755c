import type { OccupancyStore } from '../admission/occupancy.js';
import type { TokenResolver } from '../accounts/token-resolver.js';
import type { Catalogue } from '../catalogue/catalogue-service.js';
import type { Metrics } from '../observability/metrics.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import type { CardGateway } from '../payments/gateway.js';
import type { Supervisor } from '../supervisor/supervisor.js';

/** What the routes are given; built once by the app. */
export interface RouteDeps {
  sql: Sql;
  tokens: TokenResolver;
  clock: Clock;
  gateway: CardGateway;
  supervisor: Supervisor;
  catalogue: Catalogue;
  occupancy: OccupancyStore;
  adminToken: string;
  currency: string;
  admissionMaxWaitSeconds: number;
  metrics: Metrics;
  /** Set once every unsettled session has been restored. */
  readiness: { restored: boolean };
}
