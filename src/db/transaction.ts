import type { Sql, TransactionSql } from './sql.js';

/**
 * Runs `fn` in a transaction on a reserved connection. postgres.js's own sql.begin() can,
 * under concurrent load, send BEGIN on a connection it has not reserved and fail with
 * UNSAFE_TRANSACTION (porsager/postgres#823, fixes in #1207 and #1218 not yet released): seen
 * here in the 300-request admission race. A connection taken with sql.reserve() is marked
 * reserved before anything is sent, so the pool hands it to no one else until released.
 */
export async function transaction<T>(sql: Sql, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  const connection = await sql.reserve();
  try {
    await connection`begin`;
    let result: T;
    try {
      result = await fn(connection);
    } catch (error) {
      await connection`rollback`.catch(() => undefined);
      throw error;
    }
    await connection`commit`;
    return result;
  } finally {
    connection.release();
  }
}
