import type { RetryPolicy, WarningPolicy } from '../../machines/session/index.js';
import type { Admission } from '../admission/admission.js';
import type { ServiceRecord } from '../catalogue/catalogue.js';
import type { Clock } from '../clock.js';
import type { Sql } from '../db/sql.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Journal } from './journal.js';
import type { SessionQueries } from './queries.js';
import type { Supervisor } from './supervisor.js';

/** What the session commands are given. */
export interface CommandDeps {
  sql: Sql;
  journal: Journal;
  supervisor: Supervisor;
  queries: SessionQueries;
  admission: Admission;
  catalogue: { service(id: string): ServiceRecord | undefined };
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  retry: RetryPolicy;
  /** Grace over the limit, hold renewal lead time and warnings before the cutoff, given to every new session. */
  policy: { graceMs: number; renewBeforeMs: number; warnings: WarningPolicy };
  openWaitMs: number;
  logoffWaitMs: number;
  /** An `authorizing` row nobody hosts, last written this long ago, is an orphan. */
  orphanAfterMs: number;
  /** Unsettled sessions one account may have at once. */
  maxOpenSessionsPerAccount: number;
  /** What a postpaid account's session holds when it names no charge limit (MAX_AMOUNT): in practice, no limit. */
  postpaidCeilingMicros: bigint;
  /** Why the service's upstream cannot be reached now (its last check failed), or null: opens of it are refused meanwhile. */
  unreachable?: (serviceId: string) => { detail: string | null } | null;
}
