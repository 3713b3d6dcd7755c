import postgres from 'postgres';

const types = {
  // int8 columns hold money in micro-units: they must come back as bigint, never number.
  bigint: postgres.BigInt,
};

export interface ConnectOptions {
  max?: number;
  /** PostgreSQL cancels any one statement that runs longer (statement_timeout). */
  statementTimeoutMs?: number;
  /** PostgreSQL ends a session idle inside a transaction this long (idle_in_transaction_session_timeout). */
  idleInTransactionTimeoutMs?: number;
  applicationName?: string;
  /** A node of several (CLUSTER_NODE_ID): its commits notify the other nodes of new domain events. */
  nodeId?: string;
}

export function connect(url: string, options: ConnectOptions = {}) {
  return postgres(url, {
    max: options.max ?? 10,
    types,
    onnotice: () => {},
    connection: {
      // A node's connections carry its name: a node taking a lapsed node's server ends that node's
      // open transactions by it (src/cluster/lease-manager.ts).
      application_name: `${options.applicationName ?? 'tollgate'}${options.nodeId !== undefined ? `@${options.nodeId}` : ''}`,
      ...(options.nodeId !== undefined && { 'tollgate.node': options.nodeId }),
      ...(options.statementTimeoutMs !== undefined && { statement_timeout: options.statementTimeoutMs }),
      ...(options.idleInTransactionTimeoutMs !== undefined && { idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs }),
    },
  });
}

export type Sql = ReturnType<typeof connect>;
/** The connection a transaction runs on (see transaction.ts). */
export type TransactionSql = postgres.ReservedSql<{ bigint: bigint }>;
/** A connection or an open transaction: data-access functions take either. */
export type Queryable = Sql | TransactionSql;
