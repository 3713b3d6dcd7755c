import type { Logger } from '../logger.js';

/**
 * postgres.js 3.4.9 asks every new connection for the database's array types and drops that
 * query's promise (porsager/postgres#1192, #1205, #1223, open): when the connection closes or is
 * terminated during it, the rejection escapes as unhandled, and Node ends the process. It was seen
 * in CI's pass on the machine's PostgreSQL, a connection closing as a test's tollgate stopped; in
 * production it would take tollgate down whenever the database restarts while a connection starts.
 * The rejection is recognised by the query it carries: the driver's own, which nobody awaits.
 */
export function isTypeFetchEscape(reason: unknown): boolean {
  const query = (reason as { query?: unknown } | null)?.query;
  return typeof query === 'string' && query.includes('pg_catalog.pg_type') && query.includes('typarray');
}

/**
 * The process survives that one escape (the connection it came from is reconnected by the pool);
 * any other unhandled rejection still ends it, as Node's default does.
 */
export function survivePostgresTypeFetchEscapes(log: Logger): void {
  process.on('unhandledRejection', (reason) => {
    if (isTypeFetchEscape(reason)) {
      log.warn({ err: String(reason), code: (reason as { code?: unknown }).code }, 'a new database connection failed while the driver read its array types; it is retried');
      return;
    }
    throw reason;
  });
}
