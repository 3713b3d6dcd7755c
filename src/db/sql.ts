import postgres from 'postgres';

const types = {
  // int8 columns hold money in micro-units: they must come back as bigint, never number.
  bigint: postgres.BigInt,
};

export function connect(url: string, options: { max?: number } = {}) {
  return postgres(url, {
    max: options.max ?? 10,
    types,
    onnotice: () => {},
    connection: { application_name: 'tollgate' },
  });
}

export type Sql = ReturnType<typeof connect>;
/** The connection a transaction runs on (see transaction.ts). */
export type TransactionSql = postgres.ReservedSql<{ bigint: bigint }>;
/** A connection or an open transaction: data-access functions take either. */
export type Queryable = Sql | TransactionSql;
