import type { Sql, TransactionSql } from './sql.js';

/** How long a transaction waits for a connection before it gives up (see reserveConnection). */
const RESERVE_TIMEOUT_MS = 15_000;

/**
 * Runs `fn` in a transaction on a reserved connection. postgres.js's own sql.begin() can,
 * under concurrent load, send BEGIN on a connection it has not reserved and fail with
 * UNSAFE_TRANSACTION (porsager/postgres#823, fixes in #1207 and #1218 not yet released): seen
 * here in the 300-request admission race. A connection taken with sql.reserve() is marked
 * reserved before anything is sent, so the pool hands it to no one else until released.
 *
 * A reserved connection that died (its backend terminated, its socket cut, a COMMIT whose answer
 * was lost) is not released: postgres.js 3.4.9 would put the dead connection back among the open
 * ones, and the next query on it would hang and throw an uncaught TypeError from nextWrite
 * (porsager/postgres#1199, #1208). Left alone, it sits in the pool's closed queue and is
 * reconnected when needed (test/db/transaction.test.ts shows the pool recovering).
 */
export async function transaction<T>(sql: Sql, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  const connection = await reserveConnection(sql);
  let lost = false;
  try {
    await connection`begin`;
    let result: T;
    try {
      result = await fn(connection);
    } catch (error) {
      lost = connectionLost(error);
      if (!lost) await connection`rollback`.catch((rollbackError: unknown) => (lost = connectionLost(rollbackError)));
      throw error;
    }
    await connection`commit`;
    return result;
  } catch (error) {
    lost ||= connectionLost(error);
    throw error;
  } finally {
    if (!lost) connection.release();
  }
}

/**
 * sql.reserve(), bounded in time: a reserve queued for a connection that the server then
 * terminates is never settled by postgres.js 3.4.9 (porsager/postgres#1195). One that comes
 * after its caller gave up is handed straight back.
 */
async function reserveConnection(sql: Sql): Promise<TransactionSql> {
  let timer: NodeJS.Timeout | undefined;
  let gaveUp = false;
  const reserving = sql.reserve();
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      gaveUp = true;
      reject(Object.assign(new Error(`no database connection within ${RESERVE_TIMEOUT_MS} ms`), { code: 'CONNECTION_RESERVE_TIMEOUT' }));
    }, RESERVE_TIMEOUT_MS);
  });
  void reserving.then((late) => gaveUp && late.release(), () => undefined);
  try {
    return await Promise.race([reserving, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const CLIENT_SIDE_LOSS = new Set(['CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

/** SQLSTATE 57014: a statement cancelled (statement_timeout); its connection lives on and goes back to the pool. */
export const STATEMENT_CANCELLED = '57014';

/**
 * The error means the connection is gone: a client-side loss, SQLSTATE class 08 (connection) or
 * 57 (operator intervention) but for a cancelled statement, or 25P03 (idle in a transaction too long:
 * the server closes the session).
 */
export function connectionLost(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || code === STATEMENT_CANCELLED) return false;
  return CLIENT_SIDE_LOSS.has(code) || code === '25P03' || /^(08|57)[0-9A-Z]{3}$/.test(code);
}

/** The database cannot be reached at all: a lost connection, or none to be had. */
export function databaseUnreachable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return connectionLost(error) || code === 'ECONNREFUSED' || code === 'CONNECT_TIMEOUT' || code === 'CONNECTION_RESERVE_TIMEOUT' || code === 'ENOTFOUND';
}
